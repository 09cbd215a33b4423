"""An activating grid import passes the gate a publish passes: the coverage check (stored, and
refusing with require_clean), lineage, open events following their grids — and events no grid
covers any more go back to manual dispatch."""

from __future__ import annotations

import json

import shapely
from sqlalchemy import text

from tests.conftest import bearer

MICRO = "320571005003002005"


def _micro_layer_with_overlap(client) -> bytes:
    """The micro-grid layer with one micro-grid grown ~0.5 m into its siblings."""
    layer = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "micro_grid"}
    ).json()
    for feature in layer["features"]:
        if feature["properties"]["code"] == MICRO:
            grown = shapely.buffer(
                shapely.from_geojson(json.dumps(feature["geometry"])), 5e-6, join_style="mitre"
            )
            feature["geometry"] = json.loads(shapely.to_geojson(grown))
    return json.dumps(layer).encode()


def _import(client, tokens, body: bytes, **form):
    return client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "micro_grid", **form},
        files={"file": ("micro.geojson", body)},
    )


def test_require_clean_refuses_and_writes_nothing(client, tokens, engine):
    body = _micro_layer_with_overlap(client)
    refused = _import(client, tokens, body, require_clean="true")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "import_rejected"
    assert any("重叠" in d["message"] and d["field"] == "coverage" for d in error["details"])
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM generation")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM coverage_check")).scalar() == 0
    assert client.get("/api/v1/generations").json()["active"] == 1


def test_activating_import_reports_its_check_and_records_lineage(client, tokens, engine):
    report = _import(client, tokens, _micro_layer_with_overlap(client)).json()
    assert report["generation"] == 2
    coverage = report["coverage"]
    assert coverage["errors"] >= 1 and coverage["by_kind"]["overlaps"] >= 1
    stored = client.get(f"/api/v1/coverage/checks/{coverage['check_id']}").json()
    assert stored["generation"] == 2 and stored["summary"]["errors"] == coverage["errors"]
    with engine.connect() as connection:
        lineage = connection.execute(
            text("SELECT old_code, new_code, relation FROM grid_lineage WHERE generation_id = 2")
        ).all()
    assert [tuple(r) for r in lineage] == [(MICRO, MICRO, "redraw")]
    assert set(report["events"]) == {"events_reassigned", "events_unplaced"}
    assert report["events"]["events_unplaced"] == 0


def test_events_outside_every_grid_go_to_manual_dispatch(client, tokens, engine):
    created = client.post(
        "/api/v1/events",
        headers=bearer(tokens["dispatcher"]),
        json={
            "source": "hotline_12345",
            "external_id": "gate-1",
            "category_code": "E04",
            "description": "占道经营",
            "lon": 120.7395,
            "lat": 31.3025,
            "crs": "gcj02",
        },
    ).json()
    assert created["grid_code"]
    # The street's outline as another system published it left this corner out: the event's
    # point is moved there (no grid of the next generation covers it).
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE event SET geom = ST_SetSRID(ST_MakePoint(121.5, 31.2), 4326) WHERE id = :id"
            ),
            {"id": created["id"]},
        )
    report = _import(client, tokens, _micro_layer_with_overlap(client)).json()
    assert report["events"]["events_unplaced"] == 1
    event = client.get(
        f"/api/v1/events/{created['id']}", headers=bearer(tokens["dispatcher"])
    ).json()
    assert event["grid_code"] is None and event["generation"] is None
    assert "待人工分派" in event["history"][-1]["note"]
