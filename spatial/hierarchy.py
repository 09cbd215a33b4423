"""A grid hierarchy held in memory for one edit: what the edit changed, and its one primitive.

Every operation (spatial/editing.py) is built on `transfer`: area a grid gains is taken from
a neighbour, and the neighbour's children in that area go with it, so micro-grids stay inside
their grid. `before` keeps the original of every grid the edit touched, which is what undo
restores; `heal_vertices` makes the edges of the grids it touched match their neighbours' again.
"""

from __future__ import annotations

import copy

import numpy as np
import shapely

from spatial.cleanup import (
    VERTEX_EPS,
    merge_near_duplicates,
    significant,
    tidy,
    vertices_inserted,
)
from spatial.grids import GridRow


class EditError(ValueError):
    """An edit that cannot be made as asked; `code` says why, `field` names the input at fault
    (`geometry`, `code`, `with_children`…: where that input came from is the caller's to say)."""

    def __init__(self, message: str, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class Hierarchy:
    """The grids of a draft loaded around one edit, with the edit's bookkeeping."""

    def __init__(self, rows: dict[str, GridRow], level_ranks: dict[str, int]) -> None:
        self.rows = rows
        self.ranks = level_ranks
        self.before: dict[str, GridRow] = {}
        self.created: set[str] = set()
        self.removed: set[str] = set()
        self.lineage: list[tuple[str | None, str | None, str]] = []

    # bookkeeping ---------------------------------------------------------------------------
    def grid(self, code: str, field: str = "code") -> GridRow:
        row = self.rows.get(code)
        if row is None:
            raise EditError(f"草稿中没有编码为 {code} 的网格", "grid_not_found", field)
        return row

    def _touch(self, code: str) -> GridRow:
        row = self.rows[code]
        if code not in self.before and code not in self.created:
            self.before[code] = copy.deepcopy(row)
        return row

    def _add(self, row: GridRow) -> None:
        if row.code in self.rows:
            raise EditError(f"编码 {row.code} 已被使用", "code_taken", "code")
        self.rows[row.code] = row
        if row.code in self.removed:
            self.removed.discard(row.code)
        else:
            self.created.add(row.code)

    def _remove(self, code: str) -> None:
        self._touch(code)
        del self.rows[code]
        if code in self.created:
            self.created.discard(code)
        else:
            self.removed.add(code)

    def _set_geometry(self, code: str, geometry: shapely.Geometry, *, contiguous: bool) -> None:
        tidied = tidy(geometry)
        if tidied.is_empty:
            raise EditError(
                f"操作会使网格 {code} 面积为零；如需去掉它，请使用合并或删除", "grid_emptied"
            )
        if contiguous and tidied.geom_type == "MultiPolygon":
            raise EditError(
                f"操作会使网格 {code} 分成 {len(tidied.geoms)} 块不相连的部分", "not_contiguous"
            )
        self._touch(code).geom = tidied

    def touched(self) -> list[str]:
        """Codes still in the draft whose row this edit changed or created."""
        return sorted(c for c in (set(self.before) | self.created) if c in self.rows)

    def children(self, code: str) -> list[str]:
        return sorted(c for c, r in self.rows.items() if r.parent_code == code)

    def _descendants(self, code: str) -> list[str]:
        found, queue = [], [code]
        while queue:
            for child in self.children(queue.pop()):
                found.append(child)
                queue.append(child)
        return found

    def _same_level(self, code: str, geometry: shapely.Geometry) -> list[str]:
        level = self.rows[code].level
        return [
            c
            for c, r in sorted(self.rows.items())
            if c != code and r.level == level and r.geom.intersects(geometry)
        ]

    def reparented(self) -> list[str]:
        """Codes this edit created or gave a new parent, coarsest level first."""
        moved = [
            c
            for c in self.touched()
            if c in self.created or self.before[c].parent_code != self.rows[c].parent_code
        ]
        return sorted(moved, key=lambda c: (self.ranks.get(self.rows[c].level, 0), c))

    def recode(self, code: str, new_code: str) -> None:
        """Give a grid a new code; its children follow (their parent_code becomes the new code)."""
        row = copy.deepcopy(self._touch(code))
        row.code = new_code
        for child in self.children(code):
            self._touch(child).parent_code = new_code
        self._remove(code)
        self._add(row)
        self.lineage.append((code, new_code, "recode"))

    def _parent_level(self, level: str) -> str | None:
        above = [name for name, rank in self.ranks.items() if rank < self.ranks[level]]
        return max(above, key=lambda name: self.ranks[name]) if above else None

    # the one primitive ---------------------------------------------------------------------
    def transfer(self, piece: shapely.Geometry, source: str, target: str) -> None:
        """Move `piece` from `source` to `target`, and its share of source's children with it."""
        self._set_geometry(source, self.rows[source].geom.difference(piece), contiguous=True)
        grown = tidy(self.rows[target].geom.union(piece))
        if grown.geom_type == "MultiPolygon":
            # A piece cut along the target's edge may sit a rounding error away from it; joined
            # on a fine grid it closes up (heal_vertices() restores the untouched vertices exactly).
            grown = shapely.union(self.rows[target].geom, piece, grid_size=VERTEX_EPS)
        self._set_geometry(target, grown, contiguous=True)
        self._carry_children(source, piece, target)

    def _carry_children(self, source: str, piece: shapely.Geometry, target: str) -> None:
        """Source's children follow `piece` to target: wholly inside, re-parented; partly, shared out."""
        receivers = self.children(target)
        for child in self.children(source):
            child_geometry = self.rows[child].geom
            if not significant(child_geometry.difference(piece)):
                self._touch(child).parent_code = target  # wholly moved: it follows as it is
                continue
            share = significant(child_geometry.intersection(piece))
            if not share:
                continue
            if not receivers:  # nothing below the target to receive it: left for the planner
                self._clip(child, shapely.union_all(share))
                continue
            for part in share:
                self.transfer(part, child, self._best_receiver(part, receivers))

    def _best_receiver(self, piece: shapely.Geometry, candidates: list[str]) -> str:
        """The candidate sharing the longest border with `piece` (else the nearest)."""
        shared = [
            self.rows[c].geom.boundary.intersection(piece.boundary).length for c in candidates
        ]
        if max(shared) > 0:
            return candidates[int(np.argmax(shared))]
        return min(candidates, key=lambda c: self.rows[c].geom.distance(piece))

    def _clip(self, code: str, piece: shapely.Geometry) -> None:
        """Remove `piece` from a grid and its descendants (the area is left for the planner)."""
        self._set_geometry(code, self.rows[code].geom.difference(piece), contiguous=False)
        for child in self.children(code):
            if significant(self.rows[child].geom.intersection(piece)):
                self._clip(child, piece)

    # after the operation -------------------------------------------------------------------
    def heal_vertices(self) -> None:
        """Insert every vertex the edit created into each grid whose edge passes through it.

        Without this, a cut that ends on a neighbour's edge leaves a T-junction there: the
        neighbour's edge no longer matches, at any level, and the coverage check rightly fails.
        """
        merge_near_duplicates(self.rows, set(self.touched()))
        fresh: set[tuple[float, float]] = set()
        levels = {self.rows[code].level for code in self.touched()}
        for code in self.touched():
            after = {tuple(c) for c in shapely.get_coordinates(self.rows[code].geom)}
            previous = self.before.get(code)
            if previous is not None:
                after -= {tuple(c) for c in shapely.get_coordinates(previous.geom)}
            fresh |= after
        if not fresh:
            return
        for code, geometry in vertices_inserted(self.rows, levels, fresh).items():
            self._touch(code).geom = geometry
