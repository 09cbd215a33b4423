"""Bulk writes of the gazetteer's place tables (migration 0010): the demo's COPY and emptying
them (an import upserts them by code with api.db.imports.stage_and_upsert)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text

from api.db.copy import copy_rows
from api.db.filters import in_generation
from api.db.generations import NoActiveGeneration, generation_at

# The identifiers these functions may name, with their plain columns (besides code and geom).
PLACE_COLUMNS: dict[str, tuple[str, ...]] = {
    "road": ("name", "aliases", "kind"),
    "compound": ("name", "aliases", "kind"),
    "house_number": ("road", "number", "compound_code"),
    "poi": ("name", "aliases", "category"),
}
PLACE_TABLES = tuple(PLACE_COLUMNS)


def text_array(values: Sequence[str]) -> str:
    """A PostgreSQL text[] literal for COPY: {"a","b"} with quotes and backslashes escaped."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def cell(column: str, value: Any) -> Any:
    """A value as COPY takes it (aliases: a text[] literal)."""
    return text_array(value) if column == "aliases" else value


def existing_codes(connection: Connection, table: str, codes: Sequence[str]) -> list[str]:
    """Which of `codes` are rows of the place table `table`."""
    if table not in PLACE_COLUMNS:
        raise ValueError(f"not a gazetteer table: {table}")
    return list(
        connection.execute(
            text(f"SELECT code FROM {table} WHERE code = ANY(:codes)"), {"codes": list(codes)}
        ).scalars()
    )


def place_row_counts(connection: Connection) -> dict[str, int]:
    """Rows per place table (road, compound, house_number, poi)."""
    return {
        table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in PLACE_TABLES
    }


def empty_places(connection: Connection, *, aliases: bool) -> None:
    """Remove every road, compound, house number and POI (and, with `aliases`, every alias:
    they name places by code)."""
    tables = [*PLACE_TABLES, *(["address_alias"] if aliases else [])]
    connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))


def write_places(connection: Connection, table: str, rows: Iterable[dict]) -> int:
    """COPY rows (dicts with code, the table's columns and a WGS84 geom) into `table`."""
    if table not in PLACE_COLUMNS:
        raise ValueError(f"not a gazetteer table: {table}")
    columns = ("code", *PLACE_COLUMNS[table], "geom")
    return copy_rows(
        connection,
        table,
        columns,
        ([cell(c, row[c]) for c in columns] for row in rows),
    )


def analyze_places(connection: Connection) -> None:
    """Fresh planner statistics after a bulk load."""
    connection.execute(text("ANALYZE road; ANALYZE compound; ANALYZE house_number; ANALYZE poi"))


def set_building_addresses(connection: Connection, addresses: Iterable[tuple[str, str]]) -> int:
    """Give buildings (code, address) pairs' addresses where they differ; returns how many
    changed. For a demo database loaded before its house numbers were made unique per road."""
    connection.execute(
        text("CREATE TEMP TABLE demo_address (code text, address text) ON COMMIT DROP")
    )
    copy_rows(connection, "demo_address", ("code", "address"), addresses)
    changed = connection.execute(
        text(
            "UPDATE building b SET address = d.address FROM demo_address d "
            "WHERE b.code = d.code AND b.address IS DISTINCT FROM d.address"
        )
    )
    return int(changed.rowcount)


def active_extent(connection: Connection) -> tuple[float, float, float, float] | None:
    """(xmin, ymin, xmax, ymax) of the active generation's grids; None before a first one."""
    try:
        generation = generation_at(connection)
    except NoActiveGeneration:
        return None
    row = connection.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent(g.geom) AS e FROM grid g WHERE {in_generation('g')}) s"
        ),
        {"g": generation},
    ).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def namesakes(
    connection: Connection, table: str, wordings: Sequence[str], codes: Sequence[str]
) -> list[tuple[str, str]]:
    """(wording, code) of stored places of `table` not among `codes` that are called one of
    `wordings` (name or alias; a plate: road + number + 号), in wording order."""
    if table not in PLACE_COLUMNS:
        raise ValueError(f"not a gazetteer table: {table}")
    if table == "house_number":
        called = "ARRAY[road || number || '号']"
    else:
        called = "array_prepend(name, aliases)"
    rows = connection.execute(
        text(
            f"SELECT w AS wording, min(t.code) AS code FROM {table} t "
            f"CROSS JOIN LATERAL unnest({called}) AS w "
            "WHERE w = ANY(:wordings) AND NOT (t.code = ANY(:codes)) GROUP BY w"
        ),
        {"wordings": list(wordings), "codes": list(codes)},
    ).all()
    found = {r.wording: r.code for r in rows}
    return [(w, found[w]) for w in wordings if w in found]
