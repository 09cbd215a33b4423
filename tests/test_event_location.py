"""人工定位: a dispatcher puts an address-only event the geocoder could not place on one grid
(`POST /api/v1/events/{id}/location`) — by grid, by gazetteer place, by point — and the dispatch
proposal and the field staff who see it follow the new grid. End to end on the demo street."""

from __future__ import annotations

from itertools import count
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.auth import Role, create_token
from spatial.crs import from_wgs84_xy, normalise_crs
from tests.conftest import bearer

LOCATION = "/api/v1/events/{}/location"
UNIT = "loc-community"  # a 社区工作站 answering only for the grid the event is placed on
_serial = count(1)


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The app as served (api/app.py registers the location router)."""
    return client


def _intake(api: TestClient, tokens, address: str) -> dict[str, Any]:
    body = {"source": "hotline_12345", "external_id": f"loc-{next(_serial)}", "address": address}
    body |= {
        "description": "有人占道经营",
        "reporter_name": "张先生",
        "reporter_phone": "13900000000",
    }
    response = api.post("/api/v1/events", headers=bearer(tokens["dispatcher"]), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _crossing_event(api: TestClient, engine, tokens) -> dict[str, Any]:
    """An address-only event at a crossing of two demo roads that the geocoder leaves unplaced."""
    with engine.connect() as connection:
        pairs = connection.execute(
            text(
                "SELECT r1.name, r2.name FROM road r1 JOIN road r2 ON r1.name < r2.name "
                "AND ST_Intersects(r1.geom, r2.geom) ORDER BY r1.code, r2.code"
            )
        ).all()
    assert len(pairs) >= 10
    for first, second in pairs:
        event = _intake(api, tokens, f"{first}与{second}交叉口有人占道经营")
        geocode = event["assignment"]["geocode"]
        if event["grid_code"] is None and len(geocode["grid_candidates"]) >= 2:
            assert geocode["precision"] == "intersection"
            assert event["assignment"]["needs_manual_dispatch"] is True
            return event
    pytest.fail("no crossing of the demo street lies where grids meet")


def _get(api: TestClient, secret: str, event_id: int) -> dict[str, Any]:
    response = api.get(f"/api/v1/events/{event_id}", headers=bearer(secret))
    assert response.status_code == 200, response.text
    return response.json()


def _locate(api: TestClient, secret: str, event_id: int, body: dict[str, Any]):
    return api.post(LOCATION.format(event_id), headers=bearer(secret), json=body)


def _field_staff(engine, grid: str) -> str:
    with engine.begin() as connection:
        return create_token(
            connection,
            name=f"loc-field-{grid}",
            role=Role.field_staff,
            grid_codes=(grid,),
            actor="tests",
        ).secret


def _full_time_worker(engine, grid: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT staff_id FROM staff_assignment WHERE grid_code = :g "
                "AND role = 'full_time_worker' ORDER BY staff_id LIMIT 1"
            ),
            {"g": grid},
        ).scalar_one()


def _active_generation(connection) -> int:
    return connection.execute(
        text(
            "SELECT generation_id FROM generation_activation "
            "ORDER BY activated_at DESC, id DESC LIMIT 1"
        )
    ).scalar_one()


def _covers(engine, table: str, code: str, lon: float, lat: float) -> bool:
    """Does the active generation's grid (or a gazetteer row) of this code hold the point?"""
    clause = "code = :code"
    if table == "grid":
        clause += " AND generation_low <= :g AND generation_high >= :g"  # today's row of the code
    with engine.connect() as connection:
        generation = _active_generation(connection)
        return bool(
            connection.execute(
                text(
                    "SELECT bool_or(ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))) "
                    f"FROM {table} WHERE {clause}"
                ),
                {"code": code, "lon": lon, "lat": lat, "g": generation},
            ).scalar_one()
        )


def _waiting(api: TestClient, tokens) -> set[int]:
    """Events on no grid, waiting to be placed by hand (人工分派 queue)."""
    response = api.get(
        "/api/v1/events",
        headers=bearer(tokens["dispatcher"]),
        params={"unassigned": "true", "with_unplaced": "true", "limit": 1000},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["features"]) < 1000
    return {feature["properties"]["id"] for feature in body["features"]}


def _unknown_address(api: TestClient, tokens) -> dict[str, Any]:
    event = _intake(api, tokens, "火星基地九十九号")
    assert event["grid_code"] is None and event["lon"] is None
    return event


def _counts(engine, event_id: int) -> tuple[int, int, int]:
    """(history lines, outbox rows, audit records) of the event."""
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT (SELECT count(*) FROM event_history WHERE event_id = :id), "
                "(SELECT count(*) FROM outbox WHERE event_id = :id), "
                "(SELECT count(*) FROM audit_log WHERE entity = 'event' AND entity_id = :sid)"
            ),
            {"id": event_id, "sid": str(event_id)},
        ).one()


def test_crossing_located_to_its_first_candidate(api, engine, tokens):
    event = _crossing_event(api, engine, tokens)
    candidates = [c["grid"]["code"] for c in event["assignment"]["geocode"]["grid_candidates"]]
    chosen, other = candidates[0], candidates[1]
    admin = tokens["admin"]
    unit = {"name": "定位测试社区工作站", "kind": "community", "tier": 3, "areas": [chosen]}
    assert api.put(f"/api/v1/units/{UNIT}", headers=bearer(admin), json=unit).status_code == 201
    mine, theirs = _field_staff(engine, chosen), _field_staff(engine, other)

    before = _get(api, tokens["dispatcher"], event["id"])
    assert before["proposal"]["unit_code"] == "community"  # the unit for everywhere
    assert before["proposal"]["assignee_id"] is None  # no grid, no grid worker
    for secret in (mine, theirs):
        seen = _get(api, secret, event["id"])
        assert "description" not in seen and "reporter" not in seen
        assert seen["allowed_actions"] == []
    history, outbox, audits = _counts(engine, event["id"])
    assert event["id"] in _waiting(api, tokens)

    response = _locate(
        api,
        tokens["dispatcher"],
        event["id"],
        {"version": before["version"], "grid_code": chosen, "note": "来电人补充：东北角"},
    )
    assert response.status_code == 200, response.text
    placed = response.json()
    assert placed["grid_code"] == chosen and placed["version"] == before["version"] + 1
    assert placed["assignment"]["needs_manual_dispatch"] is False
    assert placed["assignment"]["path"][-1]["code"] == chosen
    assert placed["proposal"] == {
        "tier": 3,
        "unit_code": UNIT,
        "assignee_id": _full_time_worker(engine, chosen),
    }
    assert _covers(engine, "grid", chosen, placed["lon"], placed["lat"])
    line = placed["history"][-1]
    assert line["action"] == "locate" and line["status"] == line["from"] == "reported"
    assert line["action_label"] == "人工定位"
    assert line["version"] == placed["version"]
    assert (
        line["note"] == f"人工定位到网格 {placed['assignment']['path'][-1]['name']}（{chosen}）"
        "：来电人补充：东北角"
    )
    details = line["details"]
    assert {k: details[k] for k in ("from_grid", "to_grid", "by")} == {
        "from_grid": None,
        "to_grid": chosen,
        "by": "grid",
    }
    assert details.get("moved_m", 0) < 50  # the crossing point, at most nudged into the grid
    assert _counts(engine, event["id"]) == (history + 1, outbox + 1, audits + 1)
    with engine.connect() as connection:
        payload = connection.execute(
            text("SELECT payload FROM outbox WHERE event_id = :id ORDER BY id DESC LIMIT 1"),
            {"id": event["id"]},
        ).scalar_one()
    assert payload["action"] == "locate" and payload["grid_code"] == chosen
    assert event["id"] not in _waiting(api, tokens)

    seen = _get(api, mine, event["id"])
    assert seen["description"] == "有人占道经营" and seen["reporter"]["phone"] == "13900000000"
    assert seen["history"][-1]["note"].startswith("人工定位到网格")
    hidden = _get(api, theirs, event["id"])
    assert "description" not in hidden and "reporter" not in hidden
    assert hidden["history"][-1]["note"] is None  # the note is personal to the grid's people


def test_dispatch_follows_the_new_grid(api, engine, tokens):
    event = _crossing_event(api, engine, tokens)
    chosen = event["assignment"]["geocode"]["grid_candidates"][1]["grid"]["code"]
    dispatcher = tokens["dispatcher"]
    placed = _locate(api, dispatcher, event["id"], {"version": 1, "grid_code": chosen}).json()
    assert placed["grid_code"] == chosen
    for action in ("accept", "dispatch"):
        moved = api.post(
            f"/api/v1/events/{event['id']}/transitions",
            headers=bearer(dispatcher),
            json={"action": action, "version": placed["version"]},
        )
        assert moved.status_code == 200, moved.text
        placed = _get(api, dispatcher, event["id"])
    assert placed["status"] == "dispatched"
    assert placed["assignee_id"] == _full_time_worker(engine, chosen)
    worker = _field_staff(engine, chosen)
    assert "start" in _get(api, worker, event["id"])["allowed_actions"]


def test_locate_by_compound(api, engine, tokens):
    event = _unknown_address(api, tokens)
    with engine.connect() as connection:
        compound, name = connection.execute(
            text("SELECT code, name FROM compound ORDER BY code LIMIT 1")
        ).one()
    body = {"version": 1, "place": {"kind": "compound", "code": compound}}
    response = _locate(api, tokens["supervisor"], event["id"], body)
    assert response.status_code == 200, response.text
    placed = response.json()
    assert placed["grid_code"] and placed["lon"] is not None
    assert _covers(engine, "compound", compound, placed["lon"], placed["lat"])
    assert _covers(engine, "grid", placed["grid_code"], placed["lon"], placed["lat"])
    assert placed["assignment"]["path"][-1]["level"] == "micro_grid"  # a compound is in one
    details = placed["history"][-1]["details"]
    assert details["by"] == "place" and details["from_grid"] is None
    assert details["place"] == {"kind": "compound", "code": compound, "name": name}


@pytest.mark.parametrize("crs", ["EPSG:4326", "gcj02"])
def test_locate_by_point(api, engine, tokens, crs):
    event = _unknown_address(api, tokens)
    with engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM building ORDER BY code LIMIT 1"
            )
        ).one()
        micro = connection.execute(
            text(
                "SELECT g.code FROM grid g WHERE g.level = 'micro_grid' AND ST_Covers(g.geom, "
                "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) AND g.generation_low <= :g "
                "AND g.generation_high >= :g ORDER BY g.code LIMIT 1"
            ),
            {"lon": lon, "lat": lat, "g": _active_generation(connection)},
        ).scalar_one()
    x, y = from_wgs84_xy(np.array([lon]), np.array([lat]), normalise_crs(crs))
    body = {"version": 1, "lon": float(x[0]), "lat": float(y[0]), "crs": crs}
    response = _locate(api, tokens["admin"], event["id"], body)
    assert response.status_code == 200, response.text
    placed = response.json()
    assert placed["grid_code"] == micro
    assert abs(placed["lon"] - lon) < 1e-5 and abs(placed["lat"] - lat) < 1e-5
    assert placed["history"][-1]["details"]["by"] == "point"
    assert placed["raw"] == {"x": None, "y": None, "crs": None}  # what was reported is kept


def test_a_point_outside_the_chosen_grid_moves_into_it(api, engine, tokens):
    """A placed event moved to the neighbouring grid: its point follows, just inside."""
    event = _unknown_address(api, tokens)
    field_grid, neighbour = "320571005001001", "320571005001002"
    first = _locate(api, tokens["dispatcher"], event["id"], {"version": 1, "grid_code": field_grid})
    placed = first.json()
    assert first.status_code == 200 and _covers(
        engine, "grid", field_grid, placed["lon"], placed["lat"]
    )
    assert "moved_m" not in placed["history"][-1]["details"]  # no point: the grid's own
    second = _locate(
        api,
        tokens["dispatcher"],
        event["id"],
        {"version": placed["version"], "grid_code": neighbour},
    )
    assert second.status_code == 200, second.text
    moved = second.json()
    assert moved["grid_code"] == neighbour
    assert _covers(engine, "grid", neighbour, moved["lon"], moved["lat"])
    assert not _covers(engine, "grid", field_grid, moved["lon"], moved["lat"])
    details = moved["history"][-1]["details"]
    assert details["from_grid"] == field_grid and details["to_grid"] == neighbour
    assert details["moved_m"] > 0


def test_a_place_spanning_grids_needs_the_grid(api, engine, tokens):
    event = _unknown_address(api, tokens)
    with engine.connect() as connection:
        road = connection.execute(
            text("SELECT code FROM road ORDER BY ST_Length(geom::geography) DESC LIMIT 1")
        ).scalar_one()
    place = {"kind": "road", "code": road}
    dispatcher = tokens["dispatcher"]
    spans = _locate(api, dispatcher, event["id"], {"version": 1, "place": place})
    assert spans.status_code == 409, spans.text
    error = spans.json()["error"]
    assert error["code"] == "spans_grids" and error["where"] == "body.place"
    candidates = [c["grid"]["code"] for c in error["details"]]
    assert len(candidates) >= 2 and len(set(candidates)) == len(candidates)
    assert _counts(engine, event["id"])[0] == 1  # nothing written: only the report

    chosen = candidates[-1]
    response = _locate(
        api, dispatcher, event["id"], {"version": 1, "place": place, "grid_code": chosen}
    )
    assert response.status_code == 200, response.text
    placed = response.json()
    assert placed["grid_code"] == chosen
    assert _covers(engine, "grid", chosen, placed["lon"], placed["lat"])
    with engine.connect() as connection:
        metres = connection.execute(
            text(
                "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
                "::geography) FROM road WHERE code = :code"
            ),
            {"lon": placed["lon"], "lat": placed["lat"], "code": road},
        ).scalar_one()
    assert metres < 5  # on the road, just inside the chosen grid
    assert placed["history"][-1]["details"]["place"]["code"] == road


def test_a_grid_the_place_does_not_touch_is_refused(api, engine, tokens):
    event = _unknown_address(api, tokens)
    today = "g.generation_low <= :g AND g.generation_high >= :g"
    with engine.connect() as connection:
        generation = _active_generation(connection)
        compound, micro = connection.execute(
            text(
                "SELECT c.code, g.code FROM compound c JOIN grid g ON g.level = 'micro_grid' "
                f"AND ST_Covers(g.geom, ST_PointOnSurface(c.geom)) AND {today} "
                "ORDER BY c.code LIMIT 1"
            ),
            {"g": generation},
        ).one()
        far = connection.execute(
            text(
                "SELECT g.code FROM grid g, compound c WHERE c.code = :c AND g.level = 'grid' "
                f"AND {today} ORDER BY ST_Distance(g.geom, c.geom) DESC, g.code LIMIT 1"
            ),
            {"c": compound, "g": generation},
        ).scalar_one()
    body = {"version": 1, "place": {"kind": "compound", "code": compound}, "grid_code": far}
    response = _locate(api, tokens["dispatcher"], event["id"], body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "grid_not_on_place" and error["where"] == "body.grid_code"
    assert [c["grid"]["code"] for c in error["details"]] == [micro[:15]]


def _close(api: TestClient, tokens, event_id: int) -> None:
    """accept → dispatch → start → handle (dispatcher) → verify (supervisor)."""
    steps = [
        ("dispatcher", {"action": "accept"}),
        ("dispatcher", {"action": "dispatch"}),
        ("dispatcher", {"action": "start"}),
        ("dispatcher", {"action": "handle", "note": "已清理"}),
        ("supervisor", {"action": "verify"}),
    ]
    for role, body in steps:
        version = _get(api, tokens["dispatcher"], event_id)["version"]
        response = api.post(
            f"/api/v1/events/{event_id}/transitions",
            headers=bearer(tokens[role]),
            json={**body, "version": version},
        )
        assert response.status_code == 200, response.text


def test_refusals_write_nothing(api, engine, tokens):
    event = _unknown_address(api, tokens)
    dispatcher = tokens["dispatcher"]
    grid = "320571005001001"
    refusals = [
        ({"version": 2, "grid_code": grid}, 409, "stale_version", "body.version"),
        ({"version": 1, "grid_code": "320571005999999"}, 404, "grid_not_found", "body.grid_code"),
        ({"version": 1, "grid_code": "320571005001"}, 422, "grid_too_coarse", "body.grid_code"),
        (
            {"version": 1, "place": {"kind": "poi", "code": "NO-SUCH-POI"}},
            404,
            "place_not_found",
            "body.place.code",
        ),
        (
            {"version": 1, "place": {"kind": "planet", "code": "mars"}},
            422,
            "invalid_place_kind",
            "body.place.kind",
        ),
        (
            {"version": 1, "lon": 116.39, "lat": 39.91, "crs": "EPSG:4326"},
            422,
            "outside_grids",
            "body.lon,lat",
        ),
        (
            {"version": 1, "lon": 2.35, "lat": 48.85, "crs": "EPSG:4326"},
            422,
            "outside_china",
            "body.lon,lat",
        ),
        (
            {"version": 1, "lon": 120.73, "lat": 31.3, "crs": "EPSG:999999"},
            422,
            "unknown_crs",
            "body.crs",
        ),
    ]
    for body, status, code, where in refusals:
        response = _locate(api, dispatcher, event["id"], body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code, body
        assert response.json()["error"]["where"] == where, body
    missing = _locate(api, dispatcher, 999_999, {"version": 1, "grid_code": grid})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "event_not_found"
    assert _get(api, dispatcher, event["id"])["version"] == 1
    assert _counts(engine, event["id"]) == (1, 1, 0)


def test_finished_events_stay_where_they_are(api, engine, tokens):
    event = _unknown_address(api, tokens)
    dispatcher = tokens["dispatcher"]
    placed = _locate(api, dispatcher, event["id"], {"version": 1, "grid_code": "320571005001001"})
    assert placed.status_code == 200, placed.text
    _close(api, tokens, event["id"])
    closed = _get(api, dispatcher, event["id"])
    assert closed["status"] == "closed"
    response = _locate(
        api, dispatcher, event["id"], {"version": closed["version"], "grid_code": "320571005001002"}
    )
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "event_finished" and error["details"] == [{"status": "closed"}]
    assert _get(api, dispatcher, event["id"])["grid_code"] == "320571005001001"


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("viewer", 403),
        ("field_staff", 403),
        ("planner", 403),
        ("handler", 403),
        ("supervisor", 200),
        ("admin", 200),
        ("dispatcher", 200),
    ],
)
def test_who_may_locate(api, tokens, role, status):
    event = _unknown_address(api, tokens)
    body = {"version": 1, "grid_code": "320571005001001"}
    response = _locate(api, tokens[role], event["id"], body)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["code"] == "insufficient_role"
        # …before anything about the event is told: a missing one is refused the same way
        assert _locate(api, tokens[role], 999_999, body).status_code == 403


def test_anonymous_needs_a_token(api, tokens):
    event = _unknown_address(api, tokens)
    response = api.post(LOCATION.format(event["id"]), json={"version": 1, "grid_code": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_required"


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        ({"version": 1}, "location_missing", "body"),
        (
            {
                "version": 1,
                "grid_code": "320571005001001",
                "lon": 120.73,
                "lat": 31.3,
                "crs": "EPSG:4326",
            },
            "one_location",
            "body.grid_code",
        ),
        (
            {
                "version": 1,
                "place": {"kind": "poi", "code": "P"},
                "lon": 120.7,
                "lat": 31.3,
                "crs": "gcj02",
            },
            "one_location",
            "body.place",
        ),
        ({"version": 1, "lon": 120.73, "lat": 31.3}, "incomplete_point", "body.crs"),
        ({"version": 1, "crs": "EPSG:4326"}, "incomplete_point", "body.lon"),
        ({"grid_code": "320571005001001"}, "validation_error", "body.version"),
        ({"version": 0, "grid_code": "320571005001001"}, "validation_error", "body.version"),
        ({"version": "1", "grid_code": "320571005001001"}, "validation_error", "body.version"),
        ({"version": 1, "grid_code": ""}, "validation_error", "body.grid_code"),
        ({"version": 1, "grid_code": 320571005001001}, "validation_error", "body.grid_code"),
        ({"version": 1, "place": {"kind": "poi"}}, "validation_error", "body.place.code"),
        (
            {"version": 1, "grid_code": "320571005001001", "unit": "x"},
            "validation_error",
            "body.unit",
        ),
        ({"version": 1, "grid_code": "a" * 65}, "validation_error", "body.grid_code"),
    ],
)
def test_bad_bodies_name_where(api, tokens, body, code, where):
    event = _unknown_address(api, tokens)
    response = _locate(api, tokens["dispatcher"], event["id"], body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["where"]) == (code, where)


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1, "lon": 1e308, "lat": 1e308, "crs": "EPSG:4326"},
        {"version": 1, "lon": -0.0, "lat": 0.0, "crs": "bd09"},
        {"version": 1, "lon": 31.3, "lat": 120.73, "crs": "EPSG:4326"},  # swapped
        {"version": 1, "lon": 120.73, "lat": 31.3, "crs": "+init=/etc/passwd"},
        {"version": 1, "place": {"kind": "intersection", "code": "+"}},
        {"version": 1, "place": {"kind": "intersection", "code": "A+A"}},
        {"version": 1, "place": {"kind": "building", "code": "'; DROP TABLE event; --"}},
        {"version": 1, "place": {"kind": "community", "code": "320571005001"}},
        {"version": 9_223_372_036_854_775_807, "grid_code": "320571005001001"},
        {"version": 1, "grid_code": "320571005001001\u202e"},
        {"version": 1, "grid_code": "320571005001001", "note": "备注" * 2000 + "。"},
    ],
)
def test_hostile_values_answer_4xx(api, tokens, body):
    event = _unknown_address(api, tokens)
    response = _locate(api, tokens["dispatcher"], event["id"], body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["where"], response.text


def test_two_dispatchers_on_one_version(api, engine, tokens):
    """The second of two placements made from the same reading is refused, not applied over it."""
    event = _crossing_event(api, engine, tokens)
    first, second = (
        c["grid"]["code"] for c in event["assignment"]["geocode"]["grid_candidates"][:2]
    )
    won = _locate(api, tokens["dispatcher"], event["id"], {"version": 1, "grid_code": first})
    assert won.status_code == 200, won.text
    lost = _locate(api, tokens["supervisor"], event["id"], {"version": 1, "grid_code": second})
    assert lost.status_code == 409, lost.text
    assert lost.json()["error"]["code"] == "stale_version"
    assert lost.json()["error"]["details"] == [{"version": 2, "status": "reported"}]
    after = _get(api, tokens["dispatcher"], event["id"])
    assert after["grid_code"] == first and after["version"] == 2
    assert [line["action"] for line in after["history"]] == ["report", "locate"]


def test_placed_at_last_it_meets_its_duplicates(api, engine, tokens):
    """An unknown address placed by hand next to an open report of the same kind: proposed as
    its duplicate (同一问题多人上报), as intake would have done had it been placed then."""
    dispatcher = bearer(tokens["dispatcher"])
    with engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM building ORDER BY code LIMIT 1"
            )
        ).one()
    first = {"source": "hotline_12345", "external_id": "loc-dup-1", "category_code": "E04"}
    first |= {"lon": lon, "lat": lat, "crs": "EPSG:4326"}
    original = api.post("/api/v1/events", headers=dispatcher, json=first).json()
    second = {"source": "hotline_12345", "external_id": "loc-dup-2", "category_code": "E04"}
    second |= {"address": "火星基地九十九号"}
    unplaced = api.post("/api/v1/events", headers=dispatcher, json=second).json()
    assert unplaced["duplicate_candidates"] == []
    body = {"version": 1, "lon": lon + 0.0001, "lat": lat, "crs": "EPSG:4326"}  # about 10 m east
    placed = _locate(api, tokens["dispatcher"], unplaced["id"], body)
    assert placed.status_code == 200, placed.text
    assert placed.json()["duplicate_candidates"] == [original["id"]]
