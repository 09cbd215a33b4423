"""The demo street: an exact partition at every level, realistic contents, deterministic."""

from __future__ import annotations

import numpy as np
import shapely
from sqlalchemy import text

from spatial.demo_street import generate
from tests.conftest import DEMO_SEED


def _level(connection, level: str) -> list:
    rows = connection.execute(
        text("SELECT code, parent_code, ST_AsBinary(geom) FROM grid WHERE level = :l"), {"l": level}
    ).all()
    return [(r[0], r[1], shapely.from_wkb(bytes(r[2]))) for r in rows]


def test_counts(demo_engine):
    with demo_engine.connect() as connection:
        counts = dict(
            connection.execute(text("SELECT level, count(*) FROM grid GROUP BY level")).all()
        )
        buildings, cameras = connection.execute(
            text("SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM monitoring_point)")
        ).one()
        events = connection.execute(
            text("SELECT count(*), count(DISTINCT category_code) FROM event")
        ).one()
        area_km2 = connection.execute(
            text("SELECT ST_Area(geom::geography) / 1e6 FROM grid WHERE level = 'street'")
        ).scalar()
    assert counts == {"street": 1, "community": 8, "grid": 60, "micro_grid": 1202}
    assert 18_000 <= buildings <= 22_000 and cameras == 137
    assert events[0] >= 2000 and events[1] >= 8
    assert 9 < area_km2 < 11.5


def test_every_level_partitions_its_parent_exactly(demo_engine):
    """Children are a valid coverage (shared edges identical) whose union is the parent."""
    with demo_engine.connect() as connection:
        levels = {
            lv: _level(connection, lv) for lv in ("street", "community", "grid", "micro_grid")
        }
    for parent_level, child_level in (
        ("street", "community"),
        ("community", "grid"),
        ("grid", "micro_grid"),
    ):
        for code, _, parent in levels[parent_level]:
            children = np.array([g for _, p, g in levels[child_level] if p == code])
            assert len(children) > 0, code
            assert shapely.coverage_is_valid(children), code
            union = shapely.coverage_union_all(children)
            assert shapely.symmetric_difference(union, parent).area < 1e-12, code


def test_postgis_agrees_no_gaps_or_overlaps(demo_engine):
    with demo_engine.connect() as connection:
        overlaps = connection.execute(
            text(
                "SELECT count(*) FROM grid a JOIN grid b ON a.level = 'micro_grid' AND b.level = 'micro_grid' "
                "AND a.id < b.id AND a.geom && b.geom AND ST_Relate(a.geom, b.geom, '2********')"
            )
        ).scalar()
        orphan_buildings = connection.execute(
            text(
                "SELECT count(*) FROM building b WHERE NOT EXISTS (SELECT 1 FROM grid g "
                "WHERE g.level = 'micro_grid' AND ST_Covers(g.geom, b.geom))"
            )
        ).scalar()
    assert overlaps == 0 and orphan_buildings == 0


def test_households_staff_and_codes(demo_engine):
    with demo_engine.connect() as connection:
        households = connection.execute(
            text("SELECT min(households), max(households) FROM grid WHERE level = 'grid'")
        ).one()
        missing_roles = connection.execute(
            text(
                "SELECT count(*) FROM grid g CROSS JOIN staff_role_kind k WHERE k.required_at_level = g.level "
                "AND NOT EXISTS (SELECT 1 FROM staff_assignment a WHERE a.grid_code = g.code AND a.role = k.name)"
            )
        ).scalar()
        bad_codes = connection.execute(
            text(
                "SELECT count(*) FROM grid g JOIN grid_level l ON l.name = g.level "
                "WHERE g.code !~ l.code_pattern OR (g.parent_code IS NOT NULL AND left(g.code, length(g.parent_code)) <> g.parent_code)"
            )
        ).scalar()
    assert households[0] >= 300 and households[1] <= 500
    assert missing_roles == 0 and bad_codes == 0


def test_codes_run_west_to_east_north_to_south(demo_engine):
    with demo_engine.connect() as connection:
        first, last = connection.execute(
            text(
                "SELECT ST_Y(ST_Centroid(geom)) FROM grid WHERE level = 'community' AND code IN ('320571005001', '320571005008') ORDER BY code"
            )
        ).scalars()
    assert first > last


def test_deterministic_from_seed():
    one, two = generate(DEMO_SEED), generate(DEMO_SEED)
    assert [g.code for g in one.grids] == [g.code for g in two.grids]
    assert all(
        shapely.equals_exact(a.geom, b.geom, 0) for a, b in zip(one.grids, two.grids, strict=True)
    )
    assert [b["address"] for b in one.buildings[:50]] == [b["address"] for b in two.buildings[:50]]


def test_a_district_of_streets_around_the_demo_street(database_url, engine, client):
    """`wangge demo load --streets 2`: the demo street unchanged plus a street beside it, codes
    unique, no overlap between streets, and the coverage check is clean."""
    from api.coverage import run_check
    from spatial.coverage import CheckOptions
    from tests.test_cli import run

    with engine.connect() as connection:
        before = connection.execute(
            text("SELECT md5(ST_AsBinary(geom)) FROM grid WHERE code = '320571005'")
        ).scalar()
    env = {"WANGGE_DATABASE_URL": database_url}
    refused = run("demo", "load", "--reset", "--streets", "0", env=env)
    assert refused.returncode != 0 and "--streets" in refused.stderr + refused.stdout

    loaded = run("demo", "load", "--reset", "--streets", "2", env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "演示城区（2 个街道）已载入" in loaded.stdout
    with engine.connect() as connection:
        counts = dict(
            connection.execute(text("SELECT level, count(*) FROM grid GROUP BY level")).all()
        )
        streets = connection.execute(
            text(
                "SELECT code, name, md5(ST_AsBinary(geom)) FROM grid WHERE level = 'street' ORDER BY code"
            )
        ).all()
        touching = connection.execute(
            text(
                "SELECT ST_Intersects(a.geom, b.geom) FROM grid a, grid b "
                "WHERE a.code = '320571005' AND b.code = '320571006'"
            )
        ).scalar()
        duplicates = connection.execute(
            text(
                "SELECT (SELECT count(*) - count(DISTINCT code) FROM building)"
                " + (SELECT count(*) - count(DISTINCT code) FROM monitoring_point)"
                " + (SELECT count(*) - count(DISTINCT (source, external_id)) FROM event)"
            )
        ).scalar()
        second_street_events = connection.execute(
            text("SELECT count(*) FROM event WHERE grid_code LIKE '320571006%'")
        ).scalar()
    assert counts == {"street": 2, "community": 16, "grid": 120, "micro_grid": 2404}
    assert [(code, name) for code, name, _ in streets] == [
        ("320571005", "湖东示范街道"),
        ("320571006", "金鸡湖街道"),
    ]
    assert streets[0][2] == before  # the demo street is the same street in a district
    assert touching is False and duplicates == 0 and second_street_events > 1000
    with engine.connect() as connection:
        generation = connection.execute(text("SELECT max(generation_low) FROM grid")).scalar()
        report = run_check(connection, generation, CheckOptions())
    assert report["summary"]["errors"] == 0, report["summary"]
    overview = client.get("/map/street")
    assert overview.status_code == 200 and "全区总览（2 个街道）" in overview.text
