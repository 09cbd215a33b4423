"""Round trip (issue 16 §1): split, merge, reshape, create and re-parent in one draft → publish
→ `wangge export grids` of every level → `wangge import grids` into an empty database, coarsest
level first → the same grids (codes, parents, attributes, outlines within the snap), nothing
rejected, the coverage check clean."""

from __future__ import annotations

import json
import uuid

import pytest
import shapely
from psycopg2 import sql
from sqlalchemy import create_engine, text

from api.db import migrate
from api.db.versioning import active_or_none
from spatial.cleanup import SNAP_DEG
from tests.conftest import _admin, _roles, as_role, bearer, create_database, drop_database
from tests.test_cli import run
from tests.test_draft_codes import (
    adjacent_pair,
    exact_shape,
    fullest_grid,
    grids,
    refused_split,
    whole_grid_across,
)

LEVELS = ("street", "community", "grid", "micro_grid")  # coarsest first


@pytest.fixture
def empty_url(admin_url):
    """A migrated database without any grid, as `wangge db migrate` leaves a new deployment."""
    name = f"wangge_empty_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    roles = _roles()
    if roles is not None:
        _admin(url, sql.SQL("CREATE EXTENSION IF NOT EXISTS postgis"))
        _admin(url, sql.SQL("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        migrate.upgrade(as_role(url, roles[0]))
        migrate.grant_service_role(as_role(url, roles[0]), roles[1])
    else:
        migrate.upgrade(url)
    yield url
    drop_database(admin_url, name)


def _active_grids(url):
    """{code: (level, parent, name, kind, households, population, shape)} of the live generation."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            generation = active_or_none(connection)
            rows = connection.execute(
                text(
                    "SELECT code, level, parent_code, name, kind, households, population, "
                    "ST_AsBinary(geom) AS wkb FROM grid "
                    "WHERE generation_low <= :g AND generation_high >= :g"
                ),
                {"g": generation},
            ).all()
    finally:
        engine.dispose()
    return {r.code: (*r[1:7], shapely.from_wkb(bytes(r.wkb))) for r in rows}


def _edit(client, planner, method, path, body):
    answer = client.request(method, path, headers=planner, json=body)
    assert answer.status_code in (200, 201), (path, answer.text)
    return answer.json()


def test_edits_publish_export_import_into_an_empty_database(
    client, tokens, engine, database_url, empty_url, tmp_path
):
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "往返"}, headers=planner).json()
    generation, base = draft["generation_id"], f"/api/v1/drafts/{draft['id']}"
    recoded = []

    # 1. reshape: a community takes a whole grid of its neighbour (grid and micro-grids recoded)
    c1, c2, moved = whole_grid_across(client, generation)
    taken = exact_shape(engine, generation, c2).union(exact_shape(engine, generation, moved))
    body = _edit(
        client,
        planner,
        "POST",
        f"{base}/reshape",
        {"code": c2, "geometry": json.loads(shapely.to_geojson(taken)), "version": 0},
    )
    recoded += body["recoded"]
    assert [r["level"] for r in body["recoded"]].count("grid") == 1
    used = {c1, c2}

    # 2. split: the fullest grid elsewhere, between its micro-grids (all recoded)
    target = fullest_grid(
        engine,
        generation,
        skip={c for c in grids(client, generation, level="grid") if c[:12] in used},
    )
    line, _ = refused_split(client, planner, {**draft, "version": 1}, target)
    body = _edit(
        client,
        planner,
        "POST",
        f"{base}/split",
        {"code": target, "line": json.loads(shapely.to_geojson(line)), "version": 1},
    )
    recoded += body["recoded"]
    assert len(body["created"]) == 2 and body["recoded"]
    used.add(target[:12])

    # 3. merge: two neighbouring micro-grids of a grid in another community
    community = sorted(set(grids(client, generation, level="community")) - used)[0]
    merge_grid = sorted(grids(client, generation, level="grid", parent=community))[0]
    a, b, _ = next(adjacent_pair(engine, generation, grids(client, generation, parent=merge_grid)))
    body = _edit(client, planner, "POST", f"{base}/merge", {"codes": [a, b], "version": 2})
    merged = body["created"]
    assert len(merged) == 1 and merged[0].startswith(merge_grid) and body["recoded"] == []

    # 4. create: a new grid over two whole micro-grids of another grid (they move, recoded)
    host = sorted(grids(client, generation, level="grid", parent=community))[1]
    host_shape = exact_shape(engine, generation, host)
    m1, m2, outline = next(
        (m1, m2, outline)
        for m1, m2, outline in adjacent_pair(
            engine, generation, grids(client, generation, parent=host)
        )
        if host_shape.difference(outline).geom_type == "Polygon"
    )
    body = _edit(
        client,
        planner,
        "POST",
        f"{base}/grids",
        {
            "name": "新建网格",
            "level": "grid",
            "parent_code": community,
            "geometry": json.loads(shapely.to_geojson(outline)),
            "version": 3,
        },
    )
    created = body["code"]
    assert created.startswith(community)
    assert {(r["old_code"], r["parent_code"]) for r in body["recoded"]} == {
        (m1, created),
        (m2, created),
    }
    recoded += body["recoded"]
    used.add(community)

    # 5. re-parent by hand: outline of the receiving community, the grid's parent, the giver's
    d1, d2, handed = whole_grid_across(client, generation, skip=used)
    d1_shape, d2_shape, handed_shape = (
        exact_shape(engine, generation, c) for c in (d1, d2, handed)
    )
    _edit(
        client,
        planner,
        "PUT",
        f"{base}/grids/{d2}",
        {"geometry": json.loads(shapely.to_geojson(d2_shape.union(handed_shape))), "version": 4},
    )
    body = _edit(
        client, planner, "PATCH", f"{base}/grids/{handed}", {"parent_code": d2, "version": 5}
    )
    recoded += body["recoded"]
    assert body["recoded"][0]["old_code"] == handed
    _edit(
        client,
        planner,
        "PUT",
        f"{base}/grids/{d1}",
        {
            "geometry": json.loads(shapely.to_geojson(d1_shape.difference(handed_shape))),
            "version": 6,
        },
    )

    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    assert check["summary"]["errors"] == 0, check["summary"]
    published = client.post(
        f"{base}/publish", headers=planner, json={"version": 7, "acknowledge_warnings": True}
    )
    assert published.status_code == 200, published.text
    recodes = {(x["old_code"], x["new_code"]) for x in published.json()["lineage"]}
    assert {(r["old_code"], r["new_code"]) for r in recoded} <= recodes

    # Export every level, import them into an empty database, coarsest first.
    files = {}
    for level in LEVELS:
        files[level] = tmp_path / f"{level}.geojson"
        exported = run(
            "export",
            "grids",
            str(files[level]),
            "--level",
            level,
            env={"WANGGE_DATABASE_URL": database_url},
        )
        assert exported.returncode == 0, exported.stderr
    source = _active_grids(database_url)
    counts = {level: sum(1 for g in source.values() if g[0] == level) for level in LEVELS}
    for level in LEVELS:
        imported = run(
            "import",
            "grids",
            str(files[level]),
            "--level",
            level,
            "--require-clean",
            "--json",
            env={"WANGGE_DATABASE_URL": empty_url},
        )
        assert imported.returncode == 0, (level, imported.stdout[-3000:], imported.stderr[-3000:])
        report = json.loads(imported.stdout)
        assert report["errors"] == [] and report["repaired"] == []
        assert (report["created"], report["updated"], report["removed"]) == (counts[level], 0, 0)
        assert report["coverage"]["errors"] == 0, report["coverage"]

    copy = _active_grids(empty_url)
    assert set(copy) == set(source)
    assert len(copy) == sum(counts.values())
    for code, (*attributes, shape) in source.items():
        *copied, copied_shape = copy[code]
        assert copied == attributes, code
        assert shapely.hausdorff_distance(shape, copied_shape) <= SNAP_DEG, code
    # Every code extends its parent's in the copy too (the import would have refused it).
    assert all(code.startswith(g[1]) for code, g in copy.items() if g[1])
    for r in recoded:
        assert r["new_code"] in copy and r["old_code"] not in copy
