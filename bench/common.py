"""Shared set-up for the benchmarks: the configured database with the demo street loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Engine

from api.db.engine import make_engine
from api.lookup.index_store import IndexStore
from api.settings import get_settings
from spatial.lookup import GridIndex

RESULTS = Path(__file__).resolve().parent / "results"


def engine() -> Engine:
    return make_engine(get_settings())


def active_index(db: Engine) -> GridIndex:
    store = IndexStore(db)
    store.refresh()
    return store.active()


def street_points(index: GridIndex, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points over the street's bounding box (a few land outside it)."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(index.geometries)
    rng = np.random.default_rng(seed)
    return rng.uniform(xmin, xmax, count), rng.uniform(ymin, ymax, count)


def timed(function: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time of `repeat` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def write_result(name: str, lines: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def demo_database(name: str) -> Engine:
    """A database of a benchmark's own, made afresh: PostGIS, migrated, the demo street loaded.
    (Run as the project cluster's superuser: benchmarks create and drop databases.)"""
    from psycopg2 import sql
    from sqlalchemy import create_engine, text

    from api.db import migrate
    from api.demo.loader import load_demo

    settings = get_settings()
    admin = create_engine(settings.cluster.url(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        cursor.close()
    admin.dispose()
    url = settings.cluster.url(database=name)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
    migrate.upgrade(url)
    load_demo(engine, settings.demo_seed, actor="bench")
    return engine


DEMO_STREET = "320571005"


def district_database(name: str, streets: int = 20) -> Engine:
    """A district for the tile and OGC benchmarks (bench-only, not the lead's generator): the
    demo street of `demo_database(name)` plus `streets - 1` copies of its grids (every level)
    and buildings, moved with ST_Translate onto a 5-wide lattice one street extent (+10 %)
    apart so nothing overlaps, street codes recoded 320571006, 320571007, … (grid, parent and
    building codes keep their tails). All in the demo's active generation; 20 streets hold
    24,040 micro-grids and 411,140 buildings. Made afresh each time (about a minute)."""
    from sqlalchemy import text

    engine = demo_database(name)
    with engine.begin() as connection:
        box = connection.execute(
            text(
                "SELECT ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e) "
                "FROM (SELECT ST_Extent(geom) AS e FROM grid WHERE level = 'street') s"
            )
        ).one()
        for copy in range(1, streets):
            params = {
                "dx": (copy % 5) * box[0] * 1.1,
                "dy": (copy // 5) * box[1] * 1.1,
                "street": f"{int(DEMO_STREET) + copy:09d}",
                "demo": DEMO_STREET,
            }
            connection.execute(
                text(
                    "INSERT INTO grid (code, name, level, kind, parent_code, households, "
                    "population, attributes, geom, generation_low, generation_high) "
                    "SELECT :street || substr(code, 10), name || '·' || :street, level, kind, "
                    "CASE WHEN parent_code LIKE :demo || '%' "
                    "THEN :street || substr(parent_code, 10) ELSE parent_code END, "
                    "households, population, attributes, ST_Translate(geom, :dx, :dy), "
                    "generation_low, generation_high FROM grid WHERE code LIKE :demo || '%'"
                ),
                params,
            )
            connection.execute(
                text(
                    "INSERT INTO building (code, name, address, floors, households, use, "
                    "attributes, geom) SELECT :street || substr(code, 10), name, address, "
                    "floors, households, use, attributes, ST_Translate(geom, :dx, :dy) "
                    "FROM building WHERE code LIKE :demo || '%'"
                ),
                params,
            )
    with engine.connect() as connection:
        connection.execute(text("ANALYZE grid"))
        connection.execute(text("ANALYZE building"))
    return engine
