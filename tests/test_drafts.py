"""Planners redraw grids: draft → split → check → publish → lookups and open events follow → undo."""

from __future__ import annotations

import json
import time

import pytest
import shapely
from sqlalchemy import text

from tests.conftest import bearer

MICRO = "320571005001001001"


def _geometry(client, code, generation=None):
    params = {"generation": generation} if generation else {}
    return shapely.from_geojson(
        json.dumps(client.get(f"/api/v1/grids/{code}", params=params).json()["geometry"])
    )


def _wait_for_generation(client, lon, lat, generation):
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        body = client.get("/api/v1/lookup", params={"lon": lon, "lat": lat, "crs": "4326"}).json()
        if body["generation"] == generation:
            return body
        time.sleep(0.05)
    raise AssertionError(f"lookups did not switch to generation {generation}")


def test_split_check_publish_follow_and_undo(client, tokens):
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "拆分过满微网格"}, headers=planner).json()
    generation = draft["generation_id"]
    assert draft["version"] == 0 and client.get("/api/v1/generations").json()["active"] == 1

    polygon = _geometry(client, MICRO)
    xmin, ymin, xmax, ymax = polygon.bounds
    footprints = [
        shapely.from_geojson(json.dumps(f["geometry"]))
        for f in client.get("/api/v1/buildings", params={"grid": MICRO}).json()["features"]
    ]

    def cut(x):
        return shapely.LineString([(x, ymin - 0.001), (x, ymax + 0.001)])

    def left_share(x):
        return (
            polygon.intersection(shapely.box(xmin - 1, ymin - 1, x, ymax + 1)).area / polygon.area
        )

    # A planner cuts along a lane between buildings, not through them.
    x = next(
        x
        for x in (xmin + (xmax - xmin) * k / 60 for k in range(12, 49))
        if 0.2 < left_share(x) < 0.8 and not any(cut(x).intersects(f) for f in footprints)
    )
    line = cut(x)
    left_point = polygon.intersection(
        shapely.box(xmin - 1, ymin - 1, x, ymax + 1)
    ).representative_point()
    # An open event in the micro-grid that is about to be split.
    event = client.post(
        "/api/v1/events",
        headers=bearer(tokens["dispatcher"]),
        json={
            "source": "patrol",
            "external_id": "split-1",
            "category_code": "E01",
            "description": "暴露垃圾",
            "lon": left_point.x,
            "lat": left_point.y,
            "crs": "EPSG:4326",
        },
    ).json()
    assert event["grid_code"] == MICRO

    split = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        headers=planner,
        json={"code": MICRO, "line": json.loads(shapely.to_geojson(line)), "version": 0},
    )
    assert split.status_code == 200, split.text
    new_codes = split.json()["created"]
    assert split.json()["version"] == 1 and len(new_codes) == 2 and MICRO not in new_codes
    assert all(code.startswith(MICRO[:15]) for code in new_codes)
    assert (
        sum(t["households"] for t in split.json()["touched"] if t["code"] in new_codes)
        == client.get(f"/api/v1/grids/{MICRO}").json()["properties"]["households"]
    )

    stale = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        headers=planner,
        json={"code": new_codes[0], "line": json.loads(shapely.to_geojson(line)), "version": 0},
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_draft"

    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    problems = [
        (k, [f["message"] for f in check[k]])
        for k in (
            "overlaps",
            "gaps",
            "invalid_edges",
            "outside_parent",
            "orphan_buildings",
            "split_buildings",
            "invalid_geometries",
        )
        if check[k]
    ]
    assert check["summary"]["errors"] == 0, problems
    assert (
        client.get("/api/v1/generations").json()["active"] == 1
    )  # a draft is never live by itself

    refused = client.post(
        f"/api/v1/drafts/{draft['id']}/publish", json={"version": 1}, headers=planner
    )
    assert (
        refused.status_code == 409
        and refused.json()["error"]["code"] == "warnings_not_acknowledged"
    )
    published = client.post(
        f"/api/v1/drafts/{draft['id']}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["generation"] == generation and body["events_reassigned"] >= 1
    assert {(x["old_code"], x["relation"]) for x in body["lineage"]} == {(MICRO, "split")}

    answer = _wait_for_generation(client, left_point.x, left_point.y, generation)
    assert answer["grid"]["code"] in new_codes
    moved = client.get(f"/api/v1/events/{event['id']}").json()
    assert moved["grid_code"] == answer["grid"]["code"] and moved["generation"] == generation
    assert (
        client.get(f"/api/v1/grids/{MICRO}").status_code == 404
    )  # gone from the active generation…
    assert (
        client.get(f"/api/v1/grids/{MICRO}", params={"generation": 1}).status_code == 200
    )  # …kept in history
    assert (
        client.post(
            f"/api/v1/drafts/{draft['id']}/split",
            headers=planner,
            json={"code": new_codes[0], "line": json.loads(shapely.to_geojson(line)), "version": 1},
        ).status_code
        == 409
    )

    undo = client.post("/api/v1/generations/1/activate", headers=planner)
    assert undo.status_code == 200 and undo.json()["events_reassigned"] >= 1
    assert _wait_for_generation(client, left_point.x, left_point.y, 1)["grid"]["code"] == MICRO
    assert client.get(f"/api/v1/events/{event['id']}").json()["grid_code"] == MICRO


def test_publish_failing_halfway_changes_nothing(client, tokens, engine, monkeypatch):
    import api.drafts.publish

    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "失败的发布"}, headers=planner).json()

    def broken(connection, generation):
        raise RuntimeError("disk full while re-assigning events")

    monkeypatch.setattr(api.drafts.publish, "reassign_open_events", broken)
    with pytest.raises(RuntimeError):
        api.drafts.publish.publish_draft(engine, draft["id"], 0, True, "tests")
    with engine.connect() as connection:
        active = connection.execute(
            text(
                "SELECT generation_id FROM generation_activation ORDER BY activated_at DESC, id DESC LIMIT 1"
            )
        ).scalar()
        status = connection.execute(
            text("SELECT status FROM draft WHERE id = :d"), {"d": draft["id"]}
        ).scalar()
        lineage = connection.execute(text("SELECT count(*) FROM grid_lineage")).scalar()
    assert (active, status, lineage) == (1, "open", 0)


def test_drafts_need_a_planner(client, tokens):
    assert client.post("/api/v1/drafts", json={"name": "x"}).status_code == 401
    assert (
        client.post(
            "/api/v1/drafts", json={"name": "x"}, headers=bearer(tokens["dispatcher"])
        ).status_code
        == 403
    )
    assert (
        client.post("/api/v1/generations/1/activate", headers=bearer(tokens["viewer"])).status_code
        == 403
    )
    assert client.get("/api/v1/drafts/99").status_code == 404


def test_merge_neighbours_check_publish(client, tokens):
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "合并两个小微网格"}, headers=planner).json()
    a = _geometry(client, MICRO)
    siblings = client.get(
        "/api/v1/grids", params={"parent": MICRO[:15], "level": "micro_grid"}
    ).json()["features"]
    b = next(
        f["properties"]["code"]
        for f in siblings
        if f["properties"]["code"] != MICRO
        and shapely.from_geojson(json.dumps(f["geometry"])).intersection(a).length > 10 * 1e-5
    )
    apart = next(
        f["properties"]["code"]
        for f in siblings
        if not shapely.from_geojson(json.dumps(f["geometry"])).intersects(a)
    )
    refused = client.post(
        f"/api/v1/drafts/{draft['id']}/merge",
        headers=planner,
        json={"codes": [MICRO, apart], "version": 0},
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_contiguous"
    merged = client.post(
        f"/api/v1/drafts/{draft['id']}/merge",
        headers=planner,
        json={"codes": [MICRO, b], "keep_code": MICRO, "version": 0},
    )
    assert merged.status_code == 200, merged.text
    [stats] = [t for t in merged.json()["touched"] if t["code"] == MICRO]
    assert stats["code"] == MICRO and merged.json()["removed"] == [b]
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": draft["generation_id"]}, headers=planner
    ).json()
    assert check["summary"]["errors"] == 0
    published = client.post(
        f"/api/v1/drafts/{draft['id']}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    ).json()
    assert {(x["old_code"], x["new_code"], x["relation"]) for x in published["lineage"]} == {
        (MICRO, MICRO, "merge"),
        (b, MICRO, "merge"),
    }
    inside_b = _geometry(client, b, generation=1).representative_point()
    answer = _wait_for_generation(client, inside_b.x, inside_b.y, published["generation"])
    assert answer["grid"]["code"] == MICRO


def test_publishing_over_a_newer_generation_rebases_or_replaces(client, tokens):
    planner = bearer(tokens["planner"])
    first, second, third = (
        client.post("/api/v1/drafts", json={"name": name}, headers=planner).json()
        for name in ("甲", "乙", "丙")
    )
    body = {"version": 0, "acknowledge_warnings": True}
    published = client.post(f"/api/v1/drafts/{first['id']}/publish", json=body, headers=planner)
    assert published.status_code == 200 and published.json()["rebase"] is None
    # The second began on generation 1: it is rebased onto the first, then published.
    rebased = client.post(f"/api/v1/drafts/{second['id']}/publish", json=body, headers=planner)
    assert rebased.status_code == 200, rebased.text
    assert rebased.json()["rebase"]["rebased"] is True
    assert client.get("/api/v1/generations").json()["active"] == second["generation_id"]
    forced = client.post(
        f"/api/v1/drafts/{third['id']}/publish",
        json={**body, "replace_newer": True},
        headers=planner,
    )
    assert forced.status_code == 200 and forced.json()["rebase"] is None
    assert client.get("/api/v1/generations").json()["active"] == third["generation_id"]
