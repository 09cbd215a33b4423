"""Catalogues: grid levels (street, community, grid, micro-grid…), read once and cached; grid kinds.

Levels change only by migration or by hand in SQL, never through the service, so every worker
keeps them for LEVELS_CACHE_SECONDS instead of reading grid_level on each request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, text

LEVELS_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Level:
    name: str
    rank: int  # 0 is the coarsest level
    label_zh: str
    code_pattern: str | None
    code_extends_parent: bool
    households_min: int | None
    households_max: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_cache: dict[tuple[Any, ...], tuple[float, tuple[Level, ...]]] = {}
_lock = threading.Lock()


def grid_levels(connection: Connection) -> tuple[Level, ...]:
    """Every level, coarsest first (cached per database for LEVELS_CACHE_SECONDS)."""
    url = connection.engine.url
    key = (url.host, url.port, url.database)
    with _lock:
        entry = _cache.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    rows = connection.execute(
        text(
            "SELECT name, rank, label_zh, code_pattern, code_extends_parent, households_min, "
            "households_max FROM grid_level ORDER BY rank"
        )
    ).all()
    levels = tuple(Level(*row) for row in rows)
    with _lock:
        _cache[key] = (time.monotonic() + LEVELS_CACHE_SECONDS, levels)
    return levels


def level_named(connection: Connection, name: str) -> Level | None:
    return next((level for level in grid_levels(connection) if level.name == name), None)


def level_ranks(connection: Connection) -> dict[str, int]:
    return {level.name: level.rank for level in grid_levels(connection)}


def grid_kinds(connection: Connection) -> list[str]:
    """The names of the grid kinds, sorted."""
    return list(connection.execute(text("SELECT name FROM grid_kind ORDER BY name")).scalars())


def forget_levels() -> None:
    """Drop the cached catalogue (after changing grid_level in SQL, in tests or scripts)."""
    with _lock:
        _cache.clear()
