"""Faults survived, with real processes: PostgreSQL restarted under load, a burst of duplicate
posts, the service killed with -9 in the middle of a publish, two planners saving at once.

Everything runs against a private, throwaway PostgreSQL cluster (never the project's shared one)
and the service as a real uvicorn process (tests/faults/).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from api.auth import Role, create_token
from tests.conftest import DEMO_SEED
from tests.faults.cluster import PrivateCluster
from tests.faults.service import Service

pytestmark = pytest.mark.faults

EVENTS = 2_000
POSTING_THREADS = 8
RESTART_AFTER = 600  # events answered before PostgreSQL restarts
RETRY_FOR_S = 60.0


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster.create(DEMO_SEED)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def owner_engine(private_cluster: PrivateCluster) -> Iterator[Engine]:
    engine = create_engine(private_cluster.url(), pool_pre_ping=True)  # it outlives restarts
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def secrets(owner_engine: Engine) -> dict[str, str]:
    made = {}
    with owner_engine.begin() as connection:
        for name, role in [
            ("dispatcher", Role.dispatcher),
            ("planner", Role.planner),
            ("planner_b", Role.planner),
        ]:
            made[name] = create_token(connection, name=name, role=role, actor="tests").secret
    return made


@pytest.fixture
def service(private_cluster: PrivateCluster) -> Iterator[Service]:
    running = Service(private_cluster.service_url, private_cluster.root / "service.log").start()
    try:
        yield running
    finally:
        running.stop()


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _event(external_id: str, rng: random.Random) -> dict[str, Any]:
    return {
        "source": "fault_test",
        "external_id": external_id,
        "category_code": "E04",
        "description": f"故障测试 {external_id}",
        "lon": rng.uniform(120.725, 120.755),
        "lat": rng.uniform(31.292, 31.315),
        "crs": "EPSG:4326",
    }


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"(not our error shape) {response.text[:80]!r}"


def _post_until_answered(
    client: httpx.Client, body: dict[str, Any], secret: str, failures: Counter[str]
) -> tuple[int | None, int]:
    """POST one event, retrying the same payload after a transport error or a 5xx.

    Returns (event id or None, attempts) and counts every failed attempt by its answer. The API
    is idempotent on (source, external_id): a retry of an event stored before its answer was
    lost gets 200 and the same id. A 4xx is not retried (it would be a bug: None)."""
    deadline = time.monotonic() + RETRY_FOR_S
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            response = client.post("/api/v1/events", json=body, headers=_auth(secret))
        except httpx.TransportError as error:
            failures[type(error).__name__] += 1
        else:
            if response.status_code in (200, 201):
                return int(response.json()["id"]), attempt
            failures[f"{response.status_code} {_error_code(response)}"] += 1
            if response.status_code < 500:
                return None, attempt
        time.sleep(min(0.05 * attempt, 0.5))
    return None, attempt


def test_restart_postgres_while_posting(private_cluster, owner_engine, secrets, service):
    """2,000 events posted by 8 retrying clients while PostgreSQL restarts: exactly 2,000 rows,
    none duplicated, none lost, each with the id its client was given."""
    answered: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    answered_lock = threading.Lock()
    restarted = threading.Event()

    def post(share: list[int]) -> list[tuple[str, int | None, int]]:
        rng = random.Random(share[0])
        results = []
        with httpx.Client(base_url=service.base_url, timeout=30) as client:
            for number in share:
                external_id = f"restart-{number:05d}"
                event_id, attempts = _post_until_answered(
                    client, _event(external_id, rng), secrets["dispatcher"], failures
                )
                results.append((external_id, event_id, attempts))
                with answered_lock:
                    answered["events"] += 1
        return results

    def restart_midway() -> None:
        deadline = time.monotonic() + RETRY_FOR_S
        while answered["events"] < RESTART_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        private_cluster.restart()
        restarted.set()

    shares = [list(range(i, EVENTS, POSTING_THREADS)) for i in range(POSTING_THREADS)]
    with ThreadPoolExecutor(POSTING_THREADS + 1) as pool:
        restarting = pool.submit(restart_midway)
        results = [row for rows in pool.map(post, shares) for row in rows]
        restarting.result()
    assert restarted.is_set()

    ids = {external_id: event_id for external_id, event_id, _ in results}
    refused = [external_id for external_id, event_id, _ in results if event_id is None]
    assert not refused, f"{len(refused)} never accepted; failed attempts: {dict(failures)}"
    assert len(results) == len(ids) == len(set(ids.values())) == EVENTS
    retried = sum(attempts > 1 for _, _, attempts in results)
    assert retried > 0, "the restart should have cost some clients a retry"
    print(f"restart: {retried} events retried; failed attempts: {dict(failures)}")
    # While the database is away the service says so (503, Retry-After), never 500.
    assert all(not key[0].isdigit() or key == "503 database_unavailable" for key in failures)
    with owner_engine.connect() as connection:
        stored = dict(
            connection.execute(
                text("SELECT external_id, id FROM event WHERE source = 'fault_test'")
            ).all()
        )
        history = connection.execute(
            text(
                "SELECT count(*) FROM event_history h JOIN event e ON e.id = h.event_id "
                "WHERE e.source = 'fault_test'"
            )
        ).scalar_one()
    assert stored == ids  # none lost, none duplicated, each under the id its client was given
    assert history == EVENTS  # one 'received' entry each, even for retried posts
