"""Import writes and reads: the level catalogue as an import sees it, and the staged upsert of
buildings and monitoring points (COPY into a temporary table, then INSERT … ON CONFLICT)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection, Row, text

from api.db.copy import copy_rows
from spatial.editing import SAME_GEOMETRY_DEG

# The identifiers stage_and_upsert may name; the gazetteer's places have no free attributes.
WITH_ATTRIBUTES = ("building", "monitoring_point")
UPSERT_TABLES = (*WITH_ATTRIBUTES, "road", "compound", "house_number", "poi")


def grid_levels_by_name(connection: Connection) -> dict[str, Row]:
    """Every grid_level row by name, coarsest first."""
    return {
        r.name: r for r in connection.execute(text("SELECT * FROM grid_level ORDER BY rank")).all()
    }


def stage_and_upsert(
    connection: Connection,
    table: str,
    names: Sequence[str],
    rows: list[dict],
    geometries: np.ndarray,
) -> tuple[int, int, int]:
    """COPY into a temporary table, count what changes, then INSERT … ON CONFLICT only those.

    Returns (created, updated, unchanged). `names` are the table's plain columns besides
    attributes and geom (from the import's field table); temporary tables drop at commit.
    """
    if table not in UPSERT_TABLES:
        raise ValueError(f"not an upsert table: {table}")
    free = ["attributes"] if table in WITH_ATTRIBUTES else []
    columns = [*names, *free, "geom"]
    connection.execute(
        text(f"CREATE TEMP TABLE incoming (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    )
    copy_rows(
        connection,
        "incoming",
        columns,
        (
            [row[n] for n in names] + [row[f] for f in free] + [geom]
            for row, geom in zip(rows, geometries, strict=True)
        ),
    )
    plain = [c for c in columns if c not in ("code", "geom")]
    differs = " OR ".join(
        [f"i.{c} IS DISTINCT FROM t.{c}" for c in plain]
        + [
            f"(NOT ST_OrderingEquals(i.geom, t.geom) AND ST_HausdorffDistance(i.geom, t.geom) > {SAME_GEOMETRY_DEG})"
        ]
    )
    connection.execute(
        text(
            "CREATE TEMP TABLE incoming_state ON COMMIT DROP AS SELECT i.code, CASE "
            f"WHEN t.code IS NULL THEN 'created' WHEN {differs} THEN 'updated' ELSE 'unchanged' END AS state "
            f"FROM incoming i LEFT JOIN {table} t ON t.code = i.code"
        )
    )
    counts: dict[str, int] = dict(
        connection.execute(text("SELECT state, count(*) FROM incoming_state GROUP BY state")).all()
    )
    listed = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "code")
    connection.execute(
        text(
            f"INSERT INTO {table} ({listed}) SELECT {listed} FROM incoming i "
            "WHERE EXISTS (SELECT 1 FROM incoming_state s WHERE s.code = i.code AND s.state <> 'unchanged') "
            f"ON CONFLICT (code) DO UPDATE SET {updates}, updated_at = now()"
        )
    )
    return counts.get("created", 0), counts.get("updated", 0), counts.get("unchanged", 0)
