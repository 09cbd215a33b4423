"""Three generations of one grid, compared (for rebase): unchanged, changed alike, merged column
by column, what a side did, and which grids belong together (lineage and shared edits)."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from api.drafts.versions import Lineage
from spatial.crs import areas_m2
from spatial.grids import GRID_ATTRIBUTES, SAME_GEOMETRY_DEG, GridRow


def same_row(a: GridRow | None, b: GridRow | None) -> bool:
    """Exactly the same row: a coordinate 1e-12° off is a change here, as edges must match
    exactly (the coverage check compares them so)."""
    if a is None or b is None:
        return a is b
    return all(getattr(a, f) == getattr(b, f) for f in GRID_ATTRIBUTES) and bool(
        shapely.equals_exact(a.geom, b.geom, 0.0)
    )


def same_outline(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    return bool(shapely.hausdorff_distance(a, b) <= SAME_GEOMETRY_DEG)


def moved(before: GridRow | None, after: GridRow) -> bool:
    """The outline is new or moved (more than gaining vertices)."""
    return before is None or not same_outline(before.geom, after.geom)


def merged_row(b: GridRow | None, a: GridRow | None, d: GridRow | None) -> GridRow | None:
    """Both sides changed the grid: column by column, the side that changed a column gives it
    (an outline that only gained vertices counts as unchanged); None when a column was changed
    differently by both, or one side removed the grid."""
    if b is None or a is None or d is None:
        return None
    values: dict[str, Any] = {"code": d.code}
    for name in (*GRID_ATTRIBUTES, "geom"):
        old, theirs, mine = getattr(b, name), getattr(a, name), getattr(d, name)
        same = same_outline if name == "geom" else (lambda x, y: bool(x == y))
        if same(theirs, old) or same(theirs, mine):
            values[name] = mine
        elif same(mine, old):
            values[name] = theirs
        else:
            return None
    return GridRow(**values)


def m2(geometry: shapely.Geometry) -> float:
    return round(float(areas_m2(np.array([geometry], dtype=object))[0]), 1)


def area(row: GridRow | None) -> float | None:
    return None if row is None else m2(row.geom)


def change(code: str, before: GridRow | None, after: GridRow | None, pairs: Lineage) -> dict:
    """What one side did to `code`: action (split, merge, recode, delete, create, reshape,
    reparent, update, vertices), which columns changed, the grid's name and area after."""
    changes: list[str] = []
    if after is None:
        action = next((r for o, n, r in pairs if o == code and n != code), "delete")
    elif before is None:
        action = next((r for o, n, r in pairs if n == code and o != code), "create")
    else:
        changes = [a for a in GRID_ATTRIBUTES if getattr(before, a) != getattr(after, a)]
        if shapely.hausdorff_distance(before.geom, after.geom) > SAME_GEOMETRY_DEG:
            changes.append("geometry")
        elif not shapely.equals_exact(before.geom, after.geom, 0.0):
            changes.append("vertices")
        action = (
            "reshape"
            if "geometry" in changes
            else "reparent"
            if "parent_code" in changes
            else "update"
            if set(changes) - {"vertices"}
            else "vertices"
        )
    row = after or before
    return {
        "action": action,
        "changes": changes,
        "name": row.name if row else None,
        "area_m2": area(after),
    }


def together(seeds: set[str], pairs: Lineage, groups: list[set[str]], within: set[str]) -> set[str]:
    """`seeds` and every grid one side changed with them: made from or with them (lineage), or
    changed by the same edit — among `within`. Dropping or keeping a change keeps its edits whole."""
    found = set(seeds)
    while True:
        more = {n for o, n, _ in pairs if o in found and n is not None}
        more |= {o for o, n, _ in pairs if n in found and o is not None}
        for group in groups:
            if group & found:
                more |= group
        more = (more & within) - found
        if not more:
            return found
        found |= more


def components(groups: list[set[str]], within: set[str]) -> list[list[str]]:
    """The groups restricted to `within`, joined where they share a code."""
    joined: list[set[str]] = []
    for group in groups:
        part = group & within
        for other in [j for j in joined if j & part]:
            part |= other
            joined.remove(other)
        if part:
            joined.append(part)
    return sorted(sorted(j) for j in joined)


def onto(pairs: Lineage, active_pairs: Lineage, active_codes: set[str], final: set[str]) -> Lineage:
    """Base-relative lineage `pairs` made relative to the active generation (`active_pairs`
    led there from the base): a base code the active side recoded is the code it has now, so
    the draft's grid made from it continues that grid (a 'recode' when the draft recoded it
    too: staff follow 'recode' steps); a base code A lacks otherwise makes a creation."""
    successors = recoded_to(active_pairs)
    kept: Lineage = []
    for old, new, relation in pairs:
        if old is not None and old not in active_codes:
            if new is None:
                continue
            current = successor(old, successors, active_codes)
            if current is None or current in final:
                old, relation = None, "create"
            else:
                old = current
        kept.append((old, new, relation))
    return kept


def recoded_to(pairs: Lineage) -> dict[str, str]:
    """Each code the active side recoded (and nothing else did to it) → its next code."""
    steps: dict[str, set[tuple[str | None, str]]] = {}
    for old, new, relation in pairs:
        if old is not None and old != new:
            steps.setdefault(old, set()).add((new, relation))
    found: dict[str, str] = {}
    for old, targets in steps.items():
        if len(targets) == 1:
            new, relation = next(iter(targets))
            if relation == "recode" and new is not None:
                found[old] = new
    return found


def successor(code: str, successors: dict[str, str], live: set[str]) -> str | None:
    """The code the active generation has for `code`, over its recodes (None: none)."""
    seen = {code}
    while code not in live:
        following = successors.get(code)
        if following is None or following in seen:
            return None
        seen.add(following)
        code = following
    return code
