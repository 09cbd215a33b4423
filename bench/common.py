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
