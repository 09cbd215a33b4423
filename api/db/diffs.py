"""What differs between two generations: grid rows, and which buildings, monitoring points and
open events change grid at each level (street, community, grid, micro-grid…).

An object's grid at a level is the grid of that level covering its point (a building's
ST_PointOnSurface), the smallest code on a shared edge; its *finest* grid is the covering grid
of the highest rank (the lookup's owner rule). Only objects inside the extent of a grid whose
outline changed are looked at: the GiST indexes of the object tables and of `grid` find them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from api.db.events import OPEN_STATUSES
from api.db.filters import in_generation


@dataclass(frozen=True)
class ObjectKind:
    """How one table's objects enter the diff (constants written here, never request values)."""

    table: str
    alias: str
    point: str  # the object's point
    item: str  # the JSON each listed object carries (jsonb)
    households: str
    sort_key: str
    where: str = "true"
    stored_grid: str = "NULL::text"  # events: the grid stored on the event (their "from")


BUILDINGS = ObjectKind(
    table="building",
    alias="b",
    point="ST_PointOnSurface(b.geom)",
    item="jsonb_build_object('code', b.code, 'name', b.name, 'households', b.households)",
    households="b.households",
    sort_key="b.code",
)
MONITORING_POINTS = ObjectKind(
    table="monitoring_point",
    alias="m",
    point="m.geom",
    item="jsonb_build_object('code', m.code, 'name', m.name, 'kind', m.kind)",
    households="NULL::int",
    sort_key="m.code",
)
OPEN_EVENTS = ObjectKind(
    table="event",
    alias="e",
    point="e.geom",
    item="jsonb_build_object('id', e.id, 'category_code', e.category_code, 'status', e.status)",
    households="NULL::int",
    sort_key="e.id",
    # The loop's open states, the set publish moves (api.db.events.reassign_open_events).
    where=f"e.status IN {OPEN_STATUSES} AND e.geom IS NOT NULL",
    stored_grid="e.grid_code",
)


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


def _query(kind: ObjectKind) -> str:
    # Objects come from the changed grids' GiST probes (never a scan of the object table); each
    # one's covering grids from the grid GiST index, both generations at once.
    a = kind.alias
    in_old, in_new = in_generation("g", "old"), in_generation("g", "new")
    # A recode (same grid, new code) is not a change of hands: staff follow it when published.
    not_recoded = (
        "NOT EXISTS (SELECT 1 FROM unnest(CAST(:recode_old AS text[]), CAST(:recode_new AS text[])) "
        "r(old_code, new_code) WHERE r.old_code = {0}.from_grid AND r.new_code = {0}.to_grid)"
    )
    lonlat = "jsonb_build_object('lon', ST_X(o.p), 'lat', ST_Y(o.p))"
    finest_from = "o.stored_grid" if kind.stored_grid != "NULL::text" else "f.from_grid"
    return f"""
        WITH objects AS MATERIALIZED (
            SELECT {a}.id AS key, {kind.sort_key} AS sort_key, {kind.households} AS households,
                   {kind.stored_grid} AS stored_grid, {kind.item} AS item, {kind.point} AS p
            FROM (SELECT DISTINCT ON ({a}.id) {a}.*
                  FROM grid c JOIN {kind.table} {a} ON {a}.geom && c.geom
                  WHERE c.id = ANY(:ids) AND {kind.where} ORDER BY {a}.id) {a}
        ), owners AS MATERIALIZED (
            SELECT o.key, g.level, l.rank,
                   min(g.code) FILTER (WHERE {in_old}) AS from_grid,
                   min(g.code) FILTER (WHERE {in_new}) AS to_grid
            FROM objects o JOIN grid g ON g.geom && o.p AND ST_Covers(g.geom, o.p)
            JOIN grid_level l ON l.name = g.level
            WHERE ({in_old}) OR ({in_new})
            GROUP BY o.key, g.level, l.rank
        ), finest AS (
            SELECT key,
                   (array_agg(from_grid ORDER BY rank DESC) FILTER (WHERE from_grid IS NOT NULL))[1]
                       AS from_grid,
                   (array_agg(to_grid ORDER BY rank DESC) FILTER (WHERE to_grid IS NOT NULL))[1]
                       AS to_grid
            FROM owners GROUP BY key
        ), finest_moving AS (
            SELECT * FROM (
                SELECT o.sort_key, o.households, o.item, o.p, {finest_from} AS from_grid, f.to_grid
                FROM objects o LEFT JOIN finest f ON f.key = o.key) m
            WHERE m.from_grid IS DISTINCT FROM m.to_grid AND {not_recoded.format("m")}
        )
        SELECT 'level' AS row, w.level, w.from_grid, w.to_grid, count(*) AS objects,
               sum(o.households) AS households, NULL::jsonb AS item
        FROM owners w JOIN objects o ON o.key = w.key
        WHERE w.from_grid IS DISTINCT FROM w.to_grid AND {not_recoded.format("w")}
        GROUP BY w.level, w.from_grid, w.to_grid
        UNION ALL
        SELECT 'total', NULL, NULL, NULL, count(*), sum(households), NULL FROM finest_moving
        UNION ALL
        (SELECT 'item', NULL, from_grid, to_grid, NULL, NULL, item || {lonlat}
         FROM finest_moving o ORDER BY sort_key LIMIT :cap)
        UNION ALL
        SELECT 'level_item', level, from_grid, to_grid, NULL, NULL, item FROM (
            SELECT w.level, w.from_grid, w.to_grid, o.item || {lonlat} AS item,
                   row_number() OVER (PARTITION BY w.level ORDER BY o.sort_key) AS n
            FROM owners w JOIN objects o ON o.key = w.key
            WHERE w.from_grid IS DISTINCT FROM w.to_grid AND {not_recoded.format("w")}) x
        WHERE n <= :level_cap
    """


@dataclass(frozen=True)
class Moving:
    """One kind of object changing grid: per level (level, from, to) → (objects, households),
    the finest-level totals, the first `cap` objects that change their finest grid, and per
    level the first `level_cap` objects that change grid at that level."""

    by_level: list[tuple[str, str | None, str | None, int, int]]
    total: int
    total_households: int
    items: list[dict[str, Any]]
    level_items: dict[str, list[dict[str, Any]]]


def moving(
    connection: Connection,
    kind: ObjectKind,
    old: int,
    new: int,
    grid_ids: list[int],
    recodes: list[tuple[str, str]],
    cap: int,
    level_cap: int,
) -> Moving:
    """The objects of `kind` near the grid rows `grid_ids` whose grid differs, at every level."""
    rows = connection.execute(
        text(_query(kind)),
        {
            "old": old,
            "new": new,
            "ids": grid_ids,
            "recode_old": [o for o, _ in recodes],
            "recode_new": [n for _, n in recodes],
            "cap": cap,
            "level_cap": level_cap,
        },
    ).all()
    by_level, items, total, households = [], [], 0, 0
    level_items: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.row == "level":
            by_level.append(
                (row.level, row.from_grid, row.to_grid, int(row.objects), int(row.households or 0))
            )
        elif row.row == "total":
            total, households = int(row.objects), int(row.households or 0)
        else:
            item = {**row.item, "from_grid": row.from_grid, "to_grid": row.to_grid}
            if row.row == "item":
                items.append(item)
            else:
                level_items.setdefault(row.level, []).append(item)
    for listed in level_items.values():
        listed.sort(key=lambda i: (i.get("code") or "", i.get("id") or 0))
    return Moving(by_level, total, households, items, level_items)


def grid_names(
    connection: Connection, old: int, new: int, codes: list[str]
) -> dict[str, tuple[str, bool]]:
    """code → (name, still in `new`) for grids of either generation (the new name first)."""
    rows = connection.execute(
        text(
            f"SELECT code, name, {in_generation(param='new')} AS in_new FROM grid "
            f"WHERE code = ANY(:codes) AND (({in_generation(param='old')}) "
            f"OR ({in_generation(param='new')})) ORDER BY code, {in_generation(param='new')}"
        ),
        {"old": old, "new": new, "codes": codes},
    ).all()
    return {row.code: (row.name, bool(row.in_new)) for row in rows}


def paths(connection: Connection, generation: int, codes: list[str]) -> dict[str, list[str]]:
    """code → its root→leaf path of codes in `generation`, for those of `codes` it has."""
    in_gen = in_generation("g")
    rows = connection.execute(
        text(
            f"""
            WITH RECURSIVE up AS (
                SELECT g.code AS leaf, g.code, g.parent_code, 0 AS depth FROM grid g
                WHERE g.code = ANY(:codes) AND {in_gen}
                UNION ALL
                SELECT up.leaf, g.code, g.parent_code, up.depth + 1 FROM grid g
                JOIN up ON g.code = up.parent_code WHERE {in_gen} AND up.depth < 16
            )
            SELECT leaf, code FROM up ORDER BY leaf, depth DESC
            """
        ),
        {"g": generation, "codes": codes},
    ).all()
    found: dict[str, list[str]] = {}
    for leaf, code in rows:
        found.setdefault(leaf, []).append(code)
    return found


def staff_on(connection: Connection, codes: list[str]) -> list[RowMapping]:
    """Active staff assigned to the grids `codes`: grid_code, role, role_label, id, name, phone
    (required roles first)."""
    return list(
        connection.execute(
            text(
                "SELECT a.grid_code, a.role, k.label_zh AS role_label, s.id, s.name, s.phone "
                "FROM staff_assignment a JOIN staff s ON s.id = a.staff_id "
                "JOIN staff_role_kind k ON k.name = a.role "
                "WHERE s.active AND a.grid_code = ANY(:codes) "
                "ORDER BY a.grid_code, k.required_at_level IS NULL, k.name, s.id"
            ),
            {"codes": codes},
        )
        .mappings()
        .all()
    )


def required_roles(connection: Connection) -> list[RowMapping]:
    """role, role_label and level of every role a grid of that level must have."""
    return list(
        connection.execute(
            text(
                "SELECT name AS role, label_zh AS role_label, required_at_level AS level "
                "FROM staff_role_kind WHERE required_at_level IS NOT NULL ORDER BY name"
            )
        )
        .mappings()
        .all()
    )
