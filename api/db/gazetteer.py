"""The address gazetteer as the matcher reads it (`load_gazetteer`), the stamp that says when to
read it again (`gazetteer_stamp`), and the aliases dispatchers teach it (migration 0010)."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

# `sql`: save_alias takes a keyword `text` (the wording), as the contract names it.
from sqlalchemy import Connection
from sqlalchemy import text as sql

from api.db.filters import in_generation
from api.db.generations import NoActiveGeneration, generation_at
from api.geocode.rows import (
    AliasRow,
    AreaRow,
    BuildingRows,
    CompoundRow,
    GazetteerRows,
    HouseNumberRow,
    PoiRow,
    RoadRow,
)

# Every table whose rows the matcher holds; their layer revisions make up the stamp.
STAMP_LAYERS = ("building", "compound", "road", "house_number", "poi", "address_alias")
# Identifiers a place kind may name (never user text in SQL).
PLACE_TABLES = {
    "building": "building",
    "compound": "compound",
    "road": "road",
    "house_number": "house_number",
    "poi": "poi",
}
TARGET_KINDS = (*PLACE_TABLES, "intersection")
ALIAS_COLUMNS = "id, text, normalised, target_kind, target_code, event_id, created_by, created_at"


def load_gazetteer(connection: Connection) -> GazetteerRows:
    """Everything the matcher indexes: buildings with an address, compounds, roads, house
    numbers, POIs, aliases, and the streets and communities of the active generation."""
    return GazetteerRows(
        buildings=_buildings(connection),
        compounds=[
            CompoundRow(r.code, r.name, tuple(r.aliases), r.kind, shapely.from_wkb(bytes(r.wkb)))
            for r in connection.execute(
                sql(
                    "SELECT code, name, aliases, kind, ST_AsBinary(geom) AS wkb "
                    "FROM compound ORDER BY code"
                )
            )
        ],
        roads=[
            RoadRow(r.code, r.name, tuple(r.aliases), r.kind, shapely.from_wkb(bytes(r.wkb)))
            for r in connection.execute(
                sql(
                    "SELECT code, name, aliases, kind, ST_AsBinary(geom) AS wkb "
                    "FROM road ORDER BY code"
                )
            )
        ],
        house_numbers=[
            HouseNumberRow(r.code, r.road, r.number, r.compound_code, r.lon, r.lat)
            for r in connection.execute(
                sql(
                    "SELECT code, road, number, compound_code, ST_X(geom) AS lon, "
                    "ST_Y(geom) AS lat FROM house_number ORDER BY code"
                )
            )
        ],
        pois=[
            PoiRow(r.code, r.name, tuple(r.aliases), r.category, r.lon, r.lat)
            for r in connection.execute(
                sql(
                    "SELECT code, name, aliases, category, ST_X(geom) AS lon, ST_Y(geom) AS lat "
                    "FROM poi ORDER BY code"
                )
            )
        ],
        aliases=[
            AliasRow(r.normalised, r.text, r.target_kind, r.target_code)
            for r in connection.execute(
                sql(
                    "SELECT normalised, text, target_kind, target_code FROM address_alias "
                    "ORDER BY id"
                )
            )
        ],
        areas=_areas(connection),
    )


def _buildings(connection: Connection) -> BuildingRows:
    """Columns, as the address register reads them (a point on the footprint)."""
    rows = connection.execute(
        sql(
            "SELECT code, name, address, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
            "SELECT code, name, address, ST_PointOnSurface(geom) AS p FROM building "
            "WHERE address IS NOT NULL) b ORDER BY code"
        )
    ).all()
    return BuildingRows(
        codes=[r.code for r in rows],
        names=[r.name for r in rows],
        addresses=[r.address for r in rows],
        lon=np.array([r.lon for r in rows], dtype=float),
        lat=np.array([r.lat for r in rows], dtype=float),
    )


def _areas(connection: Connection) -> list[AreaRow]:
    """Streets and communities of the active generation (none before a first activation)."""
    try:
        generation = generation_at(connection)
    except NoActiveGeneration:
        return []
    rows = connection.execute(
        sql(
            "SELECT g.code, g.name, g.level, ST_AsBinary(g.geom) AS wkb FROM grid g "
            f"WHERE {in_generation('g')} AND g.level IN ('street', 'community') ORDER BY g.code"
        ),
        {"g": generation},
    )
    return [AreaRow(r.code, r.name, r.level, shapely.from_wkb(bytes(r.wkb))) for r in rows]


def gazetteer_stamp(connection: Connection) -> tuple[Any, ...]:
    """(active generation, revision of building, compound, road, house_number, poi,
    address_alias): changes whenever anything `load_gazetteer` returns may have changed. One
    primary-key read and the activation index; the revisions are bumped at every commit that
    wrote a table (migrations 0007, 0010)."""
    revisions: dict[str, int] = dict(
        connection.execute(
            sql("SELECT layer, revision FROM layer_revision WHERE layer = ANY(:layers)"),
            {"layers": list(STAMP_LAYERS)},
        ).all()
    )
    try:
        generation: int | None = generation_at(connection)
    except NoActiveGeneration:
        generation = None
    return (generation, *(revisions.get(layer) for layer in STAMP_LAYERS))


# --- aliases ------------------------------------------------------------------------------------


def save_alias(
    connection: Connection,
    *,
    text: str,
    normalised: str,
    target_kind: str,
    target_code: str,
    event_id: int | None,
    actor: str,
) -> dict[str, Any]:
    """Teach a wording (race-safe: INSERT … ON CONFLICT DO NOTHING). Returns the new row with
    created=True, or the row that already holds `normalised` with created=False — whose
    target may be this one (the same lesson again) or another (the caller refuses: 409)."""
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {target_kind!r}")
    row = (
        connection.execute(
            sql(
                "INSERT INTO address_alias (normalised, text, target_kind, target_code, event_id, "
                "created_by) VALUES (:normalised, :text, :kind, :code, :event_id, :actor) "
                f"ON CONFLICT (normalised) DO NOTHING RETURNING {ALIAS_COLUMNS}"
            ),
            {
                "normalised": normalised,
                "text": text,
                "kind": target_kind,
                "code": target_code,
                "event_id": event_id,
                "actor": actor,
            },
        )
        .mappings()
        .first()
    )
    if row is not None:
        return {**row, "created": True}
    existing = (
        connection.execute(
            sql(f"SELECT {ALIAS_COLUMNS} FROM address_alias WHERE normalised = :normalised"),
            {"normalised": normalised},
        )
        .mappings()
        .one()
    )
    return {**existing, "created": False}


def find_alias(connection: Connection, normalised: str) -> dict[str, Any] | None:
    """The alias that holds the normalised wording, or None."""
    row = (
        connection.execute(
            sql(f"SELECT {ALIAS_COLUMNS} FROM address_alias WHERE normalised = :normalised"),
            {"normalised": normalised},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def list_aliases(connection: Connection, limit: int, offset: int) -> list[dict[str, Any]]:
    """Aliases, newest first."""
    rows = connection.execute(
        sql(
            f"SELECT {ALIAS_COLUMNS} FROM address_alias ORDER BY created_at DESC, id DESC "
            "LIMIT :limit OFFSET :offset"
        ),
        {"limit": limit, "offset": offset},
    ).mappings()
    return [dict(row) for row in rows]


def delete_alias(connection: Connection, alias_id: int) -> dict[str, Any] | None:
    """Forget an alias; returns the deleted row (for the audit), None when there was none."""
    row = (
        connection.execute(
            sql(f"DELETE FROM address_alias WHERE id = :id RETURNING {ALIAS_COLUMNS}"),
            {"id": alias_id},
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def place_exists(connection: Connection, kind: str, code: str) -> bool:
    """Whether a place a correction may point at exists: a building, compound, road, house
    number or POI by code, or an intersection "<road code>+<road code>" of two different
    roads that meet."""
    if kind == "intersection":
        first, plus, second = code.partition("+")
        if not plus or not first or not second or first == second:
            return False
        return bool(
            connection.execute(
                sql(
                    "SELECT EXISTS (SELECT 1 FROM road a, road b WHERE a.code = :a "
                    "AND b.code = :b AND ST_Intersects(a.geom, b.geom))"
                ),
                {"a": first, "b": second},
            ).scalar_one()
        )
    table = PLACE_TABLES.get(kind)
    if table is None:
        return False
    return bool(
        connection.execute(
            sql(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE code = :code)"), {"code": code}
        ).scalar_one()
    )
