"""What publishing a draft would change: grid areas, and which buildings, households, monitoring
points and open events would land in a different grid — at the finest level (the top-level lists)
and at every level of the catalogue (`levels`, with the staff on both sides)."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection

from api.db import diffs as diff_rows
from api.db import drafts as draft_rows
from api.db.catalogue import grid_levels
from api.db.drafts import Draft
from api.db.versioning import active_or_none
from api.drafts.diff_levels import LEVEL_ITEMS_CAP, level_entry, pair_totals, staff_book
from api.drafts.publish import compose_lineage
from api.drafts.rebase import rebase_in
from api.drafts.versions import draft_by_id
from api.errors import Conflict, NotFound
from api.privacy import Caller
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
ITEMS_CAP = 2000  # objects listed per kind at the finest level (the counts cover them all)
KINDS = (
    ("buildings", diff_rows.BUILDINGS),
    ("monitoring_points", diff_rows.MONITORING_POINTS),
    ("open_events", diff_rows.OPEN_EVENTS),
)


def draft_diff(
    connection: Connection, draft_id: int, caller: Caller | None = None
) -> dict[str, Any]:
    """The draft against the active generation, as JSON (staff names only as `caller` may see)."""
    return diff_with_outlines(connection, draft_id, caller)[0]


def _recodes(connection: Connection, draft: Draft, added: set[str]) -> list[tuple[str, str]]:
    """(active code, draft code) of every grid the draft only recoded (lineage "recode")."""
    steps = [
        [tuple(step) for step in (edit or [])]
        for edit in draft_rows.live_lineages(connection, draft.id)
    ]
    return [
        (old, new)
        for old, new, relation in compose_lineage(steps, [], added)
        if relation == "recode" and old is not None and new is not None
    ]


def diff_with_outlines(
    connection: Connection, draft_id: int, caller: Caller | None = None
) -> tuple[dict[str, Any], Outlines]:
    """The diff, and the changed grids' outlines before and after (for the diff map).

    When another draft went live since this one began, comparing the draft as it is with the
    active generation would show it undoing that publish. Publish rebases first, so the diff
    does too: the rebase runs in a savepoint, the diff is taken of its result, and the
    savepoint is rolled back (nothing is stored). When the rebase has conflicts, the diff
    compares the draft with its own base instead. Either way `base_changed` says so."""
    draft = draft_by_id(connection, draft_id)
    active = active_or_none(connection)
    if active is None:
        raise NotFound("没有生效的网格版本", code="no_active_generation")
    if draft.status != "open" or draft.base_generation == active:
        return _diff(connection, draft, active, caller, None)
    base_changed: dict[str, Any] = {
        "base_generation": draft.base_generation,
        "active_generation": active,
        "rebased_preview": True,
        "conflicts": [],
    }
    savepoint = connection.begin_nested()
    try:
        rebase_in(connection, draft, active, {}, "diff-preview", check=False)
        return _diff(connection, draft_by_id(connection, draft_id), active, caller, base_changed)
    except Conflict as refused:
        if refused.code != "rebase_conflicts":
            raise
        conflicts = [
            {"code": c["code"], "kind": c["kind"], "level": c["level"]}
            for c in refused.details or []
        ]
    finally:
        savepoint.rollback()
    base_changed |= {"rebased_preview": False, "conflicts": conflicts}
    return _diff(connection, draft, draft.base_generation, caller, base_changed)


def _diff(
    connection: Connection,
    draft: Draft,
    against: int,
    caller: Caller | None,
    base_changed: dict[str, Any] | None,
) -> tuple[dict[str, Any], Outlines]:
    new = draft.generation_id
    rows = diff_rows.changed_rows(connection, against, new)
    grids, moved = _grid_changes(list(rows))
    ids = [r["id"] for r in rows if r["code"] in moved]
    recodes = _recodes(connection, draft, {r["code"] for r in rows if r["in_new"]})
    moving = {
        key: diff_rows.moving(
            connection, kind, against, new, ids, recodes, ITEMS_CAP, LEVEL_ITEMS_CAP
        )
        for key, kind in KINDS
    }
    outlines: Outlines = {"before": [], "after": []}
    for row in rows:
        outlines["after" if row["in_new"] else "before"].append(
            (row["code"], shapely.from_wkb(bytes(row["wkb"])))
        )
    levels = _levels(connection, against, new, rows, moving, recodes, caller or Caller(None))
    return {
        "draft": draft.id,
        "generation": new,
        "against_generation": against,
        "base_changed": base_changed,
        "summary": {
            "grids_added": sum(g["change"] == "added" for g in grids),
            "grids_removed": sum(g["change"] == "removed" for g in grids),
            "grids_changed": sum(g["change"] == "changed" for g in grids),
            "buildings_moving": moving["buildings"].total,
            "households_moving": moving["buildings"].total_households,
            "monitoring_points_moving": moving["monitoring_points"].total,
            "open_events_moving": moving["open_events"].total,
            "by_level": {
                level["level"]: {
                    key: level["summary"][key]
                    for key in (
                        "buildings_moving",
                        "households_moving",
                        "monitoring_points_moving",
                        "open_events_moving",
                    )
                }
                for level in levels
            },
        },
        "grids": grids,
        **{key: result.items for key, result in moving.items()},
        "truncated": {key: result.total > len(result.items) for key, result in moving.items()},
        "levels": levels,
    }, outlines


def _levels(
    connection: Connection,
    active: int,
    new: int,
    rows: list[Any],
    moving: dict[str, diff_rows.Moving],
    recodes: list[tuple[str, str]],
    caller: Caller,
) -> list[dict[str, Any]]:
    """Every level of the catalogue, coarsest first, with its moves (empty when none)."""
    pairs = pair_totals(moving)
    codes = {c for by_pair in pairs.values() for pair in by_pair for c in pair if c is not None}
    names = diff_rows.grid_names(connection, active, new, sorted(codes))
    staff = staff_book(connection, active, codes, recodes, caller)
    level_of = {r["code"]: r["level"] for r in rows}
    return [
        level_entry(
            level,
            pairs.get(level.name, {}),
            names,
            [(o, n) for o, n in recodes if level_of.get(n) == level.name],
            staff,
            {key: result.level_items.get(level.name, []) for key, result in moving.items()},
        )
        for level in grid_levels(connection)
    ]
