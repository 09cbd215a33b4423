"""What a field worker's phone calls: who am I, my tasks, report from the street, arrive on the
spot, and actions replayed from an offline queue (Idempotency-Key) applied once."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from api.auth import Role, create_token
from tests.conftest import bearer
from tests.test_workflow import FIELD_GRID, _dispatched, _go, _report

OTHER_MICRO = "320571005002001001"  # another community


def _point_in(engine, code):
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE code = :c) s"
            ),
            {"c": code},
        ).one()


@pytest.fixture
def worker(engine) -> dict:
    """A field worker with their own token: the full-time worker of FIELD_GRID."""
    with engine.begin() as connection:
        staff_id, name = connection.execute(
            text(
                "SELECT s.id, s.name FROM staff s JOIN staff_assignment a ON a.staff_id = s.id "
                "WHERE a.grid_code = :g AND a.role = 'full_time_worker'"
            ),
            {"g": FIELD_GRID},
        ).one()
        secret = create_token(
            connection,
            name="网格员",
            role=Role.field_staff,
            grid_codes=(FIELD_GRID,),
            staff_id=staff_id,
            actor="tests",
        ).secret
    return {"secret": secret, "staff_id": staff_id, "name": name}


def test_who_am_i(client, worker):
    me = client.get("/api/v1/me", headers=bearer(worker["secret"])).json()
    assert me["role"] == "field_staff" and me["staff_name"] == worker["name"]
    assert me["grids"][0]["code"] == FIELD_GRID and me["grids"][0]["name"]
    assert client.get("/api/v1/me").status_code == 401


def test_my_tasks_are_my_grids_and_what_is_assigned_to_me(client, tokens, engine, worker):
    inside = _point_in(engine, FIELD_GRID + "001")
    mine = _dispatched(client, tokens, *inside, external_id="task-mine")
    elsewhere = _point_in(engine, OTHER_MICRO)
    other = _dispatched(client, tokens, *elsewhere, external_id="task-other")
    assigned = _report(client, tokens, *elsewhere, external_id="task-assigned")["id"]
    assert _go(client, tokens["dispatcher"], assigned, "accept", 1).status_code == 200
    sent = _go(client, tokens["dispatcher"], assigned, "dispatch", 2, assignee=worker["staff_id"])
    assert sent.status_code == 200, sent.text
    body = client.get("/api/v1/me/tasks", headers=bearer(worker["secret"])).json()
    ids = [task["id"] for task in body["tasks"]]
    assert mine in ids and assigned in ids and other not in ids
    task = {t["id"]: t for t in body["tasks"]}
    assert task[assigned]["assigned_to_me"] and "start" in task[assigned]["allowed_actions"]
    assert (
        task[mine]["description"] == "楼下垃圾堆放" and task[mine]["warning"]["clock"] == "handle"
    )
    assert body["counts"]["total"] == len(ids) and body["counts"]["dispatched"] >= 2
    # Assigned to me outside my grids: I may act on it.
    assert _go(client, worker["secret"], assigned, "start", 3).status_code == 200
    handler = client.get("/api/v1/me/tasks", headers=bearer(tokens["handler"])).json()
    assert all(t["unit_code"] == "community" for t in handler["tasks"]) and handler["tasks"]


def test_reports_from_the_street_are_idempotent(client, tokens, engine, worker):
    lon, lat = _point_in(engine, FIELD_GRID + "002")
    key = str(uuid.uuid4())
    body = {
        "client_id": key,
        "category_code": "E01",
        "description": "垃圾满溢",
        "lon": lon,
        "lat": lat,
    }
    first = client.post("/api/v1/reports", json=body, headers=bearer(worker["secret"]))
    assert first.status_code == 201, first.text
    event = first.json()
    assert event["source"] == "patrol" and event["grid_code"].startswith(FIELD_GRID)
    again = client.post("/api/v1/reports", json=body, headers=bearer(worker["secret"]))
    assert again.status_code == 200 and again.json()["id"] == event["id"]
    changed = client.post(
        "/api/v1/reports",
        json={**body, "description": "另一件事"},
        headers=bearer(worker["secret"]),
    )
    assert changed.status_code == 409
    assert (
        client.post("/api/v1/reports", json=body, headers=bearer(tokens["viewer"])).status_code
        == 403
    )
    half = client.post(
        "/api/v1/reports",
        json={**body, "client_id": str(uuid.uuid4()), "lat": None},
        headers=bearer(worker["secret"]),
    )
    assert half.status_code == 422
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM event WHERE external_id LIKE :k"), {"k": f"%{key}"}
        ).scalar_one()
    assert count == 1


def test_arrive_records_the_distance_from_the_event(client, tokens, engine, worker):
    lon, lat = _point_in(engine, FIELD_GRID + "001")
    event_id = _dispatched(client, tokens, lon, lat, external_id="arrive-1")
    missing = _go(client, worker["secret"], event_id, "arrive", 3)
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "missing_field"
    answer = _go(
        client, worker["secret"], event_id, "arrive", 3, lon=lon + 0.0005, lat=lat, crs="EPSG:4326"
    )
    assert answer.status_code == 200 and answer.json()["status"] == "dispatched"
    assert 40 < answer.json()["details"]["distance_m"] < 55  # 0.0005° of longitude at 31°N


def test_an_action_replayed_from_the_offline_queue_is_applied_once(client, tokens, engine, worker):
    lon, lat = _point_in(engine, FIELD_GRID + "001")
    event_id = _dispatched(client, tokens, lon, lat, external_id="replay-1")
    headers = {**bearer(worker["secret"]), "Idempotency-Key": "q-1"}
    body = {"action": "start", "version": 3}
    first = client.post(f"/api/v1/events/{event_id}/transitions", json=body, headers=headers)
    again = client.post(f"/api/v1/events/{event_id}/transitions", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    reused = client.post(
        f"/api/v1/events/{event_id}/transitions",
        json={"action": "return", "version": 4, "note": "x"},
        headers=headers,
    )
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    # Without a key, the same replay is a stale version: the phone would show a conflict.
    plain = client.post(
        f"/api/v1/events/{event_id}/transitions", json=body, headers=bearer(worker["secret"])
    )
    assert plain.status_code == 409
    with engine.connect() as connection:
        starts = connection.execute(
            text("SELECT count(*) FROM event_history WHERE event_id = :id AND action = 'start'"),
            {"id": event_id},
        ).scalar_one()
    assert starts == 1
    bad = client.post(
        f"/api/v1/events/{event_id}/transitions",
        json=body,
        headers={**bearer(worker["secret"]), "Idempotency-Key": "bad key!"},
    )
    assert bad.status_code == 422


def test_the_same_person_does_not_verify_with_a_second_phone(client, tokens, engine, worker):
    with engine.begin() as connection:
        second = create_token(
            connection,
            name="网格员第二部手机",
            role=Role.field_staff,
            grid_codes=(FIELD_GRID,),
            staff_id=worker["staff_id"],
            actor="tests",
        ).secret
    lon, lat = _point_in(engine, FIELD_GRID + "001")
    event_id = _dispatched(client, tokens, lon, lat, external_id="two-phones")
    assert _go(client, worker["secret"], event_id, "start", 3).status_code == 200
    assert _go(client, worker["secret"], event_id, "handle", 4, note="已处理").status_code == 200
    again = _go(client, second, event_id, "verify", 5)
    assert again.status_code == 403 and again.json()["error"]["code"] == "same_person"
    assert _go(client, tokens["supervisor"], event_id, "verify", 5).status_code == 200


def test_positions_outside_china_or_on_the_moon_are_refused(client, tokens, engine, worker):
    body = {"client_id": str(uuid.uuid4()), "category_code": "E04"}
    for position, code in (
        ({"lon": 2.35, "lat": 48.85}, "outside_china"),  # Paris
        ({"lon": 120.7214, "lat": 31.3188, "crs": "EPSG:3857"}, "outside_china"),  # metres near 0,0
        ({"lon": 120.7214, "lat": 31.3188, "crs": "IAU_2015:30100"}, "unknown_crs"),  # the Moon
    ):
        answer = client.post(
            "/api/v1/reports", json={**body, **position}, headers=bearer(worker["secret"])
        )
        assert answer.status_code == 422 and answer.json()["error"]["code"] == code, (
            position,
            answer.text,
        )
    lon, lat = _point_in(engine, FIELD_GRID + "001")
    event_id = _dispatched(client, tokens, lon, lat, external_id="far-arrive")
    far = _go(client, worker["secret"], event_id, "arrive", 3, lon=2.35, lat=48.85, crs="EPSG:4326")
    assert far.status_code == 422 and far.json()["error"]["code"] == "outside_china"


def test_gbk_tracks_are_read_and_a_patrol_ends_after_its_last_fix(client, worker):
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC) - timedelta(hours=2)
    points = "".join(
        f'<trkpt lat="{31.3190 + i * 0.0001:.4f}" lon="120.7212"><time>{(start + timedelta(seconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")}</time></trkpt>'
        for i in range(5)
    )
    gpx = f'<?xml version="1.0" encoding="GBK"?><gpx version="1.1"><trk><name>巡查</name><trkseg>{points}</trkseg></trk></gpx>'
    uploaded = client.post(
        "/api/v1/patrols/upload",
        files={"file": ("巡查.gpx", gpx.encode("gbk"), "application/gpx+xml")},
        headers=bearer(worker["secret"]),
    )
    assert uploaded.status_code == 201, uploaded.text
    patrol = client.post(
        "/api/v1/patrols",
        json={"client_id": "stop-early", "started_at": start.isoformat()},
        headers=bearer(worker["secret"]),
    ).json()
    fixes = [
        {
            "t": (start + timedelta(minutes=m)).isoformat(),
            "lon": 120.7212,
            "lat": 31.3190 + m * 0.0001,
        }
        for m in (1, 2)
    ]
    added = client.post(
        f"/api/v1/patrols/{patrol['id']}/points",
        json={"points": fixes},
        headers=bearer(worker["secret"]),
    )
    assert added.status_code == 200, added.text
    early = client.post(
        f"/api/v1/patrols/{patrol['id']}/stop",
        json={"ended_at": (start + timedelta(seconds=90)).isoformat()},
        headers=bearer(worker["secret"]),
    )
    assert early.status_code == 422 and early.json()["error"]["code"] == "ended_before_last_fix"
