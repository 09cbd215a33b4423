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
import psycopg2
import pytest
from sqlalchemy import Engine, create_engine, text

from api.auth import Role, create_token
from api.db.events import OPEN_STATUSES
from tests.conftest import DEMO_SEED, _dsn
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


def test_fifty_concurrent_posts_of_one_event(owner_engine, secrets, service):
    """50 clients post the same (source, external_id) at once: one row, one 201, 49 × 200,
    and everyone is given the same event id."""
    body = _event("burst-0001", random.Random(50))
    start = threading.Barrier(50)

    def post(_: int) -> tuple[int, int]:
        with httpx.Client(base_url=service.base_url, timeout=60) as client:
            start.wait()
            response = client.post(
                "/api/v1/events", json=body, headers=_auth(secrets["dispatcher"])
            )
            return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(post, range(50)))
    assert Counter(status for status, _ in answers) == {201: 1, 200: 49}
    assert len({event_id for _, event_id in answers}) == 1
    with owner_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT h.id) FROM event e "
                "JOIN event_history h ON h.event_id = e.id WHERE e.external_id = 'burst-0001'"
            )
        ).one()
    assert tuple(rows) == (1, 1)


def _superuser(cluster: PrivateCluster, *, autocommit: bool = True):
    """A superuser session on the private cluster. Autocommit by default: pg_stat_activity is
    read once per transaction, so a watcher must not sit in one."""
    connection = psycopg2.connect(_dsn(cluster.url(cluster.settings.user)))
    connection.autocommit = autocommit
    return connection


def _wait_for(condition, what: Any, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _activity(connection) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, usename, application_name, state, wait_event_type, wait_event, "
            "left(query, 80) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
        return cursor.fetchall()


def _backends(watcher) -> list[int]:
    with watcher.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'")
        return [row[0] for row in cursor.fetchall()]


def _waiting_on_locks(connection) -> list[int]:
    """Backends of the service that wait for a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'wangge' "
            "AND wait_event_type = 'Lock'"
        )
        return [row[0] for row in cursor.fetchall()]


def test_two_planners_save_the_same_version(private_cluster, secrets, service):
    """Two planners save an edit on version 0 of one draft at the same moment: one wins, the
    other is told 409 stale_draft; the draft moves to version 1 with the winner's change, and
    the loser's redo on version 1 lands too (nothing is lost silently)."""
    code = "320571005002001001"
    names = {"planner": "甲改的名字", "planner_b": "乙改的名字"}
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        draft = client.post(
            "/api/v1/drafts", json={"name": "两人同时改"}, headers=_auth(secrets["planner"])
        ).json()
        url = f"/api/v1/drafts/{draft['id']}/grids/{code}"
        holder = _superuser(
            private_cluster, autocommit=False
        )  # holds the draft row so both edits queue behind it
        try:
            with holder.cursor() as cursor:
                cursor.execute("SELECT id FROM draft WHERE id = %s FOR UPDATE", (draft["id"],))

            def save(planner: str) -> tuple[str, httpx.Response]:
                body = {"version": 0, "name": names[planner]}
                return planner, client.patch(url, json=body, headers=_auth(secrets[planner]))

            with ThreadPoolExecutor(2) as pool:
                saving = [pool.submit(save, planner) for planner in names]
                watcher = _superuser(private_cluster)
                try:
                    _wait_for(
                        lambda: (
                            len(_waiting_on_locks(watcher)) == 2
                            or any(future.done() for future in saving)
                        ),
                        lambda: f"both saves to wait: {_activity(watcher)}",
                    )
                    early = [f.result()[1].text for f in saving if f.done()]
                    assert not early, f"a save did not wait for the draft: {early}"
                finally:
                    watcher.close()
                holder.commit()
                answers = dict(future.result() for future in saving)
        finally:
            holder.close()

        statuses = {planner: response.status_code for planner, response in answers.items()}
        assert sorted(statuses.values()) == [200, 409], statuses
        [winner] = [planner for planner, status in statuses.items() if status == 200]
        [loser] = [planner for planner, status in statuses.items() if status == 409]
        error = answers[loser].json()["error"]
        assert error["code"] == "stale_draft" and error["details"] == [{"current_version": 1}]

        def state() -> tuple[int, int, str]:
            body = client.get(f"/api/v1/drafts/{draft['id']}").json()
            grid = client.get(
                f"/api/v1/grids/{code}", params={"generation": draft["generation_id"]}
            )
            return body["version"], len(body["edits"]), grid.json()["properties"]["name"]

        assert state() == (1, 1, names[winner])
        redo = client.patch(
            url, json={"version": 1, "name": names[loser]}, headers=_auth(secrets[loser])
        )
        assert redo.status_code == 200, redo.text
        assert state() == (2, 2, names[loser])


ACTIVE = (
    "SELECT generation_id FROM generation_activation ORDER BY activated_at DESC, id DESC LIMIT 1"
)
# Open events whose grid is not the finest grid covering them in the active generation (the
# rule publish and re-activation apply: finest level first, then the smallest code; an event
# outside every grid has none).
MISPLACED = f"""
SELECT count(*) FROM event e
LEFT JOIN LATERAL (
    SELECT g.code FROM grid g JOIN grid_level l ON l.name = g.level
    WHERE g.geom && e.geom AND ST_Covers(g.geom, e.geom)
      AND g.generation_low <= :g AND g.generation_high >= :g
    ORDER BY l.rank DESC, g.code LIMIT 1
) finest ON true
WHERE e.status IN {OPEN_STATUSES} AND e.geom IS NOT NULL
  AND (e.grid_code IS DISTINCT FROM finest.code
       OR (finest.code IS NOT NULL AND e.generation_id IS DISTINCT FROM :g))
"""


def _blocked_on_events(watcher) -> list[tuple[int, bool]]:
    """The service's backends waiting to write the event table, each with whether its
    transaction has activated a generation (holds a row lock on generation_activation)."""
    with watcher.cursor() as cursor:
        cursor.execute(
            "SELECT a.pid, EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted "
            "AND l.mode = 'RowExclusiveLock' AND l.relation = 'generation_activation'::regclass) "
            "FROM pg_stat_activity a JOIN pg_locks w ON w.pid = a.pid AND NOT w.granted "
            "AND w.relation = 'event'::regclass WHERE a.application_name = 'wangge'"
        )
        return cursor.fetchall()


def _generation_state(engine: Engine, draft_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        active = connection.execute(text(ACTIVE)).scalar_one()
        return {
            "active": active,
            "draft": connection.execute(
                text("SELECT status, generation_id FROM draft WHERE id = :d"), {"d": draft_id}
            ).one(),
            "lineage": connection.execute(
                text(
                    "SELECT count(*) FROM grid_lineage WHERE generation_id = "
                    "(SELECT generation_id FROM draft WHERE id = :d)"
                ),
                {"d": draft_id},
            ).scalar_one(),
            "misplaced": connection.execute(text(MISPLACED), {"g": active}).scalar_one(),
        }


def test_kill_the_service_in_the_middle_of_a_publish(
    private_cluster, owner_engine, secrets, service
):
    """kill -9 while a publish has activated the new generation but not yet moved the open
    events: after a restart exactly one generation is active (here the old one: the publish
    never committed), every open event is on its grid in it, and the same draft still publishes."""
    planner = _auth(secrets["planner"])
    with httpx.Client(base_url=service.base_url, timeout=120) as client:
        draft = client.post("/api/v1/drafts", json={"name": "发布时断电"}, headers=planner).json()
    before = _generation_state(owner_engine, draft["id"])
    assert before["misplaced"] == 0 and before["draft"].status == "open"

    # Hold the event table (reads allowed, writes wait), so the publish stops inside its
    # transaction right after activating, at the re-assignment of open events.
    holder = _superuser(private_cluster, autocommit=False)
    watcher = _superuser(private_cluster)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE event IN SHARE MODE")

        def publish() -> str:
            try:
                with httpx.Client(base_url=service.base_url, timeout=120) as client:
                    body = {"version": 0, "acknowledge_warnings": True}
                    url = f"/api/v1/drafts/{draft['id']}/publish"
                    return str(client.post(url, json=body, headers=planner).status_code)
            except httpx.TransportError as error:
                return type(error).__name__

        with ThreadPoolExecutor(1) as pool:
            publishing = pool.submit(publish)
            try:
                blocked = _wait_for(
                    lambda: _blocked_on_events(watcher) or publishing.done(),
                    lambda: f"the publish to block: {_activity(watcher)}",
                )
                assert not publishing.done(), f"the publish did not block: {publishing.result()}"
                [(backend, activated)] = blocked
                assert activated, "the activation is not part of the publish's transaction"
                service.kill()
                assert publishing.result() in ("RemoteProtocolError", "ReadError"), "no answer"
            finally:
                # The orphaned backend goes on, finds its client gone and rolls back.
                holder.rollback()
        _wait_for(lambda: backend not in _backends(watcher), "the orphaned backend to end")
    finally:
        holder.close()
        watcher.close()

    after = _generation_state(owner_engine, draft["id"])
    assert after == before  # the old generation, whole: no activation, lineage or moved event

    restarted = Service(private_cluster.service_url, private_cluster.root / "service.log").start()
    try:
        with httpx.Client(base_url=restarted.base_url, timeout=120) as client:
            assert client.get("/api/v1/generations").json()["active"] == before["active"]
            url = f"/api/v1/drafts/{draft['id']}/publish"
            body = {"version": 0, "acknowledge_warnings": True}
            published = client.post(url, json=body, headers=planner)
            assert published.status_code == 200, published.text
    finally:
        restarted.stop()
    final = _generation_state(owner_engine, draft["id"])
    assert final["active"] == draft["generation_id"] != before["active"]
    assert final["draft"].status == "published" and final["misplaced"] == 0
