"""The serving master of `wangge serve --workers N`: build the index once, fork the workers.

uvicorn's own `--workers` spawns fresh interpreters, so each would build (and hold) its own
index: ~0.5 GB per worker for a district. This master instead

1. binds the listening socket, imports the app and builds the lookup index of the active
   generation and the address register (`IndexStore.refresh`), then `gc.freeze()`s them;
2. forks N workers that serve the shared socket with uvicorn; each worker's `IndexStore` adopts
   the master's index (`api.lookup.shared`), so its pages stay shared copy-on-write;
3. listens on `wangge_generation` like every worker: on a publish (or a changed register) it
   builds the new index, forks N new workers, waits until they serve, then stops the old ones
   with SIGTERM (uvicorn finishes their open requests first). A request is answered by one
   worker, which holds one whole generation: never a mix.
4. restarts a worker that dies; on SIGTERM/SIGINT stops them all and exits.

The master holds no pooled database connection across a fork, and a worker leaves with
`os._exit` so that nothing it inherited (the master's LISTEN connection) is closed on its behalf.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import select
import signal
import socket
import time
from types import FrameType
from typing import Any

import uvicorn
from sqlalchemy import Engine

from api.db.engine import make_engine
from api.lookup import shared
from api.lookup.index_store import CHANNEL, RECHECK_SECONDS, IndexStore
from api.settings import get_settings

log = logging.getLogger("wangge.serve")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
READY_TIMEOUT = 60.0  # a new worker that does not serve by then is abandoned (and logged)
STOP_TIMEOUT = 30
DRAIN_SECONDS = 0.5  # uvicorn's graceful shutdown of an old worker, then SIGKILL


def _die_with(master: int) -> None:
    """A worker ends (gracefully, SIGTERM) when its master dies, even by SIGKILL: orphans would
    keep the port and an old generation, and block the next `wangge serve`."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the worker still leaves when it notices the master is gone
        log.warning("worker %s: cannot ask to end with its master", os.getpid())
    if os.getppid() != master:  # the master died before prctl took effect
        os._exit(0)


class _ReadyServer(uvicorn.Server):
    """uvicorn, telling the master through a pipe once it accepts requests."""

    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self._ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            os.write(self._ready_fd, b"r")
        os.close(self._ready_fd)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first (the kernel hands new connections to the other workers), and let
        # the connections this worker has just accepted deliver their requests: uvicorn closes
        # a connection whose request it has not read yet, which a client sees as a reset.
        for server in self.servers:
            server.close()
        await asyncio.sleep(DRAIN_SECONDS)
        await super().shutdown(sockets)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Master:
    def __init__(self, sock: socket.socket, workers: int, log_level: str = "info") -> None:
        self.sock, self.workers, self.log_level = sock, max(1, workers), log_level
        self.engine: Engine = make_engine(get_settings())
        self.store = IndexStore(self.engine)
        self.current: dict[int, tuple[int, int]] = {}  # pid → snapshot key it serves
        self.builds = 0
        self._stop = False
        self._wake_read, self._wake_write = os.pipe()

    # --- lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        from api import main  # the app object is built once, before the fork, and shared

        self.app = main.app
        # SIGHUP too: a master whose terminal or supervisor hangs up takes its workers with it.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self._rebuild()
        self._spawn_all()
        try:
            self._loop()
        finally:
            self._stop_workers(list(self.current))
            self.engine.dispose()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True
        os.write(self._wake_write, b"x")

    def _loop(self) -> None:
        while not self._stop:
            try:
                raw = self.engine.raw_connection()
            except Exception:
                log.exception("master: cannot reach the database; retrying")
                time.sleep(1.0)
                continue
            try:
                dbapi: Any = raw.dbapi_connection
                dbapi.autocommit = True
                with dbapi.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                checked = 0.0  # check at once: anything published while we were not listening
                while not self._stop:
                    if time.monotonic() - checked >= RECHECK_SECONDS:
                        self._check()
                        checked = time.monotonic()
                    ready, _, _ = select.select([dbapi, self._wake_read], [], [], 1.0)
                    if self._wake_read in ready:
                        os.read(self._wake_read, 64)
                    if dbapi in ready:
                        dbapi.poll()
                        if dbapi.notifies:
                            dbapi.notifies.clear()
                            checked = 0.0
                    self._reap()
            except Exception:
                log.exception("master: listener failed; retrying")
                time.sleep(1.0)
            finally:
                raw.close()

    # --- the shared index ----------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Refresh the master's store; hand its snapshot to the workers forked next."""
        started = time.perf_counter()
        before = shared.preloaded()
        self.store.refresh()
        snapshot = self.store.snapshot()
        if before is None or before.key != snapshot.key:
            self.builds += 1
            shared.preload(snapshot)
            gc.unfreeze()  # the previous generation's frozen objects may hold cycles
            gc.collect()
            gc.freeze()  # the workers inherit these objects; never scan (and touch) them
            log.info(
                "master: index of generation %s ready in %.2f s, shared by %s workers",
                snapshot.index.generation,
                time.perf_counter() - started,
                self.workers,
            )

    def _check(self) -> None:
        before = shared.preloaded()
        key = before.key if before is not None else None
        self._rebuild()
        snapshot = shared.preloaded()
        if snapshot is not None and snapshot.key != key:
            old = list(self.current)
            self._spawn_all()
            self._stop_workers(old)

    # --- workers -------------------------------------------------------------------------------

    def _spawn_all(self) -> None:
        self.engine.dispose()  # no pooled connection crosses a fork
        ready = [self._spawn() for _ in range(self.workers)]
        deadline = time.monotonic() + READY_TIMEOUT
        for pid, fd in ready:
            remaining = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable or not os.read(fd, 1):
                log.error("master: worker %s did not start serving", pid)
            os.close(fd)

    def _spawn(self) -> tuple[int, int]:
        ready_read, ready_write = os.pipe()
        snapshot = shared.preloaded()
        master = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                os.close(ready_read)
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                _die_with(master)
                shared.become_managed()
                config = uvicorn.Config(
                    self.app, log_level=self.log_level, timeout_graceful_shutdown=STOP_TIMEOUT
                )
                _ReadyServer(config, ready_write).run(sockets=[self.sock])
            except BaseException:
                log.exception("worker %s failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        os.close(ready_write)
        self.current[pid] = snapshot.key if snapshot else (0, 0)
        return pid, ready_read

    def _stop_workers(self, pids: list[int]) -> None:
        for pid in pids:
            self.current.pop(pid, None)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + STOP_TIMEOUT + 5
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass

    def _reap(self) -> None:
        """Restart a current worker that died (an old one being stopped is not restarted)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.current and not self._stop:
                self.current.pop(pid)
                log.error("master: worker %s died; starting another", pid)
                _, fd = self._spawn()
                select.select([fd], [], [], READY_TIMEOUT)
                os.close(fd)


def serve(host: str, port: int, workers: int, log_level: str = "info") -> None:
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO))
    Master(bind(host, port), workers, log_level).run()
