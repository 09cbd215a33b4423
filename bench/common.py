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


def demo_database(name: str, streets: int = 1) -> Engine:
    """A database of a benchmark's own, made afresh: PostGIS, migrated, the demo street (or a
    district of `streets` streets) loaded. (Run as the project cluster's superuser: benchmarks
    create and drop databases.)"""
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
    load_demo(engine, settings.demo_seed, actor="bench", streets=streets)
    return engine


def district_database(name: str, streets: int = 20) -> Engine:
    """A database of a benchmark's own, made afresh like `demo_database`, holding the demo
    district (`wangge demo load --streets N`: N streets on a lattice around the demo street;
    20 streets ≈ 24,000 micro-grids)."""
    return demo_database(name, streets)


def district_database_reused(name: str, streets: int = 20) -> Engine:
    """`district_database(name, streets)`, or the one an earlier benchmark left under that name
    when it holds that district (the demo is deterministic for a seed: same content)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(get_settings().cluster.url(database=name))
    try:
        with engine.connect() as connection:
            loaded = connection.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE action = 'demo.load' "
                    "AND actor = 'bench' AND CAST(details ->> 'streets' AS int) = :n"
                ),
                {"n": streets},
            ).scalar_one()
        if loaded == 1:
            return engine
    except OperationalError:
        pass
    engine.dispose()
    return district_database(name, streets)


EDGE_OFFSET_M = 8.0  # event-like points: on a finest grid's edge (a street), moved up to this


def event_points(index: GridIndex, count: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Points where events are reported: on the finest grids' edges (the streets), ±8 m."""
    ranks = np.array([r.rank for r in index.records])
    finest = np.flatnonzero(ranks == ranks.max())
    rng = np.random.default_rng(seed)
    edges = shapely.boundary(index.geometries[rng.choice(finest, count)])
    on_edge = shapely.line_interpolate_point(edges, rng.uniform(0, 1, count), normalized=True)
    lon, lat = shapely.get_x(on_edge), shapely.get_y(on_edge)
    metres_per_degree = 111_320.0
    dx, dy = rng.uniform(-EDGE_OFFSET_M, EDGE_OFFSET_M, (2, count))
    return lon + dx / (metres_per_degree * np.cos(np.radians(lat))), lat + dy / metres_per_degree
