"""Draft edits end to end: move a shared boundary, split an over-full grid, create, delete,
change attributes, reassign a building, undo, diff, a draft from a file, auto-suggest."""

from __future__ import annotations

import json

import pytest
import shapely
from sqlalchemy import text

from tests.conftest import bearer

COMMUNITY = "320571005001"
GRID_LEVEL_ERRORS = ("overlaps", "gaps", "invalid_edges", "outside_parent", "invalid_geometries")


def _shape(geojson):
    return shapely.from_geojson(json.dumps(geojson))


def _grids(client, generation, **params):
    features = client.get("/api/v1/grids", params={"generation": generation, **params}).json()[
        "features"
    ]
    return {f["properties"]["code"]: (f["properties"], _shape(f["geometry"])) for f in features}


def _errors(client, planner, generation):
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    return {kind: [f["message"] for f in check[kind]] for kind in GRID_LEVEL_ERRORS if check[kind]}


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


@pytest.fixture
def draft(client, planner):
    return client.post("/api/v1/drafts", json={"name": "测试草稿"}, headers=planner).json()


def _neighbours(grids):
    """Two grids of one parent sharing a long edge."""
    items = sorted(grids.items())
    for code, (props, shape) in items:
        for other, (other_props, other_shape) in items:
            if (
                other > code
                and props["parent_code"] == other_props["parent_code"]
                and shape.intersection(other_shape).length > 5e-4
            ):
                return code, other
    raise AssertionError("no neighbours")


def test_reshape_moves_a_shared_boundary_and_undo_restores_it(client, planner, draft):
    generation = draft["generation_id"]
    grids = _grids(client, generation, level="grid", parent=COMMUNITY)
    a, b = _neighbours(grids)
    shape_a, shape_b = grids[a][1], grids[b][1]
    strip = shape_b.intersection(shape_a.buffer(2e-4, join_style="mitre"))
    grown = shape_a.union(strip)
    moved = client.post(
        f"/api/v1/drafts/{draft['id']}/reshape",
        headers=planner,
        json={"code": a, "geometry": json.loads(shapely.to_geojson(grown)), "version": 0},
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["version"] == 1 and {a, b} <= {t["code"] for t in body["touched"]}
    after = _grids(client, generation, level="grid", parent=COMMUNITY)
    # Both sides moved together: the pair's area is conserved, and they no longer overlap.
    assert after[a][1].area > shape_a.area and after[b][1].area < shape_b.area
    assert after[a][1].area + after[b][1].area == pytest.approx(
        shape_a.area + shape_b.area, rel=1e-9
    )
    assert after[a][1].intersection(after[b][1]).area < 1e-12
    # Micro-grids followed their area into the grown grid; nothing is left straddling.
    assert _errors(client, planner, generation) == {}
    # The active generation is untouched.
    assert _grids(client, 1, level="grid", parent=COMMUNITY)[a][1].equals(shape_a)

    stale = client.post(f"/api/v1/drafts/{draft['id']}/undo", headers=planner, json={"version": 0})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_draft"
    undone = client.post(f"/api/v1/drafts/{draft['id']}/undo", headers=planner, json={"version": 1})
    assert undone.status_code == 200 and undone.json()["version"] == 2
    restored = _grids(client, generation, level="grid", parent=COMMUNITY)
    assert restored[a][1].equals(shape_a) and restored[b][1].equals(shape_b)
    nothing = client.post(
        f"/api/v1/drafts/{draft['id']}/undo", headers=planner, json={"version": 2}
    )
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_undo"
    history = client.get(f"/api/v1/drafts/{draft['id']}").json()["edits"]
    assert [(e["operation"], e["undone"]) for e in history] == [("undo", False), ("reshape", True)]


def test_reshape_that_would_leave_a_gap_is_refused(client, planner, draft):
    grids = _grids(client, draft["generation_id"], level="community")
    code, (_, shape) = sorted(grids.items())[0]
    street_edge = shape.boundary.difference(
        shapely.union_all([s.boundary for c, (_, s) in grids.items() if c != code]).buffer(1e-7)
    )
    assert street_edge.length > 0
    shrunk = shape.difference(street_edge.buffer(1e-4))
    refused = client.post(
        f"/api/v1/drafts/{draft['id']}/reshape",
        headers=planner,
        json={"code": code, "geometry": json.loads(shapely.to_geojson(shrunk)), "version": 0},
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "would_leave_gap"
    assert client.get(f"/api/v1/drafts/{draft['id']}").json()["version"] == 0


def test_split_an_overfull_grid_between_its_micro_grids(client, planner, tokens, draft):
    generation = draft["generation_id"]
    stats = client.get(f"/api/v1/drafts/{draft['id']}/stats", params={"level": "grid"}).json()[
        "grids"
    ]
    fullest = max(stats, key=lambda s: s["households"])
    code = fullest["code"]
    shape = _grids(client, generation, level="grid")[code][1]
    xmin, ymin, xmax, ymax = shape.bounds
    middle = (xmin + xmax) / 2
    line = shapely.LineString([(middle, ymin - 1e-3), (middle, ymax + 1e-3)])
    # The line runs through micro-grids: the split goes between them instead.
    split = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        headers=planner,
        json={"code": code, "line": json.loads(shapely.to_geojson(line)), "version": 0},
    )
    assert split.status_code == 200, split.text
    new_codes = split.json()["created"]
    assert len(new_codes) == 2 and split.json()["removed"] == [code]
    # Its micro-grids moved to the two new grids: each is recoded under its new parent.
    recoded = split.json()["recoded"]
    micro_before = _grids(client, 1, level="micro_grid", parent=code)
    assert len(recoded) == len(micro_before) >= 2
    assert {r["old_code"] for r in recoded} == set(micro_before)
    assert all(r["new_code"].startswith(r["parent_code"]) for r in recoded)
    assert {r["parent_code"] for r in recoded} == set(new_codes)
    touched = {t["code"]: t for t in split.json()["touched"]}
    assert sum(touched[c]["households"] for c in new_codes) == fullest["households"]
    assert all(touched[c]["household_deviation"] is not None for c in new_codes)
    assert _grids(client, generation, level="micro_grid", parent=code) == {}
    for new in new_codes:
        children = [s for _, s in _grids(client, generation, parent=new).values()]
        assert children and shapely.union_all(children).area == pytest.approx(
            _grids(client, generation, level="grid")[new][1].area, rel=1e-9
        )
    assert _errors(client, planner, generation) == {}

    diff = client.get(f"/api/v1/drafts/{draft['id']}/diff").json()
    assert diff["summary"]["grids_added"] == 2 + len(recoded)
    assert diff["summary"]["grids_removed"] == 1 + len(recoded)
    assert {g["code"] for g in diff["grids"] if g["change"] != "changed"} == {
        code,
        *new_codes,
        *(r[side] for r in recoded for side in ("old_code", "new_code")),
    }
    assert sum(g["area_change_m2"] for g in diff["grids"] if g["level"] == "grid") == pytest.approx(
        0, abs=1
    )
    page = client.get(f"/map/drafts/{draft['id']}/diff")
    assert page.status_code == 200 and "草稿" in page.text and new_codes[0] in page.text

    published = client.post(
        f"/api/v1/drafts/{draft['id']}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    assert {(x["old_code"], x["new_code"], x["relation"]) for x in published.json()["lineage"]} == {
        *((code, new, "split") for new in new_codes),
        *((r["old_code"], r["new_code"], "recode") for r in recoded),
    }
    with_code = client.get("/api/v1/grids/" + new_codes[0]).json()
    assert with_code["properties"]["parent_code"] == code[:12]


def test_create_delete_and_change_attributes(client, planner, draft):
    generation, draft_id = draft["generation_id"], draft["id"]
    grids = _grids(client, generation, level="micro_grid", parent=COMMUNITY + "001")
    a, b = _neighbours(grids)
    parent = grids[a][0]["parent_code"]
    # A new micro-grid across the shared edge: both neighbours give up what it covers.
    across = grids[a][1].intersection(grids[b][1]).centroid.buffer(1e-4, quad_segs=2)
    created = client.post(
        f"/api/v1/drafts/{draft_id}/grids",
        headers=planner,
        json={
            "name": "新建小区",
            "level": "micro_grid",
            "parent_code": parent,
            "geometry": json.loads(shapely.to_geojson(across)),
            "version": 0,
        },
    )
    assert created.status_code == 201, created.text
    new = created.json()["code"]
    assert new.startswith(parent) and created.json()["created"] == [new]
    after = _grids(client, generation, level="micro_grid", parent=parent)
    assert shapely.hausdorff_distance(after[new][1], across) < 1e-6
    for old in (a, b):
        assert after[old][1].intersection(across).area < 1e-12
    assert _errors(client, planner, generation) == {}

    renamed = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{new}",
        headers=planner,
        json={"name": "新建小区（更名）", "households": 12, "version": 1},
    )
    assert renamed.status_code == 200
    assert _grids(client, generation, level="micro_grid", parent=parent)[new][0]["name"] == (
        "新建小区（更名）"
    )
    far_parent = sorted(_grids(client, generation, level="grid"))[-1]
    outside = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{new}",
        headers=planner,
        json={"parent_code": far_parent, "version": 2},
    )
    assert outside.status_code == 422 and outside.json()["error"]["code"] == "outside_parent"
    taken = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{new}",
        headers=planner,
        json={"code": a, "version": 2},
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "code_taken"

    has_children = client.delete(
        f"/api/v1/drafts/{draft_id}/grids/{parent}", headers=planner, params={"version": 2}
    )
    assert has_children.status_code == 422
    assert has_children.json()["error"]["code"] == "has_children"
    deleted = client.delete(
        f"/api/v1/drafts/{draft_id}/grids/{new}", headers=planner, params={"version": 2}
    )
    assert deleted.status_code == 200 and deleted.json()["removed"] == [new]
    assert "gaps" in _errors(client, planner, generation)  # its area is now uncovered
    for version in (3, 4, 5):  # undo the delete, the rename, the creation
        assert (
            client.post(
                f"/api/v1/drafts/{draft_id}/undo", headers=planner, json={"version": version}
            ).status_code
            == 200
        )
    restored = _grids(client, generation, level="micro_grid", parent=parent)
    assert new not in restored and restored[a][1].equals(grids[a][1])


def test_reassign_a_building_moves_the_boundary_around_it(client, planner, draft):
    generation, draft_id = draft["generation_id"], draft["id"]
    grids = _grids(client, generation, level="micro_grid", parent=COMMUNITY + "001")
    a, b = _neighbours(grids)
    shared = grids[a][1].intersection(grids[b][1])
    buildings = client.get("/api/v1/buildings", params={"grid": a}).json()["features"]
    nearest = min(buildings, key=lambda f: _shape(f["geometry"]).distance(shared))
    building = nearest["properties"]["code"]
    moved = client.post(
        f"/api/v1/drafts/{draft_id}/buildings/reassign",
        headers=planner,
        json={"buildings": [building], "grid_code": b, "version": 0},
    )
    # The strip to the shared edge would cut a neighbouring building: named, nothing written.
    assert moved.status_code == 422, moved.text
    assert moved.json()["error"]["code"] == "would_split_building"
    cut = moved.json()["error"]["details"][0]["buildings"]
    assert cut and building not in cut and all(c in moved.json()["error"]["message"] for c in cut)
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 0
    moved = client.post(
        f"/api/v1/drafts/{draft_id}/buildings/reassign",
        headers=planner,
        json={"buildings": [building, *cut], "grid_code": b, "version": 0},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["from"] == [a] and moved.json()["recoded"] == []
    diff = client.get(f"/api/v1/drafts/{draft_id}/diff").json()
    assert {(x["code"], x["from_grid"], x["to_grid"]) for x in diff["buildings"]} >= {
        (code, a, b) for code in (building, *cut)
    }
    assert _errors(client, planner, generation) == {}
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    assert check["split_buildings"] == [] and check["orphan_buildings"] == []
    again = client.post(
        f"/api/v1/drafts/{draft_id}/buildings/reassign",
        headers=planner,
        json={"buildings": ["no-such-building"], "grid_code": b, "version": 1},
    )
    assert again.status_code == 422 and again.json()["error"]["where"] == "body.buildings"


def test_draft_from_an_imported_file(client, planner, tmp_path):
    exported = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "micro_grid"}
    )
    assert exported.status_code == 200
    collection = exported.json()
    feature = collection["features"][0]
    code = feature["properties"]["code"]
    feature["properties"]["name"] = "改名后的微网格"
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    with path.open("rb") as handle:
        imported = client.post(
            "/api/v1/import/grids",
            headers=planner,
            files={"file": ("grids.geojson", handle, "application/geo+json")},
            data={"level": "micro_grid", "draft": "从文件导入"},
        )
    assert imported.status_code == 200, imported.text
    draft_id = imported.json()["draft_id"]
    assert client.get("/api/v1/generations").json()["active"] == 1
    listed = client.get("/api/v1/drafts", params={"status": "open"}).json()["drafts"]
    assert [(d["id"], d["source"]) for d in listed] == [(draft_id, "import")]
    diff = client.get(f"/api/v1/drafts/{draft_id}/diff").json()
    assert [(g["code"], g["attributes_changed"]) for g in diff["grids"]] == [(code, ["name"])]


def test_auto_suggest_partitions_a_community(client, planner, engine):
    proposed = client.post(
        "/api/v1/drafts/suggest", headers=planner, json={"community": COMMUNITY, "seed": 7}
    )
    assert proposed.status_code == 201, proposed.text
    body = proposed.json()
    assert body["source"] == "suggest" and body["version"] == 1
    grids = body["touched"]
    assert len(grids) == body["proposal"]["grids"] >= 2
    assert all(300 <= g["households"] <= 500 for g in grids), [g["households"] for g in grids]
    generation = body["generation_id"]
    shapes = _grids(client, generation, level="grid", parent=COMMUNITY)
    assert {c for c in shapes} == {g["code"] for g in grids}
    assert all(len(shapely.get_parts(s)) == 1 for _, s in shapes.values())  # contiguous
    assert _errors(client, planner, generation) == {}
    with engine.connect() as connection:
        orphans = connection.execute(
            text(
                "SELECT count(*) FROM grid m WHERE m.level = 'micro_grid' AND m.code LIKE :c "
                "AND m.generation_low <= :g AND m.generation_high >= :g AND NOT EXISTS ("
                "SELECT 1 FROM grid p WHERE p.code = m.parent_code "
                "AND p.generation_low <= :g AND p.generation_high >= :g)"
            ),
            {"c": COMMUNITY + "%", "g": generation},
        ).scalar()
    assert orphans == 0
    # The micro-grids moved under the new grids and were recoded to extend their codes.
    recoded = body["recoded"]
    assert len(recoded) == len({r["old_code"] for r in recoded}) > 0
    assert all(r["new_code"].startswith(r["parent_code"]) for r in recoded), recoded[:3]
    impossible = client.post(
        "/api/v1/drafts/suggest",
        headers=planner,
        json={"community": COMMUNITY, "households_min": 5000, "households_max": 6000},
    )
    assert impossible.status_code == 422
    assert impossible.json()["error"]["code"] == "partition_failed"


def test_draft_codes_follow_the_level_rule(client, planner, draft):
    """Create and PATCH apply the same code rule as an import: the level's pattern, and a code
    that extends its parent's."""
    generation, draft_id = draft["generation_id"], draft["id"]
    grids = _grids(client, generation, level="micro_grid", parent=COMMUNITY + "001")
    a, b = _neighbours(grids)
    parent = grids[a][0]["parent_code"]
    across = grids[a][1].intersection(grids[b][1]).centroid.buffer(1e-4, quad_segs=2)
    body = {
        "name": "新建小区",
        "level": "micro_grid",
        "parent_code": parent,
        "geometry": json.loads(shapely.to_geojson(across)),
        "version": 0,
    }
    for bad in ("<svg onload=alert(1)>", "12345", parent[:-1] + "9" + "077"):
        refused = client.post(
            f"/api/v1/drafts/{draft_id}/grids", headers=planner, json={**body, "code": bad}
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["code"] == "invalid_code"
        assert refused.json()["error"]["where"] == "body.code"
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 0  # nothing written
    good = client.post(
        f"/api/v1/drafts/{draft_id}/grids", headers=planner, json={**body, "code": parent + "077"}
    )
    assert good.status_code == 201, good.text
    recoded = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{a}",
        headers=planner,
        json={"code": "320571005001001X", "version": 1},
    )
    assert recoded.status_code == 422 and recoded.json()["error"]["code"] == "invalid_code"
    renamed = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{a}",
        headers=planner,
        json={"code": parent + "078", "version": 1},
    )
    assert renamed.status_code == 200, renamed.text


def test_reassign_leaves_valid_outlines_and_whole_buildings(client, planner, draft):
    """The editor's case: a building whose strip crosses its grid's edge at a computed point
    (it used to leave the strip as a hole touching that edge, invalid once reprojected) and
    cuts a neighbouring building (now named: reassign both)."""
    generation, draft_id = draft["generation_id"], draft["id"]
    grid = COMMUNITY + "001"
    request = {"buildings": [grid + "004B08"], "grid_code": grid + "005", "version": 0}
    refused = client.post(
        f"/api/v1/drafts/{draft_id}/buildings/reassign", headers=planner, json=request
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "would_split_building"
    assert refused.json()["error"]["details"] == [{"buildings": [grid + "004B07"]}]
    both = {**request, "buildings": [grid + "004B08", grid + "004B07"]}
    moved = client.post(f"/api/v1/drafts/{draft_id}/buildings/reassign", headers=planner, json=both)
    assert moved.status_code == 200, moved.text
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    assert check["summary"]["errors"] == 0, {k: check[k] for k in GRID_LEVEL_ERRORS if check[k]}
    diff = client.get(f"/api/v1/drafts/{draft_id}/diff").json()
    assert {(x["code"], x["from_grid"], x["to_grid"]) for x in diff["buildings"]} >= {
        (grid + "004B08", grid + "004", grid + "005"),
        (grid + "004B07", grid + "004", grid + "005"),
    }


def test_null_fields_are_refused_or_clear_what_may_be_unknown(client, planner, draft, engine):
    """Review F2: PATCH {"name": null} answered 500 (NOT NULL). code, name, kind and attributes
    cannot be null (422 naming the field); households and population may (unknown); parent_code
    null is refused below the top level (a street has none: null there changes nothing)."""
    generation, draft_id = draft["generation_id"], draft["id"]
    grids = _grids(client, generation, level="micro_grid", parent=COMMUNITY + "001")
    a, b = _neighbours(grids)
    url = f"/api/v1/drafts/{draft_id}/grids/{a}"
    refused = 0
    for field, code in (
        ("name", "null_not_allowed"),
        ("kind", "null_not_allowed"),
        ("code", "null_not_allowed"),
        ("attributes", "null_not_allowed"),
        ("parent_code", "invalid_parent"),
    ):
        answer = client.patch(url, headers=planner, json={field: None, "version": 0})
        assert answer.status_code == 422, (field, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["where"]) == (code, f"body.{field}"), error
        refused += 1
    empty = client.patch(url, headers=planner, json={"code": "", "version": 0})
    assert empty.status_code == 422 and empty.json()["error"]["where"] == "body.code"
    assert refused == 5
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 0  # nothing written

    cleared = client.patch(
        url, headers=planner, json={"households": None, "population": None, "version": 0}
    )
    assert cleared.status_code == 200, cleared.text
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT name, households, population FROM grid WHERE code = :c "
                "AND generation_low <= :g AND generation_high >= :g"
            ),
            {"c": a, "g": generation},
        ).one()
    assert (row.name, row.households, row.population) == (grids[a][0]["name"], None, None)
    # Create: the same fields cannot be null; households/population/code/parent_code may.
    parent = grids[a][0]["parent_code"]
    across = grids[a][1].intersection(grids[b][1]).centroid.buffer(1e-4, quad_segs=2)
    body = {
        "name": "新建小区",
        "level": "micro_grid",
        "parent_code": parent,
        "geometry": json.loads(shapely.to_geojson(across)),
        "version": 1,
    }
    for field in ("name", "kind", "level", "attributes", "geometry"):
        answer = client.post(
            f"/api/v1/drafts/{draft_id}/grids", headers=planner, json={**body, field: None}
        )
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["error"]["where"] == f"body.{field}"
    orphan = client.post(
        f"/api/v1/drafts/{draft_id}/grids", headers=planner, json={**body, "parent_code": None}
    )
    assert orphan.status_code == 422 and orphan.json()["error"]["code"] == "codes_required"
    created = client.post(
        f"/api/v1/drafts/{draft_id}/grids",
        headers=planner,
        json={**body, "code": None, "households": None, "population": None},
    )
    assert created.status_code == 201, created.text
    assert created.json()["code"].startswith(parent)
