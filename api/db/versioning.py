"""Create a new generation from the active one plus changes, atomically.

Unchanged grids keep their row (its generation range is extended, or copied when the range
cannot be extended because the active generation is not the newest); changed grids get a new
row under the same code. The caller's transaction makes it all-or-nothing, and an advisory
lock serialises concurrent publishers.
"""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import Connection, text

from api.db.copy import copy_rows
from api.db.filters import in_generation
from api.db.generations import NoActiveGeneration, activate, create_generation, generation_at
from spatial.editing import GRID_ATTRIBUTES, GridRow

_LOCK_KEY = 7_310_512  # pg_advisory_xact_lock key for generation changes
_GRID_COLUMNS = ("code", *GRID_ATTRIBUTES, "geom")


def lock_generations(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def active_or_none(connection: Connection) -> int | None:
    try:
        return generation_at(connection)
    except NoActiveGeneration:
        return None


def grids_in_generation(
    connection: Connection, generation: int, level: str | None = None
) -> dict[str, GridRow]:
    rows = connection.execute(
        text(
            "SELECT code, name, level, kind, parent_code, households, population, attributes, "
            f"ST_AsBinary(geom) AS wkb FROM grid WHERE {in_generation()} "
            "AND (CAST(:level AS text) IS NULL OR level = :level)"
        ),
        {"g": generation, "level": level},
    ).all()
    return {r.code: grid_row(r) for r in rows}


def grid_row(row: Any) -> GridRow:
    """A GridRow from a result row with the grid columns and `wkb` (ST_AsBinary of geom)."""
    return GridRow(
        row.code,
        row.name,
        row.level,
        row.kind,
        row.parent_code,
        row.households,
        row.population,
        dict(row.attributes or {}),
        shapely.from_wkb(bytes(row.wkb)),
    )


def publish(
    connection: Connection,
    *,
    changed: list[GridRow],
    removed: set[str],
    description: str,
    actor: str,
    activate_now: bool = True,
) -> int:
    """Write a new generation = active − removed − changed + changed; return its id.

    With activate_now=False the generation is a draft: stored, checkable, not used by lookups.
    """
    active = active_or_none(connection)
    new = create_generation(connection, description, actor)
    skip = sorted({row.code for row in changed} | removed)
    if active is not None:
        in_active = f"{in_generation(param='active')} AND code <> ALL(:skip)"
        params = {"active": active, "new": new, "skip": skip}
        connection.execute(
            text(
                f"UPDATE grid SET generation_high = :new WHERE {in_active} AND generation_high = :new - 1"
            ),
            params,
        )
        columns = ", ".join(_GRID_COLUMNS)
        connection.execute(
            text(
                f"INSERT INTO grid ({columns}, generation_low, generation_high) "
                f"SELECT {columns}, :new, :new FROM grid WHERE {in_active} AND generation_high < :new - 1"
            ),
            params,
        )
    copy_rows(
        connection,
        "grid",
        (*_GRID_COLUMNS, "generation_low", "generation_high"),
        (
            (
                r.code,
                r.name,
                r.level,
                r.kind,
                r.parent_code,
                r.households,
                r.population,
                r.attributes,
                r.geom,
                new,
                new,
            )
            for r in changed
        ),
    )
    if activate_now:
        activate(connection, new, actor)
    return new
