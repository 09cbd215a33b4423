"""What publishing a draft would change: grid areas, and which buildings, monitoring points and
open events would land in a different grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection

from api.db import diffs as diff_rows
from api.db.versioning import active_or_none
from api.drafts.versions import draft_by_id
from api.errors import NotFound
from spatial.crs import areas_m2
from spatial.editing import GRID_ATTRIBUTES, SAME_GEOMETRY_DEG


def _grid_changes(rows: list[Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """Each grid that differs, and the codes whose outline moved (only there can things move)."""
    areas: Any = (
        areas_m2(np.array([shapely.from_wkb(bytes(r["wkb"])) for r in rows], dtype=object))
        if rows
        else []
    )
    before: dict[str, tuple[Any, float]] = {}
    after: dict[str, tuple[Any, float]] = {}
    for row, area in zip(rows, areas, strict=True):
        (after if row["in_new"] else before)[row["code"]] = (row, float(area))
    changes = []
    moved: set[str] = set()
    for code in sorted(set(before) | set(after)):
        old, old_area = before.get(code, (None, 0.0))
        new, new_area = after.get(code, (None, 0.0))
        if old is None or new is None:
            change, attributes = ("added" if old is None else "removed"), []
        else:
            attributes = [a for a in GRID_ATTRIBUTES if old[a] != new[a]]
            same_shape = (
                shapely.hausdorff_distance(
                    shapely.from_wkb(bytes(old["wkb"])), shapely.from_wkb(bytes(new["wkb"]))
                )
                <= SAME_GEOMETRY_DEG
            )
            if same_shape and not attributes:
                continue
            change = "changed"
        if old is None or new is None or not same_shape:
            moved.add(code)
        row = new if new is not None else old
        changes.append(
            {
                "code": code,
                "name": row.name,
                "level": row["level"],
                "change": change,
                "area_before_m2": round(old_area, 1),
                "area_after_m2": round(new_area, 1),
                "area_change_m2": round(new_area - old_area, 1),
                "attributes_changed": attributes,
            }
        )
    return changes, moved


Outlines = dict[str, list[tuple[str, shapely.Geometry]]]


def draft_diff(connection: Connection, draft_id: int) -> dict[str, Any]:
    """The draft against the active generation, as JSON."""
    return diff_with_outlines(connection, draft_id)[0]


def diff_with_outlines(connection: Connection, draft_id: int) -> tuple[dict[str, Any], Outlines]:
    """The diff, and the changed grids' outlines before and after (for the diff map)."""
    draft = draft_by_id(connection, draft_id)
    active = active_or_none(connection)
    if active is None:
        raise NotFound("没有生效的网格版本", code="no_active_generation")
    new = draft.generation_id
    rows = diff_rows.changed_rows(connection, active, new)
    grids, moved = _grid_changes(list(rows))
    ids = [r["id"] for r in rows if r["code"] in moved]
    buildings = diff_rows.moving_buildings(connection, active, new, ids)
    points = diff_rows.moving_points(connection, active, new, ids)
    events = diff_rows.moving_events(connection, new, ids)
    outlines: Outlines = {"before": [], "after": []}
    for row in rows:
        outlines["after" if row["in_new"] else "before"].append(
            (row["code"], shapely.from_wkb(bytes(row["wkb"])))
        )
    return {
        "draft": draft_id,
        "generation": new,
        "against_generation": active,
        "summary": {
            "grids_added": sum(g["change"] == "added" for g in grids),
            "grids_removed": sum(g["change"] == "removed" for g in grids),
            "grids_changed": sum(g["change"] == "changed" for g in grids),
            "buildings_moving": len(buildings),
            "households_moving": sum(b["households"] or 0 for b in buildings),
            "monitoring_points_moving": len(points),
            "open_events_moving": len(events),
        },
        "grids": grids,
        "buildings": buildings,
        "monitoring_points": points,
        "open_events": events,
    }, outlines
