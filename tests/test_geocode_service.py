"""Address-only geocoding as the hotline uses it: `GET /geocode/address`, the batch, and events
placed by what the caller said — precision, point, one grid or grid candidates, never a guess."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.conftest import bearer

PRECISIONS = {"building", "house_number", "compound", "intersection", "poi", "road", "community"}


def _geocode(client, q: str, **params):
    response = client.get("/api/v1/geocode/address", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _one_building(engine):
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT code, name, address FROM building WHERE name LIKE '%幢' ORDER BY code LIMIT 1"
            )
        ).one()


def _shares_add_up(answer):
    shares = [c["share"] for c in answer["grid_candidates"]]
    assert shares == sorted(shares, reverse=True)
    # Each share rounded to 3 places; what lies in no grid at all is said apart.
    total = sum(shares) + answer["outside_share"]
    if len(shares) < 8:  # at most 8 grids are listed (a long road touches more)
        assert abs(total - 1.0) <= 0.0005 * (len(shares) + 1)
    assert 0 < total <= 1.0 + 0.0005 * (len(shares) + 1)


def test_ticket_text_lands_on_the_building_and_its_grid(client, engine):
    building = _one_building(engine)
    answer = _geocode(client, f"园区{building.name.replace('幢', '栋')}楼下垃圾堆放")
    assert answer["matched"] is True, answer
    assert answer["precision"] == "building" and answer["place"]["code"] == building.code
    assert answer["building"] == {"code": building.code, "address": building.address}
    assert answer["point"]["kind"] == "building_interior"
    assert answer["grid"]["level"] == "micro_grid" and answer["needs_manual_dispatch"] is False
    assert answer["path"][-1] == answer["grid"] and len(answer["path"]) == 4
    assert "垃圾" in answer["complaint"] and "垃圾" not in "".join(answer["parsed"].values())
    with engine.connect() as connection:
        inside = connection.execute(
            text(
                "SELECT ST_Contains(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
                "FROM building WHERE code = :code"
            ),
            {"lon": answer["lon"], "lat": answer["lat"], "code": building.code},
        ).scalar_one()
    assert inside  # the point used is inside the building


def test_compound_within_one_grid_is_assigned(client, engine):
    with engine.connect() as connection:
        compound = connection.execute(
            text("SELECT code, name FROM compound ORDER BY code LIMIT 1")
        ).one()
    answer = _geocode(client, f"{compound.name}小区门口有人乱摆摊")
    assert answer["matched"] and answer["precision"] == "compound", answer
    assert answer["place"]["code"] == compound.code
    _shares_add_up(answer)
    # Assigned only when the whole compound lies in one grid: then its only share is 1.
    if answer["grid"] is not None:
        assert [c["share"] for c in answer["grid_candidates"]] == [1.0]
    else:
        assert answer["needs_manual_dispatch"] and len(answer["grid_candidates"]) >= 2


def test_intersection_where_grids_meet_goes_to_manual_dispatch(client, engine):
    with engine.connect() as connection:
        a, b = connection.execute(
            text(
                "SELECT r1.name, r2.name FROM road r1 JOIN road r2 ON r1.name < r2.name "
                "AND ST_Intersects(r1.geom, r2.geom) ORDER BY r1.code, r2.code LIMIT 1"
            )
        ).one()
    answer = _geocode(client, f"{a}与{b}交叉口有人占道经营")
    assert answer["matched"] and answer["precision"] == "intersection", answer
    assert answer["point"]["kind"] == "intersection"
    _shares_add_up(answer)
    if answer["grid"] is None:
        assert answer["needs_manual_dispatch"] and answer["reason"] == "spans_grids"
        assert len(answer["grid_candidates"]) >= 2
        assert "人工分派" in answer["message"]


def test_a_road_alone_is_a_stretch_not_a_guess(client, engine):
    with engine.connect() as connection:
        name = connection.execute(
            text("SELECT name FROM road ORDER BY ST_Length(geom::geography) DESC LIMIT 1")
        ).scalar_one()
    answer = _geocode(client, f"{name}路面有坑")
    assert answer["precision"] == "road", answer
    assert answer["grid"] is None and answer["needs_manual_dispatch"] is True
    assert len(answer["grid_candidates"]) >= 2
    _shares_add_up(answer)


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("楼下垃圾堆放好几天了没人管", "no_place"),
        ("火星基地九十九号", "not_found"),
        ("上海市浦东新区世纪大道100号门口占道", "other_area"),
        ("常熟市虞山街道新翠居4栋", "other_area"),
    ],
)
def test_no_place_answers_why(client, q, reason):
    answer = _geocode(client, q)
    assert answer["matched"] is False and answer["grid"] is None and answer["path"] == []
    assert answer["reason"] == reason, answer
    assert answer["message"]  # in Chinese, for the operator


def test_long_and_mixed_text_never_fails(client, engine):
    building = _one_building(engine)
    long_text = building.name + "楼下" + "垃圾" * 2_500
    batch = client.post(
        "/api/v1/geocode/addresses",
        json={
            "addresses": [
                long_text[:5_000],
                {"id": "mixed", "text": f"Room 301, {building.name} near the gate ✓ 楼下"},
                "\x00\ufffd🙂",
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["count"] == 3 and [r["id"] for r in body["results"]] == [1, "mixed", 3]
    assert body["results"][0]["matched"] is False and body["results"][0]["reason"] == "too_long"
    mixed = body["results"][1]
    assert mixed["matched"] is False or mixed["place"]["code"] == building.code, mixed
    assert body["results"][2]["matched"] is False
    too_many = client.post("/api/v1/geocode/addresses", json={"addresses": ["x"] * 1_001})
    assert too_many.status_code == 422 and "addresses" in too_many.json()["error"]["where"]
    too_long = client.get("/api/v1/geocode/address", params={"q": "x" * 5_001})
    assert too_long.status_code == 422


def test_below_threshold_gives_candidates_not_a_guess(client, engine):
    building = _one_building(engine)
    strict = _geocode(client, building.address, threshold=1.0)
    assert strict["matched"] is (strict["confidence"] >= 1.0)
    loose = _geocode(client, building.name[:-2] + "九十九幢")  # a building the compound lacks
    assert not (loose["matched"] and loose["precision"] == "building"), loose


def test_address_only_event_keeps_how_it_was_placed(client, engine, tokens):
    with engine.connect() as connection:
        a, b = connection.execute(
            text(
                "SELECT r1.name, r2.name FROM road r1 JOIN road r2 ON r1.name < r2.name "
                "AND ST_Intersects(r1.geom, r2.geom) ORDER BY r1.code, r2.code LIMIT 1"
            )
        ).one()
    building = _one_building(engine)
    headers = bearer(tokens["dispatcher"])
    events = [
        {
            "source": "12345",
            "external_id": "gc-1",
            "category_code": None,
            "address": f"{a}与{b}路口有人占道",
        },
        {"source": "12345", "external_id": "gc-2", "address": f"{building.name}楼道堆物"},
    ]
    for event in events:
        event.pop("category_code", None)
    body = client.post("/api/v1/events", headers=headers, json={"events": events}).json()
    assert body["counts"] == {"created": 2}, body
    crossing, placed = (r["event"] for r in body["results"])
    geocode = crossing["assignment"]["geocode"]
    assert geocode["precision"] == "intersection" and crossing["lon"] is not None
    if crossing["grid_code"] is None:
        assert crossing["assignment"]["needs_manual_dispatch"] and geocode["grid_candidates"]
    assert placed["assignment"]["geocode"]["precision"] == "building"
    assert placed["grid_code"] and placed["assignment"]["needs_manual_dispatch"] is False
    stored = client.get(f"/api/v1/events/{crossing['id']}", headers=headers).json()
    first = stored["history"][0]
    assert first["action"] == "report"
    assert first["details"]["geocode"]["precision"] == "intersection"
    assert "complaint" not in first["details"]["geocode"]  # no citizen text in the summary
    assert stored["assignment"]["geocode"]["precision"] == "intersection"
    if crossing["grid_code"] is None:  # the dispatcher's queue of events to place by hand
        queue = client.get(
            "/api/v1/events", headers=headers, params={"unassigned": "true", "limit": 1000}
        ).json()
        ids = {int(f["id"]) for f in queue["features"]}
        assert crossing["id"] in ids and placed["id"] not in ids
        assert all(f["properties"]["grid_code"] is None for f in queue["features"])


def test_one_bad_event_in_a_batch_does_not_sink_the_others(client, engine, tokens):
    building = _one_building(engine)
    long_address = f"{building.name}楼下" + "噪音扰民" * 1_200  # 4,800+ characters: kept, not read
    events = [
        {"source": "12345", "external_id": "b-1", "address": f"{building.name}楼道堆物"},
        {"source": "12345", "external_id": "b-2"},  # neither a point nor an address
        {"source": "12345", "external_id": "b-3", "address": long_address},
        {"source": "12345", "external_id": "b-4", "address": "x" * 5_001},
    ]
    response = client.post(
        "/api/v1/events", headers=bearer(tokens["dispatcher"]), json={"events": events}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["counts"] == {"created": 2, "invalid": 2}, body
    first, missing, long_one, too_long = body["results"]
    assert first["status"] == "created" and first["event"]["grid_code"]
    assert missing["status"] == "invalid" and missing["error"]["where"].startswith("events.1")
    assert too_long["status"] == "invalid" and too_long["error"]["where"] == "events.3.address"
    kept = long_one["event"]
    assert kept["grid_code"] is None and kept["assignment"]["needs_manual_dispatch"]
    assert kept["assignment"]["geocode"] is None or kept["assignment"]["geocode"]["reason"]
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT address FROM event WHERE external_id = 'b-3'")
        ).scalar_one()
    assert stored == long_address  # nothing accepted is altered


def test_a_poi_imported_over_http_is_found_after_the_reload(client, engine, tokens):
    """A planner uploads a POI file; the matcher finds the new landmark once the store reloads."""
    with engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM building "
                "ORDER BY code LIMIT 1) b"
            )
        ).one()
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "编码": "T1",
                    "名称": "望湖实验幼儿园",
                    "别名": "望湖幼儿园",
                    "类别": "kindergarten",
                },
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
            }
        ],
    }
    upload = client.post(
        "/api/v1/import/pois",
        headers=bearer(tokens["planner"]),
        data={"crs": "EPSG:4326"},
        files={"file": ("pois.geojson", json.dumps(collection).encode())},
    )
    assert upload.status_code == 200, upload.text
    exported = client.get("/api/v1/export/pois", params={"format": "geojson"}).json()
    assert any(f["properties"]["code"] == "T1" for f in exported["features"])
    client.app.state.index_store.refresh()
    answer = _geocode(client, "望湖幼儿园门口车辆乱停")
    assert answer["matched"] and answer["precision"] == "poi", answer
    assert answer["place"]["code"] == "T1" and answer["grid"] is not None
    assert answer["point"]["kind"] == "poi" and "乱停" in answer["complaint"]


def test_a_road_along_grid_edges_is_never_one_grids(client, engine):
    """The demo's roads are its grid edges: every stretch belongs to the grids on both sides, so
    no road answer may pick one of them (the point-in-polygon tie-break would)."""
    with engine.connect() as connection:
        names = connection.execute(text("SELECT name FROM road ORDER BY code")).scalars().all()
    answers = client.post(
        "/api/v1/geocode/addresses", json={"addresses": [f"{n}路面坑洼" for n in names]}
    ).json()["results"]
    roads = [a for a in answers if a["precision"] == "road"]
    assert len(roads) == len(names) == 32
    assert all(a["grid"] is None and len(a["grid_candidates"]) >= 2 for a in roads)
