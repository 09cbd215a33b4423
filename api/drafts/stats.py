"""Live statistics of draft grids, and the next free codes under a parent."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection

from api.db import draft_grids
from api.db.catalogue import grid_levels
from api.errors import InvalidInput
from spatial.crs import areas_m2


def grid_stats(
    connection: Connection,
    generation: int,
    codes: list[str] | None = None,
    level: str | None = None,
) -> list[dict[str, Any]]:
    """Households and buildings (by location), cameras, area and deviation from the target.

    For the grids named in `codes`, or for every grid of `level`.
    """
    rows = draft_grids.grid_counts(connection, generation, codes or [], level)
    bands = {lv.name: (lv.households_min, lv.households_max) for lv in grid_levels(connection)}
    areas: Any = (
        areas_m2(np.array([shapely.from_wkb(bytes(r["wkb"])) for r in rows], dtype=object))
        if rows
        else []
    )
    stats = []
    for row, area in zip(rows, areas, strict=True):
        low, high = bands.get(row["level"], (None, None))
        target = (low + high) / 2 if low is not None and high is not None else None
        stats.append(
            {
                "code": row["code"],
                "name": row["name"],
                "level": row["level"],
                "parent_code": row["parent_code"],
                "households_range": [low, high] if target is not None else None,
                "households": int(row["households"]),
                "buildings": int(row["buildings"]),
                "cameras": int(row["cameras"]),
                "area_m2": round(float(area), 1),
                "household_deviation": round(row["households"] - target)
                if target is not None
                else None,
            }
        )
    return stats


def next_codes(
    connection: Connection,
    generation: int,
    parent: str | None,
    code: str,
    count: int,
    *,
    where: str = "body",
    ask: str = "请手动给出编码",
) -> list[str]:
    """The next free sequence codes under the parent (default convention: digits extending the
    parent). When there is no numeric sequence to continue, 422 codes_required at `where`, the
    message ending with `ask`: what the caller's request should give instead (its own field
    and how many codes)."""
    siblings = draft_grids.child_codes(connection, generation, parent)
    used = draft_grids.codes_ever_used(connection)
    prefix = parent or ""
    tails = [
        c[len(prefix) :] for c in siblings if c.startswith(prefix) and c[len(prefix) :].isdigit()
    ]
    if not tails or not code.startswith(prefix):
        under = f"上级 {parent} 下" if parent else "顶层"
        raise InvalidInput(
            f"无法自动编码：{under}没有可接续的数字序号编码，{ask}",
            code="codes_required",
            where=where,
        )
    width, number = len(tails[0]), max(int(t) for t in tails)
    codes: list[str] = []
    while len(codes) < count:
        number += 1
        candidate = f"{prefix}{number:0{width}d}"
        if candidate not in used:  # never reuse a code that existed in any generation
            codes.append(candidate)
    return codes
