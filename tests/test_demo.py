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
