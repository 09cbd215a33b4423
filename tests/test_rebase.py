"""Rebase (issue 16 §4): two planners' drafts from the same base both reach the active
generation; conflicts per grid, resolved either way; stale, empty and bad requests."""

from __future__ import annotations

import json
import threading
import time

import pytest
import shapely
from sqlalchemy import text

from api.drafts.publish import publish_draft
from api.drafts.rebase import rebase_draft
from api.errors import Conflict
from tests.conftest import bearer
from tests.test_draft_edits import _neighbours

COMMUNITY = "320571005001"
REBASE = "/api/v1/drafts/{id}/rebase"


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


def _shape(geojson):
    return shapely.from_geojson(json.dumps(geojson))


def _grids(client, generation, **params):
    features = client.get(
        "/api/v1/grids", params={"generation": generation, "limit": 2000, **params}
    ).json()["features"]
    return {f["properties"]["code"]: (f["properties"], _shape(f["geometry"])) for f in features}


def _draft(client, planner, name):
    answer = client.post("/api/v1/drafts", json={"name": name}, headers=planner)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _reshape(client, planner, draft, version, take=1):
    """Grid a takes b's `take` micro-grids along their shared edge (whole micro-grids, so no
    building is cut); returns (a, b, a point in the first micro-grid taken)."""
    generation = draft["generation_id"]
    grids = _grids(client, generation, level="grid", parent=COMMUNITY)
    a, b = _neighbours(grids)
    micro = _grids(client, generation, level="micro_grid", parent=b)
    edge = grids[a][1].boundary
    taken = sorted(micro, key=lambda c: -micro[c][1].boundary.intersection(edge).length)[:take]
    grown = shapely.union_all([grids[a][1], *(micro[c][1] for c in taken)])
    moved = client.post(
        f"/api/v1/drafts/{draft['id']}/reshape",
        headers=planner,
        json={"code": a, "geometry": json.loads(shapely.to_geojson(grown)), "version": version},
    )
    assert moved.status_code == 200, moved.text
    return a, b, micro[taken[0]][1].representative_point()


def _lane(client, code, polygon):
    """A north-south line crossing `code` between its buildings, leaving 20–80 % each side."""
    xmin, ymin, xmax, ymax = polygon.bounds
    footprints = [
        _shape(f["geometry"])
        for f in client.get("/api/v1/buildings", params={"grid": code}).json()["features"]
    ]

    def cut(x):
        return shapely.LineString([(x, ymin - 0.001), (x, ymax + 0.001)])

    def left(x):
        return polygon.intersection(shapely.box(xmin - 1, ymin - 1, x, ymax + 1))

    for k in range(12, 49):
        x = xmin + (xmax - xmin) * k / 60
        if 0.2 < left(x).area / polygon.area < 0.8 and not any(
            cut(x).intersects(f) for f in footprints
        ):
            return cut(x), left(x).representative_point()
    return None


def _far_micro_grid(client, near):
    """A micro-grid of the community farthest from `near` that a lane can split: its code,
    the line, a point left of it and its siblings."""
    communities = _grids(client, 1, level="community")
    far = max(communities, key=lambda c: communities[c][1].distance(near))
    assert far != COMMUNITY
    for grid in sorted(_grids(client, 1, level="grid", parent=far)):
        micro = _grids(client, 1, level="micro_grid", parent=grid)
        for code in sorted(micro):
            lane = _lane(client, code, micro[code][1])
            if lane is not None:
                return code, lane, micro
    raise AssertionError("no micro-grid to split")


def _split(client, planner, draft, version, code, line):
    answer = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        headers=planner,
        json={"code": code, "line": json.loads(shapely.to_geojson(line)), "version": version},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["created"]


def _publish(client, planner, draft, version):
    return client.post(
        f"/api/v1/drafts/{draft['id']}/publish",
        headers=planner,
        json={"version": version, "acknowledge_warnings": True},
    )


def _lookup(client, point, generation):
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        query = {"lon": point.x, "lat": point.y, "crs": "4326"}
        body = client.get("/api/v1/lookup", params=query).json()
        if body["generation"] == generation:
            return body
        time.sleep(0.05)
    raise AssertionError(f"lookups did not switch to generation {generation}")


def _state(client, draft):
    body = client.get(f"/api/v1/drafts/{draft['id']}").json()
    return (
        body["version"],
        body["base_generation"],
        client.get("/api/v1/generations").json()["active"],
    )


def test_two_drafts_from_one_base_both_reach_the_active_generation(client, planner):
    first = _draft(client, planner, "甲：挪动边界")
    second = _draft(client, planner, "乙：拆分远处的微网格")
    a, b, in_strip = _reshape(client, planner, first, 0)
    near = _grids(client, 1, level="grid", parent=COMMUNITY)[a][1]
    y, (line, in_left), siblings = _far_micro_grid(client, near)
    halves = _split(client, planner, second, 0, y, line)

    first_published = _publish(client, planner, first, 1)
    assert first_published.status_code == 200, first_published.text
    before = _state(client, second)
    unacknowledged = client.post(
        f"/api/v1/drafts/{second['id']}/publish", headers=planner, json={"version": 1}
    )
    assert unacknowledged.status_code == 409
    assert unacknowledged.json()["error"]["code"] == "warnings_not_acknowledged"
    assert _state(client, second) == before == (1, 1, first["generation_id"])
    published = _publish(client, planner, second, 1)
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["generation"] == second["generation_id"]
    rebase = body["rebase"]
    assert rebase["rebased"] and rebase["from_generation"] == 1
    assert rebase["base_generation"] == first["generation_id"]
    carried = {c["code"]: c["action"] for c in rebase["carried"]}
    assert carried[y] == "split" and {carried[h] for h in halves} == {"split"}
    assert {a, b} <= {c["code"] for c in rebase["from_active"]}
    assert rebase["check"]["errors"] == 0 and rebase["resolved"] == []
    # This publish's lineage is relative to the generation it replaced: only the split.
    assert {(x["old_code"], x["new_code"], x["relation"]) for x in body["lineage"]} == {
        (y, halves[0], "split"),
        (y, halves[1], "split"),
    }

    active = second["generation_id"]
    assert client.get("/api/v1/generations").json()["active"] == active
    reshaped = _grids(client, first["generation_id"], level="grid", parent=COMMUNITY)
    now = _grids(client, active, level="grid", parent=COMMUNITY)
    assert now[a][1].equals(reshaped[a][1]) and now[b][1].equals(reshaped[b][1])
    assert not now[a][1].equals(near)
    codes_now = set(
        _grids(client, active, level="micro_grid", parent=siblings[y][0]["parent_code"])
    )
    assert y not in codes_now and set(halves) <= codes_now
    # Lookups answer both changes: the strip is a's now, the left half is one of the halves.
    strip_answer = _lookup(client, in_strip, active)["grid"]["code"]
    strip_micro = client.get(f"/api/v1/grids/{strip_answer}").json()["properties"]
    assert strip_micro["parent_code"] == a
    assert _lookup(client, in_left, active)["grid"]["code"] in halves
    check = client.post("/api/v1/coverage/checks", json={"generation": active}, headers=planner)
    assert check.json()["summary"]["errors"] == 0
    history = client.get(f"/api/v1/drafts/{second['id']}").json()["edits"]
    assert [e["operation"] for e in history] == ["rebase", "split"]


def _rename(client, planner, draft, code, name, version):
    answer = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{code}",
        headers=planner,
        json={"name": name, "version": version},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("choice", ["draft", "active"])
def test_a_conflict_is_named_resolved_and_published(client, planner, choice):
    code = sorted(_grids(client, 1, level="grid", parent=COMMUNITY))[0]
    first = _draft(client, planner, "甲")
    second = _draft(client, planner, "乙")
    _rename(client, planner, first, code, "甲方命名", 0)
    _rename(client, planner, second, code, "乙方命名", 0)
    assert _publish(client, planner, first, 1).status_code == 200
    before = _state(client, second)

    refused = _publish(client, planner, second, 1)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "rebase_conflicts"
    [conflict] = refused.json()["error"]["details"]
    assert (conflict["code"], conflict["kind"], conflict["level"]) == (code, "both_changed", "grid")
    assert conflict["draft"]["name"] == "乙方命名" and conflict["active"]["name"] == "甲方命名"
    assert conflict["draft"]["changes"] == ["name"] == conflict["active"]["changes"]
    assert conflict["draft"]["area_m2"] == conflict["active"]["area_m2"] > 0
    assert _state(client, second) == before  # nothing changed
    url = REBASE.format(id=second["id"])
    asked = client.post(url, headers=planner, json={"version": 1})
    assert asked.status_code == 409 and len(asked.json()["error"]["details"]) == 1
    stale = client.post(url, headers=planner, json={"version": 0, "resolutions": {code: choice}})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_draft"
    bad = [
        ({"320571005099": choice}, "unknown_conflict", "body.resolutions.320571005099"),
        ({code: "mine"}, "validation_error", f"body.resolutions.{code}"),
    ]
    for resolutions, error, where in bad:
        answer = client.post(url, headers=planner, json={"version": 1, "resolutions": resolutions})
        assert answer.status_code == 422, answer.text
        assert (answer.json()["error"]["code"], answer.json()["error"]["where"]) == (error, where)
    assert len(bad) == 2 and _state(client, second) == before

    resolved = client.post(url, headers=planner, json={"version": 1, "resolutions": {code: choice}})
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert body["version"] == 2 and body["base_generation"] == first["generation_id"]
    assert body["resolved"] == [{"code": code, "resolution": choice, "grids": [code]}]
    assert body["check"]["errors"] == 0
    published = _publish(client, planner, second, 2)
    assert published.status_code == 200, published.text
    assert published.json()["rebase"] is None
    wanted = "乙方命名" if choice == "draft" else "甲方命名"
    assert client.get(f"/api/v1/grids/{code}").json()["properties"]["name"] == wanted
    undo = client.post(f"/api/v1/drafts/{second['id']}/undo", headers=planner, json={"version": 2})
    assert undo.status_code == 409  # published: closed


def test_different_columns_of_one_grid_merge_and_undo_stops_at_the_rebase(client, planner):
    first = _draft(client, planner, "甲：挪动边界")
    second = _draft(client, planner, "乙：改名")
    a, b, _ = _reshape(client, planner, first, 0)
    _rename(client, planner, second, a, "新名字", 0)
    assert _publish(client, planner, first, 1).status_code == 200
    url = REBASE.format(id=second["id"])
    rebased = client.post(url, headers=planner, json={"version": 1})
    assert rebased.status_code == 200, rebased.text
    assert rebased.json()["check"]["errors"] == 0
    grids = _grids(client, second["generation_id"], level="grid", parent=COMMUNITY)
    reshaped = _grids(client, first["generation_id"], level="grid", parent=COMMUNITY)
    assert grids[a][0]["name"] == "新名字" and grids[a][1].equals(reshaped[a][1])
    again = client.post(url, headers=planner, json={"version": 2})
    assert again.status_code == 200 and again.json()["rebased"] is False
    assert again.json()["version"] == 2 and again.json()["check"] is None
    nothing = client.post(url, headers=planner, json={"version": 2, "resolutions": {a: "draft"}})
    assert nothing.status_code == 422 and nothing.json()["error"]["code"] == "unknown_conflict"

    _rename(client, planner, second, b, "后来改的", 2)
    undone = client.post(
        f"/api/v1/drafts/{second['id']}/undo", headers=planner, json={"version": 3}
    )
    assert undone.status_code == 200
    stop = client.post(f"/api/v1/drafts/{second['id']}/undo", headers=planner, json={"version": 4})
    assert stop.status_code == 409 and stop.json()["error"]["code"] == "undo_stops_at_rebase"
    assert _grids(client, second["generation_id"], level="grid", parent=COMMUNITY)[a][0][
        "name"
    ] == ("新名字")
    published = _publish(client, planner, second, 4)
    assert published.status_code == 200, published.text
    assert published.json()["lineage"] == []  # a rename, relative to the active generation


@pytest.mark.parametrize("choice", ["draft", "active"])
def test_both_reshaping_one_boundary_conflicts_and_either_side_wins_cleanly(
    client, planner, choice
):
    first = _draft(client, planner, "甲")
    second = _draft(client, planner, "乙")
    a, b, _ = _reshape(client, planner, first, 0)
    a2, b2, _ = _reshape(client, planner, second, 0, take=2)  # the same boundary, further
    assert (a, b) == (a2, b2)
    drafted = _grids(client, second["generation_id"], level="grid", parent=COMMUNITY)
    assert _publish(client, planner, first, 1).status_code == 200
    refused = _publish(client, planner, second, 1)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "rebase_conflicts"
    conflicts = {c["code"]: c for c in refused.json()["error"]["details"]}
    assert {a, b} <= set(conflicts) and len(conflicts) == len(refused.json()["error"]["details"])
    assert conflicts[a]["draft"]["action"] == "reshape" == conflicts[a]["active"]["action"]
    assert conflicts[a]["draft"]["area_m2"] > conflicts[a]["active"]["area_m2"]
    assert conflicts[b]["draft"]["area_m2"] < conflicts[b]["active"]["area_m2"]
    # Both edits moved the same micro-grids: a resolution keeps or drops a whole edit.
    half = {a: choice, b: "draft" if choice == "active" else "active"}
    mixed = client.post(
        REBASE.format(id=second["id"]),
        headers=planner,
        json={"version": 1, "resolutions": {**{c: choice for c in conflicts}, **half}},
    )
    assert mixed.status_code == 422, mixed.text
    assert (mixed.json()["error"]["code"], mixed.json()["error"]["where"]) == (
        "resolutions_contradict",
        "body.resolutions",
    )
    answer = client.post(
        REBASE.format(id=second["id"]),
        headers=planner,
        json={"version": 1, "resolutions": {c: choice for c in conflicts}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["check"]["errors"] == 0, answer.json()["check"]
    assert _publish(client, planner, second, 2).status_code == 200
    now = _grids(client, second["generation_id"], level="grid", parent=COMMUNITY)
    wanted = (
        drafted
        if choice == "draft"
        else _grids(client, first["generation_id"], level="grid", parent=COMMUNITY)
    )
    assert now[a][1].equals(wanted[a][1]) and now[b][1].equals(wanted[b][1])


def test_concurrent_publishes_and_rebases_serialise(client, planner, engine):
    first = _draft(client, planner, "甲")
    second = _draft(client, planner, "乙")
    a, _, _ = _reshape(client, planner, first, 0)
    near = _grids(client, 1, level="grid", parent=COMMUNITY)[a][1]
    y, (line, _), siblings = _far_micro_grid(client, near)
    halves = _split(client, planner, second, 0, y, line)
    results: dict[int, object] = {}

    def publish(draft_id):
        try:
            results[draft_id] = publish_draft(engine, draft_id, 1, True, "tests")
        except Conflict as error:  # pragma: no cover - reported by the assertion below
            results[draft_id] = error

    threads = [threading.Thread(target=publish, args=(d["id"],)) for d in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, dict) for r in results.values()), results
    rebased = [r for r in results.values() if r["rebase"] is not None]  # type: ignore[index]
    assert len(rebased) == 1
    last = rebased[0]["generation"]  # type: ignore[index]
    assert client.get("/api/v1/generations").json()["active"] == last
    grids = _grids(client, last, level="grid", parent=COMMUNITY)
    assert grids[a][1].equals(
        _grids(client, first["generation_id"], level="grid", parent=COMMUNITY)[a][1]
    )
    assert set(halves) <= set(
        _grids(client, last, level="micro_grid", parent=siblings[y][0]["parent_code"])
    )

    # Two rebases of one draft at the same version: one wins, the other is stale.
    third = _draft(client, planner, "丙")
    fourth = _draft(client, planner, "丁")
    assert _publish(client, planner, third, 0).status_code == 200
    outcomes: list[str] = []

    def rebase():
        try:
            outcomes.append(
                "ok" if rebase_draft(engine, fourth["id"], 0, {}, "tests")["rebased"] else "noop"
            )
        except Conflict as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=rebase) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "stale_draft"]
    with engine.connect() as connection:
        base = connection.execute(
            text("SELECT base_generation FROM draft WHERE id = :d"), {"d": fourth["id"]}
        ).scalar()
        rebases = connection.execute(
            text("SELECT count(*) FROM draft_edit WHERE draft_id = :d AND operation = 'rebase'"),
            {"d": fourth["id"]},
        ).scalar()
    assert (base, rebases) == (third["generation_id"], 1)


def test_a_draft_grid_overlapping_a_grid_the_active_side_changed_conflicts(client, planner):
    first = _draft(client, planner, "甲")
    second = _draft(client, planner, "乙")
    a, b, _ = _reshape(client, planner, first, 0)
    grids = _grids(client, 1, level="grid", parent=COMMUNITY)
    c = next(
        code
        for code, (_, shape) in sorted(grids.items())
        if code not in (a, b) and shape.intersection(grids[a][1]).length > 5e-4
    )
    # Redrawn alone (neighbours untouched), c now reaches into a, which the other draft changed.
    reach = grids[a][1].intersection(grids[c][1].buffer(1e-4, join_style="mitre"))
    drawn = shapely.union_all([grids[c][1], reach])
    redrawn = client.put(
        f"/api/v1/drafts/{second['id']}/grids/{c}",
        headers=planner,
        json={"geometry": json.loads(shapely.to_geojson(drawn)), "version": 0},
    )
    assert redrawn.status_code == 200, redrawn.text
    assert _publish(client, planner, first, 1).status_code == 200
    url = REBASE.format(id=second["id"])
    refused = client.post(url, headers=planner, json={"version": 1})
    assert refused.status_code == 409, refused.text
    details = refused.json()["error"]["details"]
    assert [(x["code"], x["kind"], x["other_code"]) for x in details] == [(c, "overlap", a)]
    assert details[0]["active"]["code"] == a and details[0]["active"]["action"] == "reshape"
    assert details[0]["draft"]["action"] == "reshape"
    answer = client.post(url, headers=planner, json={"version": 1, "resolutions": {c: "active"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["check"]["errors"] == 0 and answer.json()["carried"] == []
    now = _grids(client, second["generation_id"], level="grid", parent=COMMUNITY)
    assert now[c][1].equals(grids[c][1])


def test_a_clean_rebase_that_fails_the_check_publishes_nothing_and_changes_nothing(client, planner):
    first = _draft(client, planner, "甲")
    second = _draft(client, planner, "乙")
    a, _, _ = _reshape(client, planner, first, 0)
    near = _grids(client, 1, level="grid", parent=COMMUNITY)[a][1]
    communities = _grids(client, 1, level="community")
    far = max(communities, key=lambda c: communities[c][1].distance(near))
    grids = _grids(client, 1, level="grid", parent=far)
    x, y = _neighbours(grids)
    # Far from the other draft's change, x is redrawn over its neighbour y: an overlap.
    drawn = shapely.union_all(
        [grids[x][1], grids[y][1].intersection(grids[x][1].buffer(1e-4, join_style="mitre"))]
    )
    redrawn = client.put(
        f"/api/v1/drafts/{second['id']}/grids/{x}",
        headers=planner,
        json={"geometry": json.loads(shapely.to_geojson(drawn)), "version": 0},
    )
    assert redrawn.status_code == 200, redrawn.text
    assert _publish(client, planner, first, 1).status_code == 200
    before = _state(client, second)
    refused = _publish(client, planner, second, 1)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "coverage_errors"
    assert "变基" in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"][0]["by_kind"]["overlaps"] >= 1
    assert _state(client, second) == before == (1, 1, first["generation_id"])
    history = client.get(f"/api/v1/drafts/{second['id']}").json()["edits"]
    assert [e["operation"] for e in history] == ["redraw"]


@pytest.mark.parametrize("choice", ["draft", "active"])
def test_a_grid_split_on_one_side_and_renamed_on_the_other(client, planner, choice):
    first = _draft(client, planner, "甲：拆分")
    second = _draft(client, planner, "乙：改名")
    near = _grids(client, 1, level="grid", parent=COMMUNITY)
    y, (line, _), _ = _far_micro_grid(client, shapely.union_all([g for _, g in near.values()]))
    halves = _split(client, planner, first, 0, y, line)
    _rename(client, planner, second, y, "改名的微网格", 0)
    assert _publish(client, planner, first, 1).status_code == 200
    url = REBASE.format(id=second["id"])
    refused = client.post(url, headers=planner, json={"version": 1})
    assert refused.status_code == 409, refused.text
    [conflict] = refused.json()["error"]["details"]
    assert (conflict["code"], conflict["kind"], conflict["level"]) == (
        y,
        "both_changed",
        "micro_grid",
    )
    assert (conflict["draft"]["action"], conflict["active"]["action"]) == ("update", "split")
    assert conflict["active"]["area_m2"] is None and conflict["draft"]["area_m2"] > 0
    answer = client.post(url, headers=planner, json={"version": 1, "resolutions": {y: choice}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["check"]["errors"] == 0, answer.json()["check"]
    published = _publish(client, planner, second, 2)
    assert published.status_code == 200, published.text
    lineage = {(x["old_code"], x["new_code"], x["relation"]) for x in published.json()["lineage"]}
    active = second["generation_id"]
    if choice == "draft":  # the split is turned back: its halves merge into the renamed grid
        assert lineage == {(halves[0], y, "merge"), (halves[1], y, "merge")}
        assert client.get(f"/api/v1/grids/{y}").json()["properties"]["name"] == "改名的微网格"
        assert all(client.get(f"/api/v1/grids/{h}").status_code == 404 for h in halves)
    else:  # the rename is dropped: the active generation as it was
        assert lineage == set()
        assert client.get(f"/api/v1/grids/{y}").status_code == 404
        assert all(
            client.get(f"/api/v1/grids/{h}", params={"generation": active}).status_code == 200
            for h in halves
        )


def _live(engine, generation):
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT code FROM grid WHERE generation_low <= :g AND generation_high >= :g"),
                {"g": generation},
            ).scalars()
        )


@pytest.mark.parametrize("how", ["rebase", "replace_newer"])
def test_a_grid_both_sides_recoded_keeps_its_staff_when_the_draft_side_wins(
    client, planner, engine, how
):
    """Review F1: A and B move the same micro-grid into the neighbouring grid, so each recodes
    it (…004 → …022 in A, → …023 in B). A publishes; B rebases keeping its side and publishes
    (or publishes over A with replace_newer). The lineage, relative to A's generation, links
    A's code to B's as a recode, and the liaison and a field staff token follow it onto the
    live code (they followed A's recode first)."""
    first = _draft(client, planner, "甲")
    second = _draft(client, planner, "乙")
    _reshape(client, planner, first, 0)
    _reshape(client, planner, second, 0, take=2)
    published = _publish(client, planner, first, 1)
    assert published.status_code == 200, published.text
    recodes_a = {
        p["old_code"]: p["new_code"]
        for p in published.json()["lineage"]
        if p["relation"] == "recode"
    }
    with engine.connect() as connection:
        drafted = dict(
            connection.execute(
                text(
                    "SELECT old_code, new_code FROM grid_lineage l WHERE relation = 'recode' "
                    "AND generation_id = :g"
                ),
                {"g": first["generation_id"]},
            ).all()
        )
    assert drafted == recodes_a and len(recodes_a) == 1
    [(base_code, code_a)] = recodes_a.items()
    with engine.begin() as connection:
        staff = connection.execute(
            text("SELECT staff_id, role FROM staff_assignment WHERE grid_code = :c ORDER BY 1, 2"),
            {"c": code_a},
        ).all()
        connection.execute(
            text("UPDATE api_token SET grid_codes = ARRAY[CAST(:c AS varchar)] WHERE name = :n"),
            {"c": code_a, "n": "test-field_staff"},
        )
    assert [s.role for s in staff] == ["micro_grid_liaison"]

    if how == "rebase":
        url = REBASE.format(id=second["id"])
        asked = client.post(url, headers=planner, json={"version": 1})
        assert asked.status_code == 409, asked.text
        conflicts = [c["code"] for c in asked.json()["error"]["details"]]
        choices = {c: "draft" for c in conflicts}
        resolved = client.post(url, headers=planner, json={"version": 1, "resolutions": choices})
        assert resolved.status_code == 200, resolved.text
        final = _publish(client, planner, second, 2)
    else:
        final = client.post(
            f"/api/v1/drafts/{second['id']}/publish",
            headers=planner,
            json={"version": 1, "acknowledge_warnings": True, "replace_newer": True},
        )
    assert final.status_code == 200, final.text
    live = _live(engine, second["generation_id"])
    assert code_a not in live
    lineage = [(p["old_code"], p["new_code"], p["relation"]) for p in final.json()["lineage"]]
    [(_, code_b, _)] = [p for p in lineage if p[0] == code_a]
    assert (code_a, code_b, "recode") in lineage and code_b in live and code_b != base_code
    assert not [p for p in lineage if p[1] == code_b and p[0] != code_a]  # not also "created"
    with engine.connect() as connection:
        moved = connection.execute(
            text("SELECT staff_id, role FROM staff_assignment WHERE grid_code = :c ORDER BY 1, 2"),
            {"c": code_b},
        ).all()
        nowhere = connection.execute(
            text("SELECT count(*) FROM staff_assignment WHERE grid_code <> ALL(:live)"),
            {"live": sorted(live)},
        ).scalar()
        scope = connection.execute(
            text("SELECT grid_codes FROM api_token WHERE name = 'test-field_staff'")
        ).scalar()
    assert moved == staff and nowhere == 0
    assert scope == [code_b]


def test_a_publish_that_began_before_another_one_still_goes_live(
    client, planner, engine, monkeypatch
):
    """Review F9: D's transaction starts before C's publish but asks for the lock after it.
    D must see C's activation (and rebase onto it), and its own activation must come after
    C's: both changes are live, and the answer says D was rebased."""
    import api.drafts.publish as publishing
    from api.db import versioning

    codes = sorted(_grids(client, 1, level="grid", parent=COMMUNITY))[:2]
    c_draft = _draft(client, planner, "丙")
    d_draft = _draft(client, planner, "丁")
    _rename(client, planner, c_draft, codes[0], "丙改名", 0)
    _rename(client, planner, d_draft, codes[1], "丁改名", 0)
    began, c_done = threading.Event(), threading.Event()
    real = versioning.lock_generations

    def held_before_the_lock(connection):
        if threading.current_thread().name == "D":
            connection.execute(text("SELECT 1"))  # D's transaction (and its now()) begins
            began.set()
            assert c_done.wait(60)  # C publishes meanwhile
        real(connection)

    monkeypatch.setattr(publishing, "lock_generations", held_before_the_lock)
    results: dict[str, object] = {}

    def publish(name, draft):
        try:
            results[name] = publish_draft(engine, draft["id"], 1, True, "tests")
        except Conflict as error:  # pragma: no cover - reported by the assertions below
            results[name] = error
        finally:
            if name == "C":
                c_done.set()

    d_thread = threading.Thread(target=publish, args=("D", d_draft), name="D")
    d_thread.start()
    assert began.wait(60)
    publish("C", c_draft)
    d_thread.join()
    c_answer, d_answer = results["C"], results["D"]
    assert isinstance(c_answer, dict) and isinstance(d_answer, dict), results
    assert c_answer["rebase"] is None and d_answer["rebase"] is not None
    assert d_answer["rebase"]["from_generation"] == 1
    assert d_answer["rebase"]["base_generation"] == c_draft["generation_id"]
    active = client.get("/api/v1/generations").json()["active"]
    assert active == d_draft["generation_id"]
    with engine.connect() as connection:
        order = connection.execute(
            text("SELECT generation_id FROM generation_activation ORDER BY activated_at, id")
        ).scalars()
        assert list(order)[-2:] == [c_draft["generation_id"], d_draft["generation_id"]]
    names = [client.get(f"/api/v1/grids/{c}").json()["properties"]["name"] for c in codes]
    assert names == ["丙改名", "丁改名"]
