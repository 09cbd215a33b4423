"""Several workers keep one generation: `wangge serve --workers 4` against the test database,
a publish reaches every worker (within 2 s on the demo street: `print`ed here, measured in
bench/; the test asserts only that every worker gets there), and a worker whose LISTEN connection is killed
(`pg_terminate_backend`) catches up. Which worker answered, and at which generation, comes
from GET /api/v1/health (`worker`, `generation`)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from tests.conftest import bearer

WORKERS = 4
WANGGE = Path(sys.executable).parent / "wangge"
FAILURES: list[str] = []  # why requests failed (shown when a test asserts there were none)
LISTENERS = "SELECT pid FROM pg_stat_activity WHERE datname = :db AND query = :listen"


@dataclass(frozen=True)
class Answer:
    at: float
    worker: int
    generation: int | None


@pytest.fixture
def server(service_url: str, database_url: str) -> Iterator[int]:
    """`wangge serve --workers 4` on a free port, configured through the environment like a
    deployment; the whole process group is stopped at the end."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "WANGGE_DATABASE_URL": service_url,
        "WANGGE_OWNER_DATABASE_URL": database_url,
        "WANGGE_WORKFLOW__SWEEP_SECONDS": "0",
    }
    process = subprocess.Popen(
        [str(WANGGE), "serve", "--workers", str(WORKERS), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _health(port) is None:
            assert process.poll() is None, "wangge serve exited"
            assert time.monotonic() < deadline, "wangge serve did not start"
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _health(port: int) -> Answer | None:
    """One request on a fresh connection (so the kernel may hand it to any worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api/v1/health", headers={"Connection": "close"})
        response = connection.getresponse()
        if response.status != 200:
            FAILURES.append(f"HTTP {response.status}")
            return None
        body = json.loads(response.read())
        return Answer(time.monotonic(), body["worker"], body["generation"])
    except (OSError, http.client.HTTPException) as error:
        FAILURES.append(f"{error.__class__.__name__}: {error}")
        return None
    finally:
        connection.close()


def _poll(port: int, seconds: float, threads: int = 4) -> tuple[list[Answer], int]:
    """Answers of fresh connections from `threads` clients for `seconds`, and how many
    requests failed."""
    answers: list[Answer] = []
    failures = [0]
    FAILURES.clear()
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            answer = _health(port)
            with lock:
                if answer is None:
                    failures[0] += 1
                else:
                    answers.append(answer)

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sorted(answers, key=lambda a: a.at), failures[0]


def _all_workers(port: int) -> set[int]:
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < WORKERS and time.monotonic() < deadline:
        answers, _ = _poll(port, 0.5, threads=8)
        seen |= {a.worker for a in answers}
    return seen


def _publish(port: int, planner: dict[str, str]) -> int:
    """A new generation through the served API: a draft (a copy of the active grids), published
    at once. Returns its id once the publish has committed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {**planner, "Content-Type": "application/json"}

    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        payload = response.read()
        assert response.status in (200, 201), payload
        result: dict[str, object] = json.loads(payload)
        return result

    try:
        draft = post("/api/v1/drafts", {"name": "多进程发布"})
        post(
            f"/api/v1/drafts/{draft['id']}/publish",
            {"version": draft["version"], "acknowledge_warnings": True},
        )
    finally:
        connection.close()
    generation = draft["generation_id"]
    assert isinstance(generation, int)
    return generation


def _caught_up(answers: list[Answer], generation: int, since: float) -> tuple[float, set[int]]:
    """Seconds from `since` to the last answer of another generation, and the workers that
    answered with `generation` after it."""
    stale = [a for a in answers if a.generation != generation]
    last_stale = stale[-1].at if stale else since
    fresh = {a.worker for a in answers if a.at > last_stale and a.generation == generation}
    return max(0.0, last_stale - since), fresh


def test_every_worker_answers_a_new_generation_and_catches_up_after_losing_its_connection(
    server: int, tokens: dict[str, str], engine: Engine, database_url: str
):
    port = server
    planner = bearer(tokens["planner"])
    database = make_url(database_url).database
    listen = {"db": database, "listen": "LISTEN wangge_generation"}

    first = _all_workers(port)
    assert len(first) == WORKERS
    assert {a.generation for a in _poll(port, 0.3)[0]} == {1}

    # A publish: soon every answer, from every worker, is the new generation (how soon is a
    # figure for the benchmarks, ~1–2 s here; a timing assert would only measure CI's load).
    generation = _publish(port, planner)
    published = time.monotonic()
    answers, failures = _poll(port, 8.0)
    lag, fresh = _caught_up(answers, generation, published)
    assert failures == 0, FAILURES
    assert lag < 8.0, f"a worker still answered generation 1 {lag:.2f} s after the publish"
    assert len(fresh | _all_workers_at(port, generation)) == WORKERS
    print(f"publish → every worker at generation {generation}: {lag:.2f} s")

    # Every LISTEN connection of the service dropped (a restart of PgBouncer, a network cut):
    # a publish made meanwhile still reaches every worker, and the listeners come back.
    with engine.connect() as connection:
        listeners = set(connection.execute(text(LISTENERS), listen).scalars())
        assert len(listeners) >= WORKERS  # each worker (and a serving master) listens
        killed = connection.execute(
            text("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest(:p) pid"),
            {"p": sorted(listeners)},
        ).scalar()
    assert killed == len(listeners)
    newer = _publish(port, planner)
    published = time.monotonic()
    deadline = published + 30
    while True:
        answers, failures = _poll(port, 1.0)
        assert failures == 0, FAILURES
        if answers and all(a.generation == newer for a in answers):
            break
        assert time.monotonic() < deadline, "a worker did not catch up after its connection died"
    print(
        f"listeners killed: {len(listeners)}; all at {newer} after {time.monotonic() - published:.1f} s"
    )
    assert len(_all_workers_at(port, newer)) == WORKERS
    with engine.connect() as connection:
        back = set(connection.execute(text(LISTENERS), listen).scalars())
    assert len(back) == len(listeners) and not back & listeners


def _all_workers_at(port: int, generation: int) -> set[int]:
    """The workers seen answering `generation` (fresh connections, up to 30 s)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < WORKERS and time.monotonic() < deadline:
        answers, _ = _poll(port, 0.5, threads=8)
        assert {a.generation for a in answers} <= {generation}
        seen |= {a.worker for a in answers}
    return seen
