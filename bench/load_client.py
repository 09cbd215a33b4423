"""The open-loop HTTP/1.1 client of `http_load.py`: request i is due at start + i / rate, sent on
the next free keep-alive connection (first in, first out, one request in flight each), and its
latency counted from the due time, so a server's queue cannot hide (no coordinated omission).

Raw asyncio protocols on uvloop: about 60,000–90,000 requests/s on one core against a
fixed-answer server, far above what the servers measured here sustain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvloop

P99_LIMIT_MS = 10.0
TIMEOUT_S = 2.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request in flight; parses status and Content-Length."""

    def __init__(self, trial: _Trial) -> None:
        self.trial = trial
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.current = -1
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, i: int) -> None:
        self.current = i
        assert self.transport is not None
        self.transport.write(self.trial.requests[i % len(self.trial.requests)])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            ok = head[9:12] == b"200"
            self.buffer = self.buffer[end:]
            i, self.current = self.current, -1
            self.trial.done(self, i, ok)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.current >= 0:
            i, self.current = self.current, -1
            self.trial.done(self, i, False)


class _Trial:
    def __init__(self, requests: list[bytes], rate: float, count: int) -> None:
        self.requests = requests
        self.rate = rate
        self.due = np.arange(count) / rate
        self.latency = np.full(count, np.nan)
        self.failed = np.zeros(count, dtype=bool)
        self.idle: deque[_Connection] = deque()  # first in, first out: every connection works
        self.waiting: deque[int] = deque()
        self.outstanding = 0
        self.start = 0.0
        self.finished = asyncio.Event()

    def dispatch(self, i: int) -> None:
        self.outstanding += 1
        self.finished.clear()
        while self.idle:
            connection = self.idle.popleft()
            if not connection.closed:
                connection.send(i)
                return
        self.waiting.append(i)

    def done(self, connection: _Connection, i: int, ok: bool) -> None:
        self.latency[i] = time.perf_counter() - self.start - self.due[i]
        self.failed[i] = not ok
        self.outstanding -= 1
        if not connection.closed:
            if self.waiting:
                connection.send(self.waiting.popleft())
            else:
                self.idle.append(connection)
        if self.outstanding == 0:
            self.finished.set()


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    timeouts: int
    aborted: bool
    cpu_us: float = 0.0  # the server's CPU time per request (all its processes and threads)
    waited_ms: float = 0.0  # time the server's threads were runnable but another process ran

    @property
    def sustained(self) -> bool:
        return (
            not self.aborted
            and self.errors == 0
            and self.timeouts == 0
            and (self.p99_ms <= P99_LIMIT_MS)
        )


async def _trial(
    port: int, requests: list[bytes], connections: int, rate: float, seconds: float
) -> Result:
    loop = asyncio.get_running_loop()
    count = max(1, int(rate * seconds))
    trial = _Trial(requests, rate, count)
    opened = [
        (await loop.create_connection(lambda: _Connection(trial), "127.0.0.1", port))[1]
        for _ in range(connections)
    ]
    trial.idle = deque(opened)
    backlog_limit = max(connections, rate * 0.5)  # half a second of queue: overloaded, stop
    trial.start = time.perf_counter()
    sent, aborted = 0, False
    while sent < count:
        now = time.perf_counter() - trial.start
        due_now = min(count, int(now * rate) + 1)
        while sent < due_now:
            trial.dispatch(sent)
            sent += 1
        if len(trial.waiting) > backlog_limit:
            aborted = True
            break
        # libuv timers tick in milliseconds: sleep until about 1 ms before the next due time,
        # then spin (this core is the client's own), so a request leaves within µs of its due.
        wait = sent / rate - now
        await asyncio.sleep(wait - 0.0015 if wait > 0.002 else 0)
    if aborted:  # the queue that was never sent is not measured: the trial already failed
        trial.outstanding -= len(trial.waiting)
        trial.waiting.clear()
    if trial.outstanding:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(trial.finished.wait(), 0.5 if aborted else TIMEOUT_S)
    for connection in opened:
        connection.transport.close()  # type: ignore[union-attr]
    measured = trial.latency[:sent]
    answered = measured[~np.isnan(measured)] * 1000
    timeouts = 0 if aborted else int(np.isnan(measured).sum())
    timeouts += int((answered > TIMEOUT_S * 1000).sum())
    if len(answered) == 0:
        return Result(rate, np.inf, np.inf, np.inf, 0, timeouts, True)
    p50, p99 = np.percentile(answered, [50, 99])
    errors = int(trial.failed[:sent].sum())
    return Result(rate, p50, p99, float(answered.max()), errors, timeouts, aborted)


def _scheduler(pid: int) -> tuple[float, dict[int, float]]:
    """CPU ms of a process and its children (exited threads included), and the run-queue wait
    ms of each of their live threads (schedstat)."""
    cpu, waits = 0.0, {}
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            waits[int(task.name)] = int((task / "schedstat").read_text().split()[1]) / 1e6
            for child in (task / "children").read_text().split():
                child_cpu, child_waits = _scheduler(int(child))
                cpu += child_cpu
                waits.update(child_waits)
    except (OSError, ValueError, IndexError):
        pass  # a thread or process that ended meanwhile
    return cpu, waits


def trial(
    port: int, pid: int, requests: list[bytes], connections: int, rate: float, seconds: float
) -> Result:
    cpu, waits = _scheduler(pid)
    result = uvloop.run(_trial(port, requests, connections, rate, seconds))
    cpu_after, waits_after = _scheduler(pid)
    result.cpu_us = (cpu_after - cpu) * 1000 / max(1, rate * seconds)
    result.waited_ms = sum(w - waits.get(tid, 0.0) for tid, w in waits_after.items())
    time.sleep(1.0 if result.aborted else 0.3)  # a server that fell behind finishes its queue
    return result
