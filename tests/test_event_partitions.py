"""The event table partitioned by month (migrations/0008): rows in their month, the default
partition and moving out of it, the keys and children kept by foreign keys, lookups by id,
pruning of the figures' queries, creating months without DDL rights, and the upgrade of a
database that already holds events."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from api.db import kpis, migrate
from api.db import partitions as event_partitions
from api.workflow.calendar import SHANGHAI
from tests.conftest import bearer, create_database, drop_database
from tests.test_cli import run


def _where(connection, event_id: int) -> str | None:
    return connection.execute(
        text(
            "SELECT c.relname FROM event e JOIN pg_class c ON c.oid = e.tableoid WHERE e.id = :id"
        ),
        {"id": event_id},
    ).scalar()


def _children(connection, event_id: int) -> tuple[int, int, int]:
    return tuple(
        connection.execute(
            text(
                "SELECT (SELECT count(*) FROM event_history WHERE event_id = :id), "
                "(SELECT count(*) FROM supervision WHERE event_id = :id), "
                "(SELECT count(*) FROM event_key WHERE id = :id)"
            ),
            {"id": event_id},
        ).one()
    )


def test_demo_events_are_in_their_local_month(engine):
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT e.reported_at, c.relname FROM event e JOIN pg_class c ON c.oid = e.tableoid"
            )
        ).all()
        listed = event_partitions.partition_rows(connection)
    assert len(rows) == 3000
    assert sum(1 for at, name in rows if name != event_partitions.month_name(at)) == 0
    # Every month of the demo's year, this month and three ahead, and the default partition.
    now = datetime.now(SHANGHAI)
    ahead = {
        event_partitions.month_name(
            datetime(
                now.year + (now.month - 1 + i) // 12,
                (now.month - 1 + i) % 12 + 1,
                15,
                tzinfo=SHANGHAI,
            )
        )
        for i in range(4)
    }
    months = {name for _, name in rows} | ahead
    assert [r["name"] for r in listed] == [*sorted(months), "event_default"]
    assert {r["name"]: r["rows"] for r in listed}["event_default"] == 0
    assert sum(r["rows"] for r in listed) == 3000


def test_a_month_without_partition_waits_in_the_default_and_moves_out(engine, service_url):
    """A row of a month that has no partition is kept in the default partition; creating the
    month (as the service role, through the schema's function) moves it, id and children intact."""
    service = create_engine(service_url)
    try:
        with service.begin() as connection:
            event_id = connection.execute(
                text(
                    "INSERT INTO event (source, external_id, category_code, status, reported_at) "
                    "VALUES ('legacy', 'old-1', 'E01', 'closed', '2019-05-20 10:00+08') RETURNING id"
                )
            ).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO event_history (event_id, status, action, actor) "
                    "VALUES (:id, 'closed', 'report', 'import')"
                ),
                {"id": event_id},
            )
            connection.execute(
                text(
                    "INSERT INTO supervision (event_id, reason, issued_by) "
                    "VALUES (:id, '请加快', 'test')"
                ),
                {"id": event_id},
            )
        with service.connect() as connection:
            assert _where(connection, event_id) == "event_default"
            assert _children(connection, event_id) == (1, 1, 1)
        with service.begin() as connection:
            made = connection.execute(
                text("SELECT event_partition_ensure('2019-05-01 00:00+08')")
            ).scalar()
            again = connection.execute(
                text("SELECT event_partition_ensure('2019-05-31 23:59+08')")
            ).scalar()
            refused = connection.execute(
                text("SELECT event_partition_ensure('1999-12-31 12:00+08')")
            ).scalar()
        assert (made, again, refused) == ("event_2019_05", "event_2019_05", None)
        with service.connect() as connection:
            assert _where(connection, event_id) == "event_2019_05"
            assert _children(connection, event_id) == (1, 1, 1)
            bound = connection.execute(
                text(
                    "SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
                    "WHERE relname = 'event_2019_05'"
                )
            ).scalar()
            left = connection.execute(
                text(
                    "SELECT count(*) FROM event e JOIN pg_class c ON c.oid = e.tableoid "
                    "WHERE c.relname = 'event_default'"
                )
            ).scalar()
        assert left == 0 and bound == (
            "FOR VALUES FROM ('2019-04-30 16:00:00+00') TO ('2019-05-31 16:00:00+00')"
        )
    finally:
        service.dispose()


def test_the_service_role_creates_months_only_through_the_function(service_url):
    service = create_engine(service_url)
    try:
        with (
            pytest.raises(ProgrammingError, match="permission denied"),
            service.begin() as connection,
        ):
            connection.execute(
                text(
                    "CREATE TABLE event_part.event_2018_01 PARTITION OF event "
                    "FOR VALUES FROM ('2017-12-31 16:00+00') TO ('2018-01-31 16:00+00')"
                )
            )
        with service.begin() as connection:
            default_rows = (
                connection.execute(
                    text(
                        "INSERT INTO event (source, external_id, status, reported_at) VALUES "
                        "('legacy', 'a', 'closed', '2018-01-03 08:00+08'), "
                        "('legacy', 'b', 'closed', '2018-03-03 08:00+08') RETURNING id"
                    )
                )
                .scalars()
                .all()
            )
    finally:
        service.dispose()
    assert len(default_rows) == 2
    # The maintenance command, as the service connects: months ahead plus each month waiting in
    # the default partition.
    answer = run("events", "partitions", "--json", env={"WANGGE_DATABASE_URL": service_url})
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert body["created"] == ["event_2018_01", "event_2018_03"]
    rows = {r["name"]: r["rows"] for r in body["partitions"]}
    assert rows["event_2018_01"] == 1 and rows["event_2018_03"] == 1 and rows["event_default"] == 0
    listed = run("events", "partitions", "--list", env={"WANGGE_DATABASE_URL": service_url})
    assert listed.returncode == 0 and "event_2018_03" in listed.stdout
    assert "本次新建 0 个" in listed.stdout


def test_intake_creates_a_missing_month_and_lookup_by_id_works(client, tokens, engine):
    event_partitions.forget_known()
    headers = bearer(tokens["dispatcher"])
    body = {
        "source": "hotline_12345",
        "external_id": "12345-2024-03",
        "category_code": "E04",
        "description": "占道经营",
        "lon": 120.7395,
        "lat": 31.3025,
        "crs": "gcj02",
        "reported_at": "2024-03-31T23:30:00+08:00",
    }
    created = client.post("/api/v1/events", json=body, headers=headers)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    with engine.connect() as connection:
        assert _where(connection, event_id) == "event_2024_03"
    # The same report again: idempotent on (source, external_id) across months.
    again = client.post("/api/v1/events", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == event_id
    changed = client.post(
        "/api/v1/events", json={**body, "reported_at": "2024-04-02T09:00:00+08:00"}, headers=headers
    )
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "external_id_conflict"
    found = client.get(f"/api/v1/events/{event_id}", headers=headers)
    assert found.status_code == 200 and found.json()["id"] == event_id
    with engine.connect() as connection:
        demo_id = connection.execute(
            text("SELECT id FROM event WHERE reported_at < now() - interval '200 days' LIMIT 1")
        ).scalar_one()
    old = client.get(f"/api/v1/events/{demo_id}", headers=headers)
    assert old.status_code == 200 and old.json()["id"] == demo_id
    assert client.get("/api/v1/events/99999999", headers=headers).status_code == 404


def test_children_need_an_event_and_go_with_it(engine):
    with engine.connect() as connection:
        event_id, merged = connection.execute(
            text(
                "SELECT e.id, (SELECT count(*) FROM event m WHERE m.merged_into = e.id) FROM event e "
                "WHERE EXISTS (SELECT 1 FROM supervision s WHERE s.event_id = e.id) "
                "AND NOT EXISTS (SELECT 1 FROM event m WHERE m.merged_into = e.id) "
                "ORDER BY e.id LIMIT 1"
            )
        ).one()
        other = connection.execute(
            text(
                "SELECT min(k.id) FROM event_key k WHERE k.id <> :id "
                "AND NOT EXISTS (SELECT 1 FROM event m WHERE m.merged_into = k.id)"
            ),
            {"id": event_id},
        ).scalar_one()
        history, orders, keys = _children(connection, event_id)
    assert history >= 5 and orders == 1 and keys == 1 and merged == 0
    for statement in (
        "INSERT INTO event_history (event_id, status) VALUES (99999999, 'reported')",
        "INSERT INTO supervision (event_id, reason, issued_by) VALUES (99999999, 'x', 'y')",
        "UPDATE event SET merged_into = 99999999 WHERE id = 1",
        "INSERT INTO event (id, source, external_id, status, reported_at) "
        "SELECT id, source, 'other', 'reported', reported_at + interval '40 days' FROM event "
        "WHERE id = 1",
    ):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(statement))
    # Moved to another month by an UPDATE: the same event, children kept.
    with engine.begin() as connection:
        before = _where(connection, event_id)
        connection.execute(
            text("UPDATE event SET reported_at = reported_at - interval '40 days' WHERE id = :id"),
            {"id": event_id},
        )
        after = _where(connection, event_id)
        assert before != after and _children(connection, event_id) == (history, orders, 1)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM event WHERE id = :id"), {"id": event_id})
        assert _children(connection, event_id) == (0, 0, 0)
    # Deleting the key deletes the event and its children too.
    with engine.begin() as connection:
        assert _children(connection, other)[2] == 1
        connection.execute(text("DELETE FROM event_key WHERE id = :id"), {"id": other})
        assert _children(connection, other) == (0, 0, 0)
        gone = connection.execute(text("SELECT count(*) FROM event WHERE id = :id"), {"id": other})
        assert gone.scalar() == 0


def _scanned(engine, call) -> list[str]:
    """The event partitions the plan of the first event query `call` runs would read."""
    seen: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if " event" in statement and not seen:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as connection:
            call(connection)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = seen[0]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0]
    finally:
        raw.close()
    names: list[str] = []

    def walk(node):
        if re.fullmatch(r"event_(\d{4}_\d{2}|default)", node.get("Relation Name", "")):
            names.append(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return sorted(names)


def test_the_figures_of_a_month_read_only_their_partitions(engine):
    with engine.connect() as connection:
        months = [
            r["name"]
            for r in event_partitions.partition_rows(connection)
            if r["name"] != "event_default"
        ]
    now = datetime.now(SHANGHAI)
    first = datetime(now.year, now.month, 1, tzinfo=SHANGHAI)
    start = (first - timedelta(days=45)).replace(day=1)  # the month before last
    end = (start + timedelta(days=32)).replace(day=1)
    name = event_partitions.month_name(start)
    earlier = [m for m in months if m <= name]

    received = _scanned(engine, lambda c: kpis.received(c, "grid", start, end, None))
    assert received == [name]
    trend = _scanned(engine, lambda c: kpis.trend(c, "day", start, end, "Asia/Shanghai", None))
    # Reports of the month from its partition; closings and deadlines from it and the months
    # before (an event is closed or due after it was reported) and the default partition (it
    # holds what is older than the first month) — never the months after the period.
    assert trend.count(name) == 3
    later = [m for m in months if m > name]
    assert not set(later) & set(trend)
    due = _scanned(engine, lambda c: kpis.due(c, "grid", start, end, None))
    assert due == sorted([*earlier, "event_default"])
    supervised = _scanned(engine, lambda c: kpis.supervised(c, "grid", start, end, None))
    assert not set(later) & set(supervised)


def test_upgrade_keeps_events_ids_and_children(admin_url):
    """A database at 0007 holding events: 0008 moves them into months (same rows, same ids,
    history, orders and merges intact), and back down to 0007 again."""
    url = create_database(admin_url, "wangge_test_event_partitions")
    engine = create_engine(url)
    try:
        migrate.upgrade(url, "0007")
        with engine.begin() as connection:
            for i, at in enumerate(("2023-01-31 23:30+08", "2023-02-01 00:10+08", None), 1):
                connection.execute(
                    text(
                        "INSERT INTO event (id, source, external_id, category_code, status, "
                        "reported_at, received_at) VALUES (:id, 'app', :e, 'E01', "
                        "'closed', :at, '2023-03-05 12:00+08')"
                    ),
                    {"id": i * 10, "e": f"x-{i}", "at": at},
                )
            connection.execute(text("UPDATE event SET merged_into = 10 WHERE id = 20"))
            connection.execute(
                text(
                    "INSERT INTO event_history (event_id, status) "
                    "SELECT id, 'closed' FROM event, generate_series(1, 3)"
                )
            )
            connection.execute(
                text("INSERT INTO supervision (event_id, reason, issued_by) VALUES (30, 'r', 'x')")
            )
            before = connection.execute(
                text("SELECT id, source, external_id, merged_into FROM event ORDER BY id")
            ).all()
        migrate.upgrade(url)
        with engine.connect() as connection:
            after = connection.execute(
                text(
                    "SELECT e.id, e.source, e.external_id, e.merged_into, c.relname FROM event e "
                    "JOIN pg_class c ON c.oid = e.tableoid ORDER BY e.id"
                )
            ).all()
            children = connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM event_history), (SELECT count(*) FROM supervision), "
                    "(SELECT count(*) FROM event_key)"
                )
            ).one()
            no_report = connection.execute(
                text("SELECT reported_at = received_at FROM event WHERE id = 30")
            ).scalar()
        assert [r[:4] for r in after] == [tuple(r) for r in before]
        assert [r[4] for r in after] == ["event_2023_01", "event_2023_02", "event_2023_03"]
        assert tuple(children) == (9, 1, 3) and no_report is True
        with engine.begin() as connection:
            new_id = connection.execute(
                text(
                    "INSERT INTO event (source, external_id, status, reported_at) "
                    "VALUES ('app', 'x-4', 'reported', now()) RETURNING id"
                )
            ).scalar()
        assert new_id not in (10, 20, 30)  # the same sequence numbers new events
        migrate.downgrade(url, "0007")
        with engine.connect() as connection:
            down = connection.execute(
                text("SELECT id, source, external_id, merged_into FROM event ORDER BY id")
            ).all()
            kept = connection.execute(
                text("SELECT count(*) FROM event_history JOIN event ON event.id = event_id")
            ).scalar()
            schema = connection.execute(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = 'event_part'")
            ).scalar()
        assert sorted(map(tuple, down)) == sorted(
            [*map(tuple, before), (new_id, "app", "x-4", None)]
        )
        assert kept == 9 and schema == 0
    finally:
        engine.dispose()
        drop_database(admin_url, "wangge_test_event_partitions")


def test_every_worker_sweeper_creates_waiting_months(service_url, settings):
    """The service's sweeper thread keeps the months coming (every few hours): a row that landed
    in the default partition is moved into its own month without anyone running the CLI."""
    from api.outbox import Sweeper

    service = create_engine(service_url)
    try:
        with service.begin() as connection:
            event_id = connection.execute(
                text(
                    "INSERT INTO event (source, external_id, status, reported_at) VALUES "
                    "('legacy', 'sweep-1', 'closed', '2017-07-07 08:00+08') RETURNING id"
                )
            ).scalar_one()
        with service.connect() as connection:
            assert _where(connection, event_id) == "event_default"
        sweeper = Sweeper(service, settings)
        sweeper.run_once()
        with service.connect() as connection:
            assert _where(connection, event_id) == "event_2017_07"
        with service.begin() as connection:  # checked once per period, not every round
            second = connection.execute(
                text(
                    "INSERT INTO event (source, external_id, status, reported_at) VALUES "
                    "('legacy', 'sweep-2', 'closed', '2016-02-02 08:00+08') RETURNING id"
                )
            ).scalar_one()
        sweeper.run_once()
        with service.connect() as connection:
            assert _where(connection, second) == "event_default"
        sweeper.deliverer.close()
    finally:
        service.dispose()
