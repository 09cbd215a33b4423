"""Event intake: geocoding, idempotency, conflicts, durability, roles, personal data."""

from __future__ import annotations

import numpy as np
from sqlalchemy import create_engine, text

from spatial.crs import from_wgs84_xy
from tests.conftest import bearer


def _event(**overrides):
    body = {
        "source": "hotline_12345",
        "external_id": "12345-0001",
        "category_code": "E04",
        "description": "占道经营",
        "lon": 120.7395,
        "lat": 31.3025,
        "crs": "gcj02",
        "reporter_name": "李四",
        "reporter_phone": "13900000000",
    }
    body.update(overrides)
    return body


def test_create_retry_conflict(client, tokens, database_url):
    headers = bearer(tokens["dispatcher"])
    created = client.post("/api/v1/events", json=_event(), headers=headers)
    assert created.status_code == 201, created.text
    event = created.json()
    assert (
        event["grid_code"]
        and event["generation"] == 1
        and event["raw"] == {"x": 120.7395, "y": 31.3025, "crs": "gcj02"}
    )
    assert (
        event["assignment"]["matched"]
        and event["staff"]
        and event["reporter"]["phone"] == "13900000000"
    )
    assert event["status"] == "reported" and event["due_at"] is None  # set when accepted (立案)
    assert event["accept_due_at"] > event["received_at"] and event["tier"] == 3
    # Durable: another connection sees it the moment the response arrived.
    other = create_engine(database_url)
    with other.connect() as connection:
        row = connection.execute(
            text("SELECT grid_code, generation_id, ST_X(geom) FROM event WHERE id = :id"),
            {"id": event["id"]},
        ).one()
        history = (
            connection.execute(
                text("SELECT status FROM event_history WHERE event_id = :id"), {"id": event["id"]}
            )
            .scalars()
            .all()
        )
    other.dispose()
    assert row[0] == event["grid_code"] and row[1] == 1 and abs(row[2] - event["lon"]) < 1e-9
    assert history == ["reported"]

    retry = client.post("/api/v1/events", json=_event(), headers=headers)
    assert retry.status_code == 200 and retry.json()["id"] == event["id"]
    changed = client.post("/api/v1/events", json=_event(description="乱停车"), headers=headers)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "external_id_conflict"
    with client.app.state.engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM event WHERE external_id = '12345-0001'")
            ).scalar()
            == 1
        )


def test_gcj02_event_lands_where_wgs84_says(client, tokens, engine):
    with engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE code = '320571005007004003') s"
            )
        ).one()
    gx, gy = from_wgs84_xy(np.array([lon]), np.array([lat]), "GCJ02")
    body = client.post(
        "/api/v1/events",
        json=_event(external_id="gcj", lon=gx[0], lat=gy[0]),
        headers=bearer(tokens["dispatcher"]),
    ).json()
    assert body["grid_code"] == "320571005007004003"
    assert abs(body["lon"] - lon) < 1e-7 and abs(body["lat"] - lat) < 1e-7


def test_address_only_and_unplaceable_events(client, tokens):
    headers = bearer(tokens["dispatcher"])
    by_address = client.post(
        "/api/v1/events",
        headers=headers,
        json=_event(
            external_id="addr-1", lon=None, lat=None, crs=None, address="青丘街1号锦玉苑3幢2单元"
        ),
    ).json()
    assert (
        by_address["grid_code"]
        and by_address["assignment"]["geocode"]["precision"] == "building"
        and by_address["assignment"]["confidence"] >= 0.85
        and by_address["lon"]
    )
    nowhere = client.post(
        "/api/v1/events",
        headers=headers,
        json=_event(external_id="addr-2", lon=None, lat=None, crs=None, address="不存在的地方88号"),
    )
    assert nowhere.status_code == 201  # accepted, never lost…
    body = nowhere.json()
    assert (
        body["grid_code"] is None and body["assignment"]["needs_manual_dispatch"] is True
    )  # …and flagged
    outside = client.post(
        "/api/v1/events", headers=headers, json=_event(external_id="far", lon=121.5, lat=31.2)
    )
    assert outside.status_code == 201 and outside.json()["assignment"]["nearest"] is not None


def test_invalid_events(client, tokens):
    headers = bearer(tokens["dispatcher"])
    assert (
        client.post(
            "/api/v1/events", headers=headers, json=_event(lon=None, lat=None, crs=None)
        ).status_code
        == 422
    )
    assert client.post("/api/v1/events", headers=headers, json=_event(crs=None)).status_code == 422
    bad_category = client.post(
        "/api/v1/events", headers=headers, json=_event(external_id="c", category_code="Z9")
    )
    assert (
        bad_category.status_code == 422
        and bad_category.json()["error"]["code"] == "unknown_category"
    )
    swapped = client.post(
        "/api/v1/events", headers=headers, json=_event(external_id="s", lon=31.3, lat=120.7)
    )
    assert swapped.status_code == 422 and "颠倒" in swapped.json()["error"]["message"]


def test_batch_outcomes_in_order(client, tokens):
    headers = bearer(tokens["dispatcher"])
    client.post("/api/v1/events", json=_event(external_id="b-1"), headers=headers)
    batch = [
        _event(external_id="b-1"),
        _event(external_id="b-2"),
        _event(external_id="b-1", description="改"),
        _event(external_id="b-3", category_code="Z9"),
    ]
    body = client.post("/api/v1/events", json={"events": batch}, headers=headers).json()
    assert [r["status"] for r in body["results"]] == ["existing", "created", "conflict", "invalid"]
    assert body["counts"] == {"existing": 1, "created": 1, "conflict": 1, "invalid": 1}


def test_roles_and_personal_data(client, tokens):
    assert (
        client.post("/api/v1/events", json=_event(), headers=bearer(tokens["viewer"])).status_code
        == 403
    )
    assert (
        client.post("/api/v1/events", json=_event(), headers=bearer(tokens["planner"])).status_code
        == 403
    )
    created = client.post(
        "/api/v1/events", json=_event(external_id="p-1"), headers=bearer(tokens["admin"])
    ).json()
    public = client.get(f"/api/v1/events/{created['id']}").json()
    assert (
        "reporter" not in public
        and "staff" not in public
        and public["history"][0]["status"] == "reported"
    )
    entitled = client.get(
        f"/api/v1/events/{created['id']}", headers=bearer(tokens["dispatcher"])
    ).json()
    assert entitled["reporter"]["name"] == "李四"
    assert client.get("/api/v1/events/999999").status_code == 404


def test_events_geojson_for_maps_has_no_personal_data(client, tokens):
    client.post(
        "/api/v1/events", json=_event(external_id="geo-1"), headers=bearer(tokens["dispatcher"])
    )
    body = client.get("/api/v1/events", params={"bbox": "120.70,31.28,120.78,31.33"}).json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] >= 20
    properties = [f["properties"] for f in body["features"]]
    assert all(p["status"] not in ("closed", "cancelled") for p in properties)
    assert all("reporter_name" not in p and "reporter_phone" not in p for p in properties)
    assert any(p["overdue"] for p in properties)  # the demo's open events are long past due
    every = client.get("/api/v1/events", params={"status": "all", "limit": 5000}).json()
    assert every["numberReturned"] > body["numberReturned"]
    nowhere = client.get("/api/v1/events", params={"bbox": "0,0,1,1"}).json()
    assert nowhere["numberReturned"] == 0
