"""Notifications out: signed webhooks delivered at least once to a real HTTP receiver, retried
with back-off, never sent twice at once by two workers; warnings pushed once per level."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

from api.db import outbox as outbox_rows
from api.outbox import Deliverer, RetryPolicy, Sweeper, sweep_warnings
from api.outbox.signing import signature, signed_headers, verify
from api.outbox.sweep import _backward, _forward, staircase
from api.settings import Settings, WebhookTarget, WorkflowSettings
from api.workflow.calendar import WorkCalendar
from api.workflow.machine import OPEN
from api.workflow.transitions import load_catalogue
from api.workflow.warnings import LEVELS, warning
from tests.conftest import bearer

SECRET = "s3cret-for-the-12345-platform"
SHANGHAI = ZoneInfo("Asia/Shanghai")
FAST = RetryPolicy(base_seconds=0.05, cap_seconds=1.0, timeout_seconds=2.0, batch=5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A webhook receiver on a real port: checks each signature, records each request, and
    answers as told (ok, fail: 500, slow: longer than the client waits)."""

    def __init__(self, port: int = 0, delay_s: float = 0.0) -> None:
        self.mode = "ok"
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "key": self.headers["Idempotency-Key"],
                            "attempt": int(self.headers["X-Wangge-Attempt"]),
                            "signed": verify(
                                SECRET,
                                self.headers["X-Wangge-Timestamp"],
                                self.headers["X-Wangge-Signature"],
                                body,
                            ),
                            "body": body,
                            "json": orjson.loads(body),
                            "mode": receiver.mode,
                        }
                    )
                if receiver.mode == "slow":
                    time.sleep(FAST.timeout_seconds + 1)
                time.sleep(receiver.delay_s)
                status = 500 if receiver.mode == "fail" else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def ids(self, mode: str = "ok") -> list[int]:
        return [r["json"]["id"] for r in self.requests if r["mode"] == mode]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


def _target(url: str, name: str = "hotline") -> WebhookTarget:
    return WebhookTarget(name=name, url=url, secret=SECRET)


def _settings(settings: Settings, *targets: WebhookTarget, sweep_seconds: float = 0) -> Settings:
    workflow = settings.workflow.model_copy(
        update={"webhooks": list(targets), "sweep_seconds": sweep_seconds}
    )
    return settings.model_copy(update={"workflow": workflow})


@pytest.fixture
def settings(service_url: str, database_url: str) -> Settings:
    """conftest's settings with the app's own sweeper off: the tests run sweeps themselves."""
    base = Settings(database_url=service_url, owner_database_url=database_url)
    return _settings(base)


@pytest.fixture
def fresh(engine):
    """The demo's notifications as a deployment's history, from before any webhook existed
    (older than the look-back): a target starts from its addition, not from the beginning."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE outbox SET created_at = created_at - interval '1 day'"))
        return connection.execute(text("SELECT count(*) FROM outbox")).scalar_one()


def _report(client, tokens, number: int, source: str = "hotline_12345") -> int:
    body = {
        "source": source,
        "external_id": f"hook-{number}",
        "category_code": "E01",
        "description": "占道经营",
        "lon": 120.59 + number * 1e-5,
        "lat": 31.30,
        "crs": "EPSG:4326",
    }
    answer = client.post("/api/v1/events", json=body, headers=bearer(tokens["dispatcher"]))
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _new_notifications(engine, history: int) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT id FROM outbox ORDER BY id OFFSET :skip"), {"skip": history}
            ).scalars()
        )


def _make_due(engine) -> None:
    """Skip the back-off's wait (the schedule itself is tested in test_back_off_grows...)."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE outbox_delivery SET next_attempt_at = now() WHERE delivered_at IS NULL")
        )


def _deliveries(engine, target: str = "hotline") -> dict[int, dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT * FROM outbox_delivery WHERE target = :t ORDER BY outbox_id"),
            {"t": target},
        ).mappings()
        return {r["outbox_id"]: dict(r) for r in rows}


# Signatures and settings ---------------------------------------------------------------------


def test_signature_is_hmac_of_timestamp_and_body_and_checks_freshness():
    body = b'{"id":1}'
    headers = signed_headers(SECRET, body, 1, now=1_700_000_000)
    assert headers["Idempotency-Key"] == "1"
    assert headers["X-Wangge-Signature"] == signature(SECRET, 1_700_000_000, body)
    assert (
        headers["X-Wangge-Signature"].startswith("sha256=")
        and len(headers["X-Wangge-Signature"]) == 71
    )
    stamp, mac = headers["X-Wangge-Timestamp"], headers["X-Wangge-Signature"]
    assert verify(SECRET, stamp, mac, body, now=1_700_000_010)
    assert not verify(SECRET, stamp, mac, b'{"id":2}', now=1_700_000_010)  # body changed
    assert not verify("another-secret-16chars", stamp, mac, body, now=1_700_000_010)
    assert not verify(SECRET, stamp, mac, body, now=1_700_000_000 + 301)  # replayed late
    assert not verify(SECRET, "1700000001", mac, body, now=1_700_000_010)  # date changed
    assert not verify(SECRET, None, mac, body) and not verify(SECRET, "x", mac, body)


def test_webhook_settings_are_validated(monkeypatch):
    hooks = '[{"name": "hotline-12345", "url": "https://12345.example.cn/hook", "secret": "%s"}]'
    monkeypatch.setenv("WANGGE_WORKFLOW__WEBHOOKS", hooks % SECRET)
    [target] = Settings().workflow.webhooks
    assert (target.name, target.url, target.secret) == (
        "hotline-12345",
        "https://12345.example.cn/hook",
        SECRET,
    )
    monkeypatch.setenv("WANGGE_WORKFLOW__WEBHOOKS", hooks % "short-secret")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings()
    bad = [
        {"name": "hotline", "url": "https://x", "secret": "x" * 15},  # 15 < 16
        {"name": "Hot Line", "url": "https://x", "secret": SECRET},
        {"name": "hotline", "url": "ftp://x", "secret": SECRET},
    ]
    for fields in bad:
        with pytest.raises(ValidationError):
            WebhookTarget(**fields)
    assert len(bad) == 3


def test_back_off_grows_to_its_cap_with_jitter_that_never_shrinks_it():
    policy = RetryPolicy(base_seconds=1, cap_seconds=3600)
    lowest = [policy.delay(n, lambda: 0.0) for n in range(1, 16)]
    highest = [policy.delay(n, lambda: 1.0) for n in range(1, 16)]
    assert highest[:4] == [1, 2, 4, 8] and lowest[:4] == [0.5, 1, 2, 4]
    assert highest[-1] == 3600 and lowest[-1] == 1800  # capped at an hour
    # Whatever the jitter, attempt n + 1 never waits less than attempt n could have.
    assert all(lowest[n + 1] >= highest[n] for n in range(11))


# Delivery ------------------------------------------------------------------------------------


def test_each_notification_is_delivered_signed_once_and_in_order_per_event(
    client, tokens, engine, settings, receiver, fresh
):
    first = _report(client, tokens, 1)
    _report(client, tokens, 2)
    answer = client.post(
        f"/api/v1/events/{first}/transitions",
        json={"action": "accept", "version": 1},
        headers=bearer(tokens["dispatcher"]),
    )
    assert answer.status_code == 200, answer.text
    expected = _new_notifications(engine, fresh)
    assert len(expected) == 3  # two reports, one acceptance
    deliverer = Deliverer(engine, [_target(receiver.url)], FAST)
    report = deliverer.round()
    assert (report.seeded, report.delivered, report.failed) == (3, 3, 0)
    assert sorted(receiver.ids()) == expected  # the demo's history is not replayed
    assert all(r["signed"] for r in receiver.requests)
    assert [r["key"] for r in receiver.requests] == [
        str(r["json"]["id"]) for r in receiver.requests
    ]
    events = [r["json"]["event_id"] for r in receiver.requests]
    assert [i for i, e in zip(receiver.ids(), events, strict=True) if e == first] == [
        expected[0],
        expected[2],
    ]
    accepted = receiver.requests[events.index(first, events.index(first) + 1)]["json"]
    assert set(accepted) == {"id", "kind", "event_id", "created_at", "payload"}
    assert accepted["kind"] == "transition" and accepted["payload"]["action"] == "accept"
    assert all(row["delivered_at"] is not None for row in _deliveries(engine).values())
    assert deliverer.round().delivered == 0  # nothing twice
    assert len(receiver.requests) == 3
    deliverer.close()


def test_nothing_is_lost_while_the_receiver_is_down(client, tokens, engine, fresh):
    port = _free_port()  # nothing listens here yet: connection refused
    deliverer = Deliverer(engine, [_target(f"http://127.0.0.1:{port}/hook")], FAST)
    for number in range(4):
        _report(client, tokens, number)
    report = deliverer.round()
    assert (report.delivered, report.failed) == (0, 1)  # the target's other rows wait with it
    assert report.errors["hotline"].startswith("network: ConnectError")
    rows = _deliveries(engine)
    assert len(rows) == 4 and sum(r["attempts"] for r in rows.values()) == 1
    _make_due(engine)
    receiver = Receiver(port)  # the receiver comes back on its address
    try:
        _report(client, tokens, 9)  # and more happens meanwhile
        report = deliverer.round()
        assert (report.delivered, report.failed) == (5, 0)
        assert sorted(receiver.ids()) == _new_notifications(engine, fresh)
        assert all(
            r["delivered_at"] and r["last_error"] is None for r in _deliveries(engine).values()
        )
    finally:
        receiver.close()
        deliverer.close()


def test_retries_after_500_and_timeout_carry_the_same_key_and_bytes(
    client, tokens, engine, receiver, fresh
):
    _report(client, tokens, 1)
    deliverer = Deliverer(engine, [_target(receiver.url)], FAST)
    receiver.mode = "fail"
    assert deliverer.round().errors == {"hotline": "HTTP 500"}
    _make_due(engine)
    receiver.mode = "slow"
    assert deliverer.round().errors["hotline"] == "timeout: ReadTimeout"
    _make_due(engine)
    receiver.mode = "ok"
    assert deliverer.round().delivered == 1
    assert [r["mode"] for r in receiver.requests] == ["fail", "slow", "ok"]
    assert [r["attempt"] for r in receiver.requests] == [1, 2, 3]
    assert len({r["key"] for r in receiver.requests}) == 1  # one idempotency key
    assert len({r["body"] for r in receiver.requests}) == 1  # the same bytes each time
    [row] = _deliveries(engine).values()
    assert row["attempts"] == 3 and row["delivered_at"] is not None and row["last_error"] is None
    deliverer.close()


def test_back_off_schedule_is_kept_and_grows(client, tokens, engine, receiver, fresh):
    _report(client, tokens, 1)
    receiver.mode = "fail"
    policy = RetryPolicy(base_seconds=100, cap_seconds=10_000, timeout_seconds=2, batch=5)
    deliverer = Deliverer(engine, [_target(receiver.url)], policy, rng=lambda: 0.5)
    waits = []
    for attempt in range(1, 5):
        assert deliverer.round().failed == 1
        assert deliverer.round().failed == 0  # not due again before its time
        with engine.begin() as connection:
            waits.append(
                connection.execute(
                    text("SELECT extract(epoch FROM next_attempt_at - now()) FROM outbox_delivery")
                ).scalar_one()
            )
            # Pretend the wait is over.
            connection.execute(text("UPDATE outbox_delivery SET next_attempt_at = now()"))
        assert len(receiver.requests) == attempt
    # 75 s, 150 s, 300 s, 600 s (half the ceiling plus half the jitter), a little less by now.
    assert [round(w / 75) for w in waits] == [1, 2, 4, 8]
    deliverer.close()


def test_a_worker_that_dies_mid_send_is_covered_by_its_lease(
    client, tokens, engine, receiver, fresh
):
    _report(client, tokens, 1)
    target = _target(receiver.url)
    dying = Deliverer(engine, [target], FAST)
    with engine.begin() as connection:
        outbox_rows.seed_deliveries(connection, ["hotline"])
        [claimed] = outbox_rows.claim_due(connection, ["hotline"], batch=5, lease_seconds=60)
    assert dying.send(claimed) is None  # sent, then the process dies before recording it
    dying.close()
    survivor = Deliverer(engine, [target], FAST)
    assert survivor.round().delivered == 0  # leased: not due while the lease runs
    with engine.begin() as connection:
        connection.execute(text("UPDATE outbox_delivery SET next_attempt_at = now()"))  # lease over
    assert survivor.round().delivered == 1
    keys = [r["key"] for r in receiver.requests]
    assert len(keys) == 2 and len(set(keys)) == 1  # at least once: twice, same key
    assert [r["attempt"] for r in receiver.requests] == [1, 2]
    survivor.close()


def test_two_workers_never_send_the_same_notification(client, tokens, engine, database_url, fresh):
    receiver = Receiver(delay_s=0.02)  # slow enough that the workers overlap
    batch = [
        {
            "source": "app",
            "external_id": f"pair-{n}",
            "category_code": "E01",
            "lon": 120.59 + n * 1e-5,
            "lat": 31.30,
            "crs": "EPSG:4326",
        }
        for n in range(40)
    ]
    answer = client.post(
        "/api/v1/events", json={"events": batch}, headers=bearer(tokens["dispatcher"])
    )
    assert answer.status_code == 200, answer.text
    for event_id in [r["event"]["id"] for r in answer.json()["results"][:10]]:
        assert (
            client.post(
                f"/api/v1/events/{event_id}/transitions",
                json={"action": "accept", "version": 1},
                headers=bearer(tokens["dispatcher"]),
            ).status_code
            == 200
        )
    expected = _new_notifications(engine, fresh)
    assert len(expected) == 50
    engines = [create_engine(database_url), create_engine(database_url)]
    workers = [Deliverer(e, [_target(receiver.url)], FAST) for e in engines]
    reports = []
    start = threading.Barrier(2)

    def work(deliverer: Deliverer) -> None:
        start.wait()
        reports.append(deliverer.round())

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        ids = receiver.ids()
        assert sorted(ids) == expected  # every one, none twice
        assert sum(r.delivered for r in reports) == 50 and len(reports) == 2
        order: dict[int, list[int]] = {}
        for request in receiver.requests:
            order.setdefault(request["json"]["event_id"], []).append(request["json"]["id"])
        assert all(ids == sorted(ids) for ids in order.values())  # per event, in order
        assert sum(len(v) == 2 for v in order.values()) == 10
    finally:
        for worker, engine_ in zip(workers, engines, strict=True):
            worker.close()
            engine_.dispose()
        receiver.close()


def test_a_target_added_later_starts_from_its_addition(client, tokens, engine, receiver, fresh):
    _report(client, tokens, 1)
    first = Deliverer(engine, [_target(receiver.url)], FAST)
    assert first.round().delivered == 1
    with engine.begin() as connection:  # an hour later, a second receiver is configured
        connection.execute(text("UPDATE outbox SET created_at = created_at - interval '1 hour'"))
    _report(client, tokens, 2)
    both = Deliverer(engine, [_target(receiver.url), _target(receiver.url, "bridge")], FAST)
    report = both.round()
    assert (report.seeded, report.delivered) == (2, 2)  # the new one, to each target
    assert len(_deliveries(engine, "bridge")) == 1
    assert len(_deliveries(engine, "hotline")) == 2
    first.close()
    both.close()


# The status endpoint and the command line ----------------------------------------------------


@pytest.fixture
def outbox_client(settings):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_status_endpoint_counts_per_target_for_admins_only(outbox_client, tokens, engine, fresh):
    client = outbox_client
    _report(client, tokens, 1)
    _report(client, tokens, 2)
    deliverer = Deliverer(engine, [_target(f"http://127.0.0.1:{_free_port()}/hook")], FAST)
    deliverer.round()
    deliverer.close()
    answer = client.get("/api/v1/outbox?pending=true", headers=bearer(tokens["admin"]))
    assert answer.status_code == 200, answer.text
    status = answer.json()
    [target] = status["targets"]
    assert (target["name"], target["configured"], target["pending"], target["failing"]) == (
        "hotline",
        False,  # the app under test has no webhooks configured; the rows remain visible
        2,
        1,
    )
    assert target["oldest_pending_at"] is not None and "delivered" not in target
    assert len(status["pending"]) == 2 and len(status["last_errors"]) == 1
    assert status["last_errors"][0]["last_error"].startswith("network: ConnectError")
    full = client.get("/api/v1/outbox", headers=bearer(tokens["admin"])).json()
    assert full["targets"][0]["delivered"] == 0 and "pending" not in full
    for role, code in (("viewer", 403), ("dispatcher", 403)):
        assert client.get("/api/v1/outbox", headers=bearer(tokens[role])).status_code == code
    assert client.get("/api/v1/outbox").status_code == 401
    bad = client.get("/api/v1/outbox?limit=0", headers=bearer(tokens["admin"]))
    assert bad.status_code == 422 and bad.json()["error"]["where"] == "query.limit"


def test_cli_delivers_from_the_environment_and_reports_status(
    client, tokens, database_url, receiver, fresh
):
    _report(client, tokens, 1)
    hooks = orjson.dumps([{"name": "hotline", "url": receiver.url, "secret": SECRET}]).decode()
    env = {**os.environ, "WANGGE_DATABASE_URL": database_url, "WANGGE_WORKFLOW__WEBHOOKS": hooks}
    wangge = str(Path(sys.executable).with_name("wangge"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [wangge, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    before = run("outbox", "status", "--json")
    assert before.returncode == 0, before.stderr  # nothing matched to the target yet
    delivered = run("outbox", "deliver", "--once")
    assert delivered.returncode == 0, delivered.stderr
    assert "送达 1" in delivered.stdout and len(receiver.ids()) == 1
    after = orjson.loads(run("outbox", "status", "--json").stdout)
    assert after["targets"][0]["pending"] == 0 and after["targets"][0]["configured"]
    swept = run("warnings", "sweep")
    assert swept.returncode == 0 and "推送预警" in swept.stdout


# Warnings ------------------------------------------------------------------------------------

NOW = datetime(2024, 9, 25, 10, 0, tzinfo=SHANGHAI)  # a Wednesday, a working day


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 9, day, hour, minute, tzinfo=SHANGHAI)


def _event_with_clock(engine, external_id: str, status: str, start: datetime, due: datetime) -> int:
    """A demo event put on a clock by hand: before acceptance the accept clock, after it the
    handling clock (as api/workflow/warnings.py reads them)."""
    accept = status == "reported"
    with engine.begin() as connection:
        return connection.execute(
            text(
                "UPDATE event SET status = :status, external_id = :external_id, "
                "reported_at = :start, received_at = :start, accept_due_at = :accept_due, accepted_at = :accepted, "
                "due_at = :due, warning_level = 0 "
                "WHERE id = (SELECT min(id) FROM event WHERE external_id NOT LIKE 'clock-%' "
                "AND status IN ('closed', 'evaluated')) RETURNING id"
            ),
            {
                "status": status,
                "external_id": external_id,
                "start": start,
                "accept_due": due if accept else None,
                "accepted": None if accept else start,
                "due": None if accept else due,
            },
        ).scalar_one()


def _warnings_pushed(engine) -> list[tuple[int, str]]:
    with engine.connect() as connection:
        return [
            (event_id, payload["level"])
            for event_id, payload in connection.execute(
                text("SELECT event_id, payload FROM outbox WHERE kind = 'warning' ORDER BY id")
            ).all()
        ]


def test_warnings_are_pushed_once_per_level(engine, settings):
    workflow = settings.workflow
    with engine.begin() as connection:  # the demo's own clocks run elsewhere: stop them
        connection.execute(text("UPDATE event SET warning_level = 2"))
    # Monday 09:00 → Wednesday 11:00 is 17 working hours; by Wednesday 10:00, 16 are used (94 %).
    nearly = _event_with_clock(engine, "clock-1", "reported", _local(23, 9), _local(25, 11))
    late = _event_with_clock(engine, "clock-2", "dispatched", _local(20, 9), _local(24, 17))
    later = _event_with_clock(engine, "clock-3", "processing", _local(25, 9), _local(30, 17))
    pushed = sweep_warnings(engine, workflow, now=NOW)
    assert [(p["event_id"], p["level"]) for p in pushed] == [(nearly, "yellow"), (late, "red")]
    first = pushed[0]
    assert first["clock"] == "accept" and first["external_id"] == "clock-1"
    assert {"due_at", "grid_code", "unit_code", "share_used", "label_zh"} <= set(first)
    assert sweep_warnings(engine, workflow, now=NOW + timedelta(minutes=5)) == []  # once
    # Thursday: the first is overdue (red, once more); the third is not yet at 80 %.
    pushed = sweep_warnings(engine, workflow, now=_local(26, 9))
    assert [(p["event_id"], p["level"]) for p in pushed] == [(nearly, "red")]
    assert sweep_warnings(engine, workflow, now=_local(26, 9, 30)) == []
    assert _warnings_pushed(engine) == [(nearly, "yellow"), (late, "red"), (nearly, "red")]
    with engine.connect() as connection:
        levels = dict(
            connection.execute(
                text("SELECT id, warning_level FROM event WHERE id = ANY(:ids)"),
                {"ids": [nearly, late, later]},
            ).all()
        )
    assert levels == {nearly: 2, late: 2, later: 0}
    # A postponement resets the level (api/workflow/transitions.py): the new clock warns again.
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE event SET warning_level = 0, accept_due_at = :due WHERE id = :id"),
            {"due": _local(27, 9), "id": nearly},
        )
    pushed = sweep_warnings(engine, workflow, now=_local(26, 17))
    assert [(p["event_id"], p["level"]) for p in pushed] == [(nearly, "yellow")]


def _expected_warnings(engine, workflow, moment) -> dict[int, str]:
    """Every open event asked one by one: what the sweep must push at `moment` (from level 0)."""
    with engine.connect() as connection:
        catalogue = load_catalogue(connection, workflow)
        events = [
            dict(r)
            for r in connection.execute(
                text("SELECT * FROM event WHERE status = ANY(:s)"),
                {"s": [s.value for s in OPEN]},
            ).mappings()
        ]
    assert len(events) > 50
    expected = {}
    for event in events:
        answer = warning(event, catalogue.calendar, moment, workflow.yellow_share)
        if answer and answer["level"]:
            expected[event["id"]] = answer["level"]
    return expected


def test_concurrent_sweeps_push_each_warning_once(engine, database_url, settings):
    moment = datetime.now(UTC) + timedelta(days=2)
    expected = _expected_warnings(engine, settings.workflow, moment)
    assert len(expected) > 10
    engines = [create_engine(database_url), create_engine(database_url)]
    results: list[list] = []
    barrier = threading.Barrier(2)

    def sweep(engine_) -> None:
        barrier.wait()
        results.append(sweep_warnings(engine_, settings.workflow, now=moment))

    threads = [threading.Thread(target=sweep, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for engine_ in engines:
        engine_.dispose()
    pushed = _warnings_pushed(engine)
    assert len(results) == 2 and sum(len(r) for r in results) == len(pushed)
    assert dict(pushed) == expected and len(pushed) == len(expected)  # each once


@pytest.mark.parametrize("hours", [-240, -26, -3, 0, 2, 20, 50, 75, 240, 24 * 60])
def test_the_prefilter_misses_no_warning(engine, settings, hours):
    """The sweep at moments around the demo street's clocks pushes exactly what asking every
    open event one by one says."""
    moment = datetime.now(UTC) + timedelta(hours=hours)
    expected = _expected_warnings(engine, settings.workflow, moment)
    pushed = {p["event_id"]: p["level"] for p in sweep_warnings(engine, settings.workflow, moment)}
    assert pushed == expected


def test_staircase_walks_agree_with_the_calendar():
    holidays = {date(2024, 10, d): False for d in range(1, 8)} | {date(2024, 9, 29): True}
    calendar = WorkCalendar(exceptions=holidays)
    rng = random.Random(7)
    for _ in range(40):
        now = datetime(2024, 9, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(60 * 24 * 90))
        hours = sorted(rng.uniform(0, 200) for _ in range(5))
        for moment, amount in zip(_forward(calendar, now, hours), hours, strict=True):
            assert calendar.hours_between(now, moment) == pytest.approx(amount, abs=1e-6)
            assert moment == calendar.add_hours(now, amount)
        for moment, amount in zip(_backward(calendar, now, hours), hours, strict=True):
            assert calendar.hours_between(moment, now) == pytest.approx(amount, abs=1e-6)
    bounds = staircase(calendar, datetime(2024, 9, 30, 9, tzinfo=SHANGHAI), 0.8)
    assert len(bounds.due_before) == len(bounds.start_before) == 25
    assert bounds.due_before == sorted(bounds.due_before)
    assert bounds.start_before[1:] == sorted(bounds.start_before[1:], reverse=True)
    assert LEVELS == {None: 0, "yellow": 1, "red": 2}


# The sweeper thread --------------------------------------------------------------------------


def test_the_apps_sweeper_delivers_and_stops_promptly(settings, tokens, engine, receiver, fresh):
    from fastapi.testclient import TestClient

    from api.app import create_app

    fast = _settings(settings, _target(receiver.url), sweep_seconds=0.2)
    with TestClient(create_app(fast)) as client:
        sweeper = client.app.state.sweeper
        event_id = _report(client, tokens, 1)
        with engine.connect() as connection:
            [report] = connection.execute(
                text("SELECT id FROM outbox WHERE event_id = :id"), {"id": event_id}
            ).scalars()
        deadline = time.monotonic() + 60
        while report not in receiver.ids() and time.monotonic() < deadline:
            time.sleep(0.1)
        # The report, and the demo street's warnings pushed by the same sweeper, each once.
        assert report in receiver.ids() and len(receiver.ids()) == len(set(receiver.ids()))
        assert all(r["signed"] for r in receiver.requests)
        thread = sweeper._thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive()  # stopped with the app


def test_the_sweeper_survives_an_unreachable_database(settings, caplog):
    gone = settings.model_copy(
        update={"database_url": f"postgresql://nobody@127.0.0.1:{_free_port()}/none"}
    )
    gone = _settings(gone, _target("http://127.0.0.1:9/hook"), sweep_seconds=0.05)
    broken = create_engine(gone.resolved_database_url())
    sweeper = Sweeper(broken, gone, FAST)
    assert sweeper.run_once() is None  # logged, not raised
    assert "warning sweep failed" in caplog.text and "delivery round failed" in caplog.text
    sweeper.start()
    time.sleep(0.3)
    assert sweeper._thread is not None and sweeper._thread.is_alive()
    sweeper.stop()
    assert sweeper._thread is None
    broken.dispose()
    assert WorkflowSettings().sweep_seconds == 30
