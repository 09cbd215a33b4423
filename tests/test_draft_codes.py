"""Codes keep their level's rule after an edit re-parents grids (issue 16 §1): micro-grids of a
split grid are recoded under their new parents (or, with keep_codes, the edit is refused), the
lineage and the answer say so, undo restores them, staff and lookups follow on publish, and the
coverage check (so publish and the import gate) refuses codes that break the rule."""

from __future__ import annotations

import json
import time

import pytest
import shapely
from sqlalchemy import text

from tests.conftest import bearer

STREET = "320571005"


def shape_of(geojson):
    return shapely.from_geojson(json.dumps(geojson))


def grids(client, generation, **params):
    """{code: (properties, shape)} of a generation's grids (`level`, `parent` filters)."""
    features = client.get(
        "/api/v1/grids", params={"generation": generation, "limit": 1000, **params}
    ).json()["features"]
    return {f["properties"]["code"]: (f["properties"], shape_of(f["geometry"])) for f in features}


def ever_used(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT DISTINCT code FROM grid")).scalars())


def exact_shape(engine, generation, code):
    """A grid's outline as stored (the API's GeoJSON rounds to 1e-9 degrees)."""
    with engine.connect() as connection:
        wkb = connection.execute(
            text(
                "SELECT ST_AsBinary(geom) FROM grid WHERE code = :c "
                "AND generation_low <= :g AND generation_high >= :g"
            ),
            {"c": code, "g": generation},
        ).scalar_one()
    return shapely.from_wkb(bytes(wkb))


def adjacent_pair(engine, generation, children):
    """Two micro-grids of one grid sharing an edge, as stored, whose union is one polygon."""
    for a in sorted(children):
        for b in sorted(children):
            if a >= b:
                continue
            sa, sb = exact_shape(engine, generation, a), exact_shape(engine, generation, b)
            if sa.intersection(sb).length > 1e-4 and sa.union(sb).geom_type == "Polygon":
                yield a, b, sa.union(sb)


def code_rule_findings(client, planner, generation):
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    return check["summary"], check["code_rule"]


def fullest_grid(engine, generation=1, skip=()) -> str:
    """The grid with the most micro-grids (ties: the highest code), but those in `skip`."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT parent_code, count(*) FROM grid WHERE level = 'micro_grid' "
                "AND generation_low <= :g AND generation_high >= :g GROUP BY parent_code"
            ),
            {"g": generation},
        ).all()
    return max((r for r in rows if r[0] not in skip), key=lambda r: (r[1], r[0]))[0]


def split_lines(shape):
    """Straight lines across a grid, middle first (the split then goes between micro-grids)."""
    xmin, ymin, xmax, ymax = shape.bounds
    lines = []
    for share in (0.5, 0.4, 0.6, 0.3, 0.7):
        x = xmin + (xmax - xmin) * share
        y = ymin + (ymax - ymin) * share
        lines.append(shapely.LineString([(x, ymin - 1e-3), (x, ymax + 1e-3)]))
        lines.append(shapely.LineString([(xmin - 1e-3, y), (xmax + 1e-3, y)]))
    return lines


def refused_split(client, planner, draft, code):
    """The first line that splits `code` cleanly, found by asking with keep_codes (409)."""
    for line in split_lines(grids(client, draft["generation_id"], level="grid")[code][1]):
        answer = client.post(
            f"/api/v1/drafts/{draft['id']}/split",
            headers=planner,
            json={
                "code": code,
                "line": json.loads(shapely.to_geojson(line)),
                "version": draft["version"],
                "keep_codes": True,
            },
        )
        if answer.status_code == 409:
            return line, answer
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "split_failed"
    raise AssertionError(f"no line splits {code}")


def whole_grid_across(client, generation, skip=()):
    """(from_community, to_community, grid): a grid on the border of two communities whose
    move to the other leaves both in one piece (communities in `skip` left alone)."""
    communities = grids(client, generation, level="community")
    for c1, (_, s1) in sorted(communities.items()):
        for c2, (_, s2) in sorted(communities.items()):
            if c1 == c2 or {c1, c2} & set(skip):
                continue
            if s1.boundary.intersection(s2.boundary).length < 1e-4:
                continue
            for x, (_, sx) in sorted(grids(client, generation, level="grid", parent=c1).items()):
                if (
                    sx.boundary.intersection(s2.boundary).length > 3e-4
                    and s1.difference(sx).geom_type == "Polygon"
                    and s2.union(sx).geom_type == "Polygon"
                ):
                    return c1, c2, x
    raise AssertionError("no grid borders another community")


def wait_for_generation(client, point, generation, headers):
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        body = client.get(
            "/api/v1/lookup",
            params={"lon": point.x, "lat": point.y, "crs": "4326"},
            headers=headers,
        ).json()
        if body["generation"] == generation:
            return body
        time.sleep(0.05)
    raise AssertionError(f"lookups did not switch to generation {generation}")


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


@pytest.fixture
def draft(client, planner):
    return client.post("/api/v1/drafts", json={"name": "编码规则"}, headers=planner).json()


def test_split_recodes_micro_grids_under_their_new_parents(client, planner, tokens, draft, engine):
    """The issue's case: the grid with the most micro-grids is split; every micro-grid code
    extends its new parent's; keep_codes refuses; undo restores; staff and lookups follow."""
    generation, draft_id = draft["generation_id"], draft["id"]
    code = fullest_grid(engine)
    before = grids(client, 1, level="micro_grid", parent=code)
    assert len(before) >= 20
    used = ever_used(engine)

    # keep_codes: the split would leave every micro-grid under a parent its code does not name.
    line, refused = refused_split(client, planner, draft, code)
    error = refused.json()["error"]
    assert (error["code"], error["where"]) == ("code_rule", "body.keep_codes")
    assert len(error["details"]) == len(before)
    assert {d["code"] for d in error["details"]} == set(before)
    assert all(
        d["problem"] == f"编码应以上级编码 {d['parent_code']} 开头" for d in error["details"]
    )
    assert "keep_codes" in error["message"] and sorted(before)[0] in error["message"]
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 0  # nothing written
    assert grids(client, generation, level="micro_grid", parent=code).keys() == before.keys()

    split = client.post(
        f"/api/v1/drafts/{draft_id}/split",
        headers=planner,
        json={"code": code, "line": json.loads(shapely.to_geojson(line)), "version": 0},
    )
    assert split.status_code == 200, split.text
    body = split.json()
    new_parents = body["created"]
    assert len(new_parents) == 2 and body["removed"] == [code]
    recoded = body["recoded"]
    assert len(recoded) == len(before)
    assert {r["old_code"] for r in recoded} == set(before)
    assert {r["level"] for r in recoded} == {"micro_grid"}
    assert {r["parent_code"] for r in recoded} == set(new_parents)
    assert not {r["new_code"] for r in recoded} & used  # never a code used before
    # Next free codes under each new parent: 001, 002, … in the order of the old codes.
    for parent in new_parents:
        mine = sorted((r["old_code"], r["new_code"]) for r in recoded if r["parent_code"] == parent)
        assert [new for _, new in mine] == [f"{parent}{n:03d}" for n in range(1, len(mine) + 1)]
    # In the draft: every micro-grid extends its parent, with the same outline as before.
    after = {
        c: v
        for parent in new_parents
        for c, v in grids(client, generation, level="micro_grid", parent=parent).items()
    }
    assert set(after) == {r["new_code"] for r in recoded}
    assert all(props["code"].startswith(props["parent_code"]) for props, _ in after.values())
    for r in recoded:
        assert after[r["new_code"]][1].equals(before[r["old_code"]][1])
        assert after[r["new_code"]][0]["name"] == before[r["old_code"]][0]["name"]
    summary, findings = code_rule_findings(client, planner, generation)
    assert findings == [] and summary["errors"] == 0
    # Their liaisons follow on publish, so the check does not count them missing meanwhile.
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    missing = {c for f in check["missing_roles"] for c in f["codes"]}
    assert not missing & {r["new_code"] for r in recoded}
    assert summary["by_kind"]["missing_roles"] == len(missing)
    with engine.connect() as connection:
        lineage = connection.execute(
            text("SELECT details->'lineage' FROM draft_edit WHERE draft_id = :d AND version = 1"),
            {"d": draft_id},
        ).scalar_one()
    assert sorted(tuple(step) for step in lineage) == sorted(
        [(code, parent, "split") for parent in new_parents]
        + [(r["old_code"], r["new_code"], "recode") for r in recoded]
    )

    # Undo puts the micro-grids back under the grid, with their old codes.
    undone = client.post(f"/api/v1/drafts/{draft_id}/undo", headers=planner, json={"version": 1})
    assert undone.status_code == 200, undone.text
    restored = grids(client, generation, level="micro_grid", parent=code)
    assert restored.keys() == before.keys()
    assert all(restored[c][1].equals(before[c][1]) for c in before)
    for parent in new_parents:
        assert grids(client, generation, parent=parent) == {}
    assert code in grids(client, generation, level="grid")

    # Again, then publish: staff of the recoded micro-grids follow them.
    again = client.post(
        f"/api/v1/drafts/{draft_id}/split",
        headers=planner,
        json={"code": code, "line": json.loads(shapely.to_geojson(line)), "version": 2},
    ).json()
    recoded = {r["old_code"]: r["new_code"] for r in again["recoded"]}
    assert set(recoded) == set(before)
    first, second = sorted(before)[:2]
    with engine.begin() as connection:
        staff = {
            c: connection.execute(
                text("SELECT staff_id, role FROM staff_assignment WHERE grid_code = :c"),
                {"c": c},
            ).all()
            for c in (first, second)
        }
        assert [r.role for r in staff[first]] == ["micro_grid_liaison"]
        # The second's liaison was already entered under the new code (the unique constraint).
        connection.execute(
            text("INSERT INTO staff_assignment (staff_id, grid_code, role) VALUES (:s, :c, :r)"),
            {"s": staff[second][0].staff_id, "c": recoded[second], "r": staff[second][0].role},
        )
    # The liaison's phone token is scoped to the micro-grid's code: it follows the recode too.
    phone = client.post(
        "/api/v1/tokens",
        headers=bearer(tokens["admin"]),
        json={"name": "联络员手机", "role": "field_staff", "grid_codes": [first]},
    )
    assert phone.status_code == 201, phone.text
    published = client.post(
        f"/api/v1/drafts/{draft_id}/publish",
        headers=planner,
        json={"version": 3, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    with engine.connect() as connection:
        scope = connection.execute(
            text("SELECT grid_codes FROM api_token WHERE id = :i"), {"i": phone.json()["id"]}
        ).scalar_one()
    assert scope == [recoded[first]]
    assert {(x["old_code"], x["new_code"], x["relation"]) for x in published.json()["lineage"]} == {
        *((code, parent, "split") for parent in again["created"]),
        *((old, new, "recode") for old, new in recoded.items()),
    }
    with engine.connect() as connection:
        for old in (first, second):
            assert (
                connection.execute(
                    text("SELECT count(*) FROM staff_assignment WHERE grid_code = :c"), {"c": old}
                ).scalar()
                == 0
            )
            assert connection.execute(
                text("SELECT staff_id, role FROM staff_assignment WHERE grid_code = :c"),
                {"c": recoded[old]},
            ).all() == [tuple(staff[old][0])]
        left = connection.execute(
            text("SELECT count(*) FROM staff_assignment WHERE grid_code = ANY(:c)"),
            {"c": sorted(before)},
        ).scalar()
    assert left == 0

    # A lookup in a recoded micro-grid answers its new code, under its new grid, with its staff.
    point = before[first][1].representative_point()
    admin = bearer(tokens["admin"])
    answer = wait_for_generation(client, point, published.json()["generation"], admin)
    assert answer["grid"]["code"] == recoded[first]
    assert [g["code"] for g in answer["path"]][-2:] == [recoded[first][:15], recoded[first]]
    assert recoded[first][:15] in again["created"]
    liaisons = [s for s in answer["staff"] if s["grid_code"] == recoded[first]]
    assert len(liaisons) == 1
    summary, findings = code_rule_findings(client, planner, published.json()["generation"])
    assert findings == [] and summary["errors"] == 0

    # Undoing the publish (re-activating generation 1) takes the staff back, and forward again.
    def where_staff(staff_id):
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT grid_code FROM staff_assignment WHERE staff_id = :s"),
                {"s": staff_id},
            ).all()

    liaison = staff[first][0].staff_id
    assert client.post("/api/v1/generations/1/activate", headers=planner).status_code == 200
    assert where_staff(liaison) == [(first,)]
    again_live = f"/api/v1/generations/{published.json()['generation']}/activate"
    assert client.post(again_live, headers=planner).status_code == 200
    assert where_staff(liaison) == [(recoded[first],)]


def test_merge_recodes_the_absorbed_grids_micro_grids(client, planner, draft):
    generation, draft_id = draft["generation_id"], draft["id"]
    community = STREET + "001"
    siblings = grids(client, generation, level="grid", parent=community)
    a, b = next(
        (a, b)
        for a in sorted(siblings)
        for b in sorted(siblings)
        if a < b and siblings[a][1].intersection(siblings[b][1]).length > 5e-4
    )
    kept = grids(client, generation, level="micro_grid", parent=a)
    absorbed = grids(client, generation, level="micro_grid", parent=b)
    request = {"codes": [a, b], "keep_code": a, "version": 0}
    refused = client.post(
        f"/api/v1/drafts/{draft_id}/merge", headers=planner, json={**request, "keep_codes": True}
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "code_rule"
    assert {d["code"] for d in refused.json()["error"]["details"]} == set(absorbed)
    merged = client.post(f"/api/v1/drafts/{draft_id}/merge", headers=planner, json=request)
    assert merged.status_code == 200, merged.text
    recoded = merged.json()["recoded"]
    assert {r["old_code"] for r in recoded} == set(absorbed)
    assert {r["parent_code"] for r in recoded} == {a}
    # After the kept grid's own micro-grids, never reusing a code.
    highest = max(int(c[15:]) for c in kept)
    assert sorted(r["new_code"] for r in recoded) == [
        f"{a}{n:03d}" for n in range(highest + 1, highest + 1 + len(absorbed))
    ]
    children = grids(client, generation, level="micro_grid", parent=a)
    assert set(children) == set(kept) | {r["new_code"] for r in recoded}
    assert grids(client, generation, level="micro_grid", parent=b) == {}
    summary, findings = code_rule_findings(client, planner, generation)
    assert findings == [] and summary["errors"] == 0


def test_moving_a_grid_to_another_community_recodes_it_and_its_micro_grids(client, planner, draft):
    """A community reshaped over a whole grid of its neighbour carries it whole: the grid gets
    the community's next code, and its micro-grids are recoded under that (recursively)."""
    generation, draft_id = draft["generation_id"], draft["id"]
    _, c2, moved = whole_grid_across(client, generation)
    communities = grids(client, generation, level="community")
    micro = grids(client, generation, level="micro_grid", parent=moved)
    taken = communities[c2][1].union(grids(client, generation, level="grid")[moved][1])
    request = {"code": c2, "geometry": json.loads(shapely.to_geojson(taken)), "version": 0}
    refused = client.post(
        f"/api/v1/drafts/{draft_id}/reshape", headers=planner, json={**request, "keep_codes": True}
    )
    assert refused.status_code == 409, refused.text
    # Kept as they are, only the moved grid breaks the rule (its micro-grids still extend it).
    assert [d["code"] for d in refused.json()["error"]["details"]] == [moved]
    reshaped = client.post(f"/api/v1/drafts/{draft_id}/reshape", headers=planner, json=request)
    assert reshaped.status_code == 200, reshaped.text
    recoded = reshaped.json()["recoded"]
    [grid] = [r for r in recoded if r["level"] == "grid"]
    next_in_c2 = max(int(c[12:]) for c in grids(client, 1, level="grid", parent=c2)) + 1
    assert (grid["old_code"], grid["new_code"], grid["parent_code"]) == (
        moved,
        f"{c2}{next_in_c2:03d}",
        c2,
    )
    micro_recodes = [r for r in recoded if r["level"] == "micro_grid"]
    assert len(recoded) == 1 + len(micro) and len(micro_recodes) == len(micro)
    assert sorted((r["old_code"], r["new_code"]) for r in micro_recodes) == [
        (old, f"{grid['new_code']}{n:03d}") for n, old in enumerate(sorted(micro), start=1)
    ]
    assert all(r["parent_code"] == grid["new_code"] for r in micro_recodes)
    assert set(grids(client, generation, level="micro_grid", parent=grid["new_code"])) == {
        r["new_code"] for r in micro_recodes
    }
    summary, findings = code_rule_findings(client, planner, generation)
    assert findings == [] and summary["errors"] == 0, summary


def test_patch_parent_recodes_and_keep_codes_refuses(client, planner, draft, engine):
    """A planner moves a grid to another community by hand: outline first (redraw), then the
    parent (recoded, micro-grids too), then the old community's outline."""
    generation, draft_id = draft["generation_id"], draft["id"]
    c1, c2, moved = whole_grid_across(client, generation)
    c1_shape, c2_shape, moved_shape = (exact_shape(engine, generation, c) for c in (c1, c2, moved))
    micro = grids(client, generation, level="micro_grid", parent=moved)
    grown = client.put(
        f"/api/v1/drafts/{draft_id}/grids/{c2}",
        headers=planner,
        json={
            "geometry": json.loads(shapely.to_geojson(c2_shape.union(moved_shape))),
            "version": 0,
        },
    )
    assert grown.status_code == 200 and grown.json()["recoded"] == []
    refused = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{moved}",
        headers=planner,
        json={"parent_code": c2, "version": 1, "keep_codes": True},
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "code_rule"
    assert refused.json()["error"]["details"] == [
        {
            "code": moved,
            "level": "grid",
            "parent_code": c2,
            "problem": f"编码应以上级编码 {c2} 开头",
        }
    ]
    patched = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{moved}",
        headers=planner,
        json={"parent_code": c2, "version": 1},
    )
    assert patched.status_code == 200, patched.text
    recoded = patched.json()["recoded"]
    assert len(recoded) == 1 + len(micro)
    new_code = next(r["new_code"] for r in recoded if r["old_code"] == moved)
    assert new_code.startswith(c2) and len(new_code) == 15
    assert {r["old_code"] for r in recoded if r["level"] == "micro_grid"} == set(micro)
    assert all(r["new_code"].startswith(new_code) for r in recoded if r["level"] == "micro_grid")
    shrunk = client.put(
        f"/api/v1/drafts/{draft_id}/grids/{c1}",
        headers=planner,
        json={
            "geometry": json.loads(shapely.to_geojson(c1_shape.difference(moved_shape))),
            "version": 2,
        },
    )
    assert shrunk.status_code == 200
    summary, findings = code_rule_findings(client, planner, generation)
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    assert findings == [] and summary["errors"] == 0, [
        (k, [f["message"] for f in check[k]]) for k in summary["by_kind"] if check[k]
    ]
    # Undo the parent change: the grid and its micro-grids are back under their old codes.
    client.post(f"/api/v1/drafts/{draft_id}/undo", headers=planner, json={"version": 3})
    undone = client.post(f"/api/v1/drafts/{draft_id}/undo", headers=planner, json={"version": 4})
    assert undone.status_code == 200
    assert set(grids(client, generation, level="micro_grid", parent=moved)) == set(micro)
    assert grids(client, generation, parent=new_code) == {}


def test_code_rule_findings_refuse_publish_and_the_import_gate(client, planner, draft, engine):
    """Codes that break the rule (here written behind the API's back, in rows the draft shares
    with the active generation) are coverage errors: one finding per grid, publish refuses
    them, and so does an activating import with require_clean."""
    generation, draft_id = draft["generation_id"], draft["id"]
    parent = STREET + "001001"
    micro = sorted(grids(client, 1, level="micro_grid", parent=parent))
    # Not under its parent's code; and not even the level's 18 digits.
    wrong = [micro[0][:14] + "9" + micro[0][15:], STREET + "099"]
    with engine.begin() as connection:
        for new, old in zip(wrong, micro, strict=False):
            connection.execute(
                text("UPDATE grid SET code = :new WHERE code = :old"), {"new": new, "old": old}
            )
    summary, findings = code_rule_findings(client, planner, generation)
    assert summary["errors"] == 2 and summary["by_kind"]["code_rule"] == 2
    by_code = {f["codes"][0]: f for f in findings}
    assert sorted(by_code) == sorted(wrong)
    assert by_code[wrong[0]]["message"].endswith(f"（{wrong[0]}）：编码应以上级编码 {parent} 开头")
    assert by_code[wrong[1]]["message"].endswith(
        f"（{wrong[1]}）：编码不符合 micro_grid 层级的编码规则 ^\\d{{18}}$"
    )
    assert all(f["parent_code"] == parent and f["geometry"] for f in findings)
    refused = client.post(
        f"/api/v1/drafts/{draft_id}/publish",
        headers=planner,
        json={"version": 0, "acknowledge_warnings": True},
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "coverage_errors"
    assert refused.json()["error"]["details"][0]["by_kind"]["code_rule"] == 2

    # An import of another level builds on the same rows: its gate agrees.
    layer = client.get("/api/v1/export/grids", params={"format": "geojson", "level": "grid"}).json()
    layer["features"][0]["properties"]["name"] = "改名的网格"
    body = json.dumps(layer, ensure_ascii=False).encode()

    def imported(**form):
        return client.post(
            "/api/v1/import/grids",
            headers=planner,
            data={"level": "grid", **form},
            files={"file": ("grid.geojson", body)},
        )

    gate = imported(require_clean="true")
    assert gate.status_code == 422 and gate.json()["error"]["code"] == "import_rejected"
    coverage = [d["message"] for d in gate.json()["error"]["details"] if d["field"] == "coverage"]
    assert len(coverage) == 2 and all(any(w in m for m in coverage) for w in wrong)
    assert client.get("/api/v1/generations").json()["active"] == 1
    allowed = imported()
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["coverage"]["by_kind"]["code_rule"] == 2


def test_ogc_patch_of_a_parent_recodes_too(client, planner, draft, engine):
    """OGC API Features PATCH (a merge patch of parent_code) keeps the rule the same way."""
    generation, draft_id = draft["generation_id"], draft["id"]
    _, c2, moved = whole_grid_across(client, generation)
    c2_shape, moved_shape = (exact_shape(engine, generation, c) for c in (c2, moved))
    micro = grids(client, generation, level="micro_grid", parent=moved)
    client.put(
        f"/api/v1/drafts/{draft_id}/grids/{c2}",
        headers=planner,
        json={
            "geometry": json.loads(shapely.to_geojson(c2_shape.union(moved_shape))),
            "version": 0,
        },
    )
    patched = client.patch(
        f"/ogc/collections/drafts-{draft_id}-grids/items/{moved}",
        headers={**planner, "Content-Type": "application/merge-patch+json"},
        content=json.dumps({"properties": {"parent_code": c2}, "draft_version": 1}),
    )
    assert patched.status_code == 200, patched.text
    recoded = patched.json()["recoded"]
    assert len(recoded) == 1 + len(micro)
    [grid] = [r for r in recoded if r["level"] == "grid"]
    assert (grid["old_code"], grid["parent_code"]) == (moved, c2)
    assert grid["new_code"].startswith(c2)
    assert {r["old_code"] for r in recoded if r["level"] == "micro_grid"} == set(micro)
    assert set(grids(client, generation, parent=grid["new_code"])) == {
        r["new_code"] for r in recoded if r["level"] == "micro_grid"
    }


def test_create_over_whole_micro_grids_recodes_them_or_refuses(client, planner, draft, engine):
    """A new grid drawn over whole micro-grids of its neighbour takes them along, recoded."""
    generation, draft_id = draft["generation_id"], draft["id"]
    community = STREET + "004"
    host = sorted(grids(client, generation, level="grid", parent=community))[0]
    host_shape = exact_shape(engine, generation, host)
    m1, m2, outline = next(
        (m1, m2, outline)
        for m1, m2, outline in adjacent_pair(
            engine, generation, grids(client, generation, parent=host)
        )
        if host_shape.difference(outline).geom_type == "Polygon"
    )
    request = {
        "name": "新建网格",
        "level": "grid",
        "parent_code": community,
        "geometry": json.loads(shapely.to_geojson(outline)),
        "version": 0,
    }
    refused = client.post(
        f"/api/v1/drafts/{draft_id}/grids", headers=planner, json={**request, "keep_codes": True}
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "code_rule"
    assert sorted(d["code"] for d in refused.json()["error"]["details"]) == [m1, m2]
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 0
    created = client.post(f"/api/v1/drafts/{draft_id}/grids", headers=planner, json=request)
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    assert created.json()["created"] == [code]
    assert [(r["old_code"], r["new_code"]) for r in created.json()["recoded"]] == [
        (m1, f"{code}001"),
        (m2, f"{code}002"),
    ]
    assert set(grids(client, generation, parent=code)) == {f"{code}001", f"{code}002"}
    summary, findings = code_rule_findings(client, planner, generation)
    assert findings == [] and summary["errors"] == 0, summary


def test_a_new_code_by_hand_recodes_the_micro_grids(client, planner, draft, engine):
    """PATCH code on a grid: its micro-grids follow (recoded under the new code); with
    keep_codes the rename is refused, naming each micro-grid."""
    generation, draft_id = draft["generation_id"], draft["id"]
    grid = STREET + "006001"
    micro = sorted(grids(client, generation, parent=grid))
    new = STREET + "006099"
    refused = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{grid}",
        headers=planner,
        json={"code": new, "version": 0, "keep_codes": True},
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "code_rule"
    assert [d["code"] for d in refused.json()["error"]["details"]] == micro
    renamed = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{grid}",
        headers=planner,
        json={"code": new, "version": 0},
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["created"], renamed.json()["removed"]) == ([new], [grid])
    assert [(r["old_code"], r["new_code"]) for r in renamed.json()["recoded"]] == [
        (old, f"{new}{n:03d}") for n, old in enumerate(micro, start=1)
    ]
    assert grids(client, generation, parent=grid) == {}
    published = client.post(
        f"/api/v1/drafts/{draft_id}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    assert {(x["old_code"], x["new_code"]) for x in published.json()["lineage"]} == {
        (grid, new),
        *((old, f"{new}{n:03d}") for n, old in enumerate(micro, start=1)),
    }
    assert {x["relation"] for x in published.json()["lineage"]} == {"recode"}
    with engine.connect() as connection:
        staffed = connection.execute(
            text("SELECT grid_code, role FROM staff_assignment WHERE grid_code LIKE :p"),
            {"p": new + "%"},
        ).all()
    # The grid team moved with the grid's code, each liaison with its micro-grid's.
    assert len(staffed) == 5 + len(micro)


def test_when_no_code_can_be_picked_each_operation_asks_for_its_own_field(
    client, planner, tokens, draft
):
    """Review F12: create and merge answered with the split's "two codes in new_codes". A new
    level below micro-grids has no numbered codes to continue: each operation names its field."""
    added = client.post(
        "/api/v1/levels",
        headers=bearer(tokens["admin"]),
        json={"name": "cell", "rank": 60, "label_zh": "单元"},
    )
    assert added.status_code == 201, added.text
    draft_id, generation = draft["id"], draft["generation_id"]
    micro = "320571005001001001"
    x, y = (
        grids(client, generation, level="micro_grid", parent=micro[:15])[micro][1]
        .representative_point()
        .coords[0]
    )
    d = 2e-5
    cells = [
        shapely.box(x - d, y - d / 2, x, y + d / 2),
        shapely.box(x, y - d / 2, x + d, y + d / 2),
    ]

    def create(version, **fields):
        return client.post(
            f"/api/v1/drafts/{draft_id}/grids",
            headers=planner,
            json={
                "name": "单元",
                "level": "cell",
                "parent_code": micro,
                "geometry": json.loads(shapely.to_geojson(cells[version])),
                "version": version,
                **fields,
            },
        )

    asked = {}
    answer = create(0)  # the micro-grid has no cells yet: nothing to number after
    asked["create"] = answer
    for version, code in enumerate(("A1", "A2")):
        made = create(version, code=micro + code)
        assert made.status_code == 201, made.text
    asked["merge"] = client.post(
        f"/api/v1/drafts/{draft_id}/merge",
        headers=planner,
        json={"codes": [micro + "A1", micro + "A2"], "version": 2},
    )
    asked["split"] = client.post(
        f"/api/v1/drafts/{draft_id}/split",
        headers=planner,
        json={
            "code": micro + "A1",
            "line": {"type": "LineString", "coordinates": [[x - d / 2, y - d], [x - d / 2, y + d]]},
            "version": 2,
        },
    )
    expected = {
        "create": ("body.code", "请在 code 中给出新网格的编码"),
        "merge": ("body.keep_code", "请在 keep_code 中指定保留哪个被合并网格的编码"),
        "split": ("body.new_codes", "请在 new_codes 中给出两个新编码"),
    }
    for operation, response in asked.items():
        assert response.status_code == 422, (operation, response.text)
        error = response.json()["error"]
        assert error["code"] == "codes_required", error
        assert (error["where"], error["message"]) == (
            expected[operation][0],
            f"无法自动编码：上级 {micro} 下没有可接续的数字序号编码，{expected[operation][1]}",
        )
    assert len(asked) == 3
    kept = client.post(
        f"/api/v1/drafts/{draft_id}/merge",
        headers=planner,
        json={"codes": [micro + "A1", micro + "A2"], "keep_code": micro + "A1", "version": 2},
    )
    assert kept.status_code == 200, kept.text
