"""What differs between two generations: grid rows, and which buildings, monitoring points and
open events would land in a different grid."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, text

from api.db.filters import in_generation


def _owner(param: str, point: str) -> str:
    """The owner of `point` in generation :param: the finest grid covering it, then the
    smallest code (the same rule as the lookup index)."""
    return (
        "(SELECT g.code FROM grid g JOIN grid_level l ON l.name = g.level "
        f"WHERE {in_generation('g', param)} AND g.geom && {point} "
        f"AND ST_Covers(g.geom, {point}) ORDER BY l.rank DESC, g.code LIMIT 1)"
    )


def _in_changed(alias: str, table: str) -> str:
    # Only objects within the changed grids' extents can change grid: the GiST index finds them
    # per changed grid (a correlated EXISTS over all grids made the planner scan everything).
    return f"{alias}.id IN (SELECT x.id FROM grid c JOIN {table} x ON x.geom && c.geom WHERE c.id = ANY(:ids))"


def changed_rows(connection: Connection, old: int, new: int) -> list[RowMapping]:
    """Grid rows in exactly one of the two generations (a shared row is unchanged); `in_new`
    says which."""
    in_old, in_new = in_generation(param="old"), in_generation(param="new")
    return list(
        connection.execute(
            text(
                "SELECT id, code, name, level, kind, parent_code, households, population, attributes, "
                f"ST_AsBinary(geom) AS wkb, {in_new} AS in_new "
                f"FROM grid WHERE ({in_old}) <> ({in_new})"
            ),
            {"old": old, "new": new},
        )
        .mappings()
        .all()
    )


def _moves(connection: Connection, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in connection.execute(text(query), params).mappings()]


def moving_buildings(
    connection: Connection, old: int, new: int, grid_ids: list[int]
) -> list[dict[str, Any]]:
    """Buildings near the grid rows `grid_ids` whose owner differs between the generations."""
    point = "ST_PointOnSurface(b.geom)"
    return _moves(
        connection,
        f"SELECT * FROM (SELECT b.code, b.name, b.households, {_owner('old', point)} AS from_grid, "
        f"{_owner('new', point)} AS to_grid, ST_X({point}) AS lon, ST_Y({point}) AS lat "
        f"FROM building b WHERE {_in_changed('b', 'building')}) m "
        "WHERE from_grid IS DISTINCT FROM to_grid ORDER BY code",
        {"old": old, "new": new, "ids": grid_ids},
    )


def moving_points(
    connection: Connection, old: int, new: int, grid_ids: list[int]
) -> list[dict[str, Any]]:
    """Monitoring points near the grid rows `grid_ids` whose owner differs."""
    return _moves(
        connection,
        f"SELECT * FROM (SELECT m.code, m.name, m.kind, {_owner('old', 'm.geom')} AS from_grid, "
        f"{_owner('new', 'm.geom')} AS to_grid, ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat "
        f"FROM monitoring_point m WHERE {_in_changed('m', 'monitoring_point')}) x "
        "WHERE from_grid IS DISTINCT FROM to_grid ORDER BY code",
        {"old": old, "new": new, "ids": grid_ids},
    )


def moving_events(connection: Connection, new: int, grid_ids: list[int]) -> list[dict[str, Any]]:
    """Open events near the grid rows `grid_ids` whose grid would change in generation `new`."""
    return _moves(
        connection,
        f"SELECT * FROM (SELECT e.id, e.category_code, e.status, e.grid_code AS from_grid, "
        f"{_owner('new', 'e.geom')} AS to_grid, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat "
        "FROM event e WHERE e.status NOT IN ('closed', 'cancelled') AND e.geom IS NOT NULL "
        f"AND {_in_changed('e', 'event')}) x WHERE from_grid IS DISTINCT FROM to_grid ORDER BY id",
        {"new": new, "ids": grid_ids},
    )
