"""Edits to a grid hierarchy held in memory: reshape, split, merge, create, delete, re-code.

The draft layer loads the grids around an edit, applies one operation here and writes back
what changed. Every operation keeps the coverage a partition: area a grid gains is taken from
its neighbours, area it gives up goes to the neighbour it borders most, and the same transfer is
carried down to the children so micro-grids stay inside their grid (`Hierarchy.transfer` in
spatial/hierarchy.py; the overlay cleanup it relies on is spatial/cleanup.py). An edit that
cannot be made raises `EditError` naming the input field at fault, never where it came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely import ops

from spatial.cleanup import (
    MIN_PIECE_DEG2,
    MIN_WIDTH_DEG,
    SNAP_DEG,
    SNAP_INPUT_DEG,
    area,
    significant,
    snapped_to,
    tidy,
)
from spatial.grids import GRID_ATTRIBUTES, SAME_GEOMETRY_DEG, GridRow
from spatial.hierarchy import EditError, Hierarchy

# Names importers took from here before the split (spatial/grids.py, spatial/hierarchy.py).
__all__ = [
    "GRID_ATTRIBUTES",
    "SAME_GEOMETRY_DEG",
    "EditError",
    "GridRow",
    "HierarchyEdit",
    "polygon_or_error",
]


def polygon_or_error(geometry: shapely.Geometry, field: str) -> shapely.Geometry:
    """A valid, non-empty polygon, or an EditError naming the reason."""
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        raise EditError(f"几何应为面，收到 {geometry.geom_type}", "invalid_geometry", field)
    if not geometry.is_valid:
        raise EditError(f"几何无效：{shapely.is_valid_reason(geometry)}", "invalid_geometry", field)
    return geometry


class HierarchyEdit(Hierarchy):
    """One operation on the grids of a draft (those loaded around the edit)."""

    # operations ----------------------------------------------------------------------------
    def redraw(self, code: str, geometry: shapely.Geometry) -> None:
        """Replace one grid's geometry; neighbours are left as they are."""
        self.grid(code)
        self._set_geometry(code, polygon_or_error(geometry, "geometry"), contiguous=False)

    def _snapped(self, level: str, code: str, geometry: shapely.Geometry) -> shapely.Geometry:
        """The drawn outline with near-misses of existing vertices and edges made exact."""
        drawn = polygon_or_error(geometry, "geometry")
        nearby = [
            r.geom
            for r in self.rows.values()
            if (r.level == level or r.code == code) and r.geom.distance(drawn) <= SNAP_INPUT_DEG
        ]
        return snapped_to(drawn, nearby)

    def reshape(self, code: str, geometry: shapely.Geometry) -> None:
        """Give a grid a new outline; its neighbours give and take the difference."""
        row = self.grid(code)
        new = self._snapped(row.level, code, geometry)
        self._within_parent(row, new, "geometry")
        old = row.geom
        gained = new.difference(old)
        for neighbour in self._same_level(code, gained):
            for part in significant(self.rows[neighbour].geom.intersection(gained)):
                self.transfer(part, neighbour, code)
        uncovered = significant(new.difference(self.rows[code].geom))
        if uncovered:  # a gap the planner has now filled
            grown = shapely.union_all([self.rows[code].geom, *uncovered])
            self._set_geometry(code, grown, contiguous=True)
        for part in significant(old.difference(new)):
            siblings = [
                c
                for c in self._same_level(code, part.buffer(SNAP_DEG))
                if self.rows[c].parent_code == row.parent_code
            ]
            # Area given up along the outer edge (where no sibling borders it) would be a gap.
            near = part.boundary.buffer(SNAP_DEG)
            bordered = sum(self.rows[c].geom.boundary.intersection(near).length for c in siblings)
            open_edge = part.boundary.difference(
                shapely.union_all(
                    [new.boundary, *(self.rows[c].geom.boundary for c in siblings)]
                ).buffer(SNAP_DEG)
            ).length
            if not siblings or open_edge > bordered:
                raise EditError(
                    f"缩小的部分（约 {part.area * 1.1e10:.0f} 平方米）大多不与同一上级的相邻网格相接，"
                    "会留下空白：请把边界移向相邻网格",
                    "would_leave_gap",
                    "geometry",
                )
            self.transfer(part, code, self._best_receiver(part, siblings))

    def _within_parent(self, row: GridRow, geometry: shapely.Geometry, field: str) -> None:
        parent = self.rows.get(row.parent_code or "")
        if parent is not None and significant(geometry.difference(parent.geom)):
            raise EditError(
                f"新的范围超出了上级网格 {parent.code}（{parent.name}）", "outside_parent", field
            )

    def split(self, code: str, line: shapely.Geometry, new_codes: list[str]) -> list[str]:
        """Cut a grid in two along a line; children go to the side their interior lies on.

        A grid with children is cut between them, never through them, so each micro-grid stays
        whole and inside its new parent.
        """
        row = self.grid(code)
        if line.geom_type != "LineString":
            raise EditError("分割线应为 LineString", "invalid_geometry", "line")
        parts = [
            p for p in shapely.get_parts(ops.split(row.geom, line)) if p.geom_type == "Polygon"
        ]
        if len(parts) != 2:
            raise EditError(
                f"分割线应恰好把网格分成两块（实际 {len(parts)} 块）", "split_failed", "line"
            )
        children = self.children(code)
        # Each child goes whole to the side of the line its interior lies on.
        side = {
            c: 0 if parts[0].covers(self.rows[c].geom.point_on_surface()) else 1 for c in children
        }
        if children:
            parts = self._split_between_children(row, children, side)
        total = row.households or 0
        if children:  # the children's own counts are better than an area share
            shares = [
                float(sum(self.rows[c].households or 0 for c in children if side[c] == i))
                for i in (0, 1)
            ]
        else:
            shares = [area(p) for p in parts]
        self._remove(code)
        for new_code, part, share in zip(new_codes, parts, shares, strict=True):
            households = round(total * share / max(sum(shares), 1e-30))
            self._add(
                GridRow(
                    new_code,
                    f"{row.name}（{new_code[-3:]}）",
                    row.level,
                    row.kind,
                    row.parent_code,
                    households,
                    round(households * (row.population or 0) / max(total, 1)),
                    dict(row.attributes),
                    part,
                )
            )
            self.lineage.append((code, new_code, "split"))
        for child in children:
            self._touch(child).parent_code = new_codes[side[child]]
        return new_codes

    def _split_between_children(
        self, row: GridRow, children: list[str], side: dict[str, int]
    ) -> list[shapely.Geometry]:
        """The two parts as unions of whole children (the second side's, and the rest)."""
        sides: list[list[shapely.Geometry]] = [[], []]
        for child in children:
            sides[side[child]].append(self.rows[child].geom)
        if not all(sides):
            raise EditError(
                f"网格 {row.code} 的下级网格都在分割线同一侧：分割线应从下级网格之间穿过",
                "split_failed",
                "line",
            )
        second = tidy(shapely.coverage_union_all(sides[1]).intersection(row.geom))
        first = tidy(row.geom.difference(second))
        for part in (first, second):
            if part.geom_type != "Polygon":
                raise EditError(
                    "按下级网格分组后有一侧不连通：请沿下级网格的边界画分割线",
                    "split_failed",
                    "line",
                )
        return [first, second]

    def merge(self, codes: list[str], result_code: str) -> None:
        """Merge neighbouring grids of one parent and level into one."""
        rows = [self.grid(c, "codes") for c in codes]
        if len({(r.level, r.parent_code) for r in rows}) != 1:
            raise EditError("只能合并同一上级、同一层级的网格", "not_siblings", "codes")
        merged = tidy(shapely.union_all([r.geom for r in rows]))
        if merged.geom_type != "Polygon":
            raise EditError("被合并的网格不相邻（合并结果不连通）", "not_contiguous", "codes")
        first = next((r for r in rows if r.code == result_code), rows[0])
        for row in rows:
            for child in self.children(row.code):
                self._touch(child).parent_code = result_code
            self._remove(row.code)
        self._add(
            GridRow(
                result_code,
                first.name,
                first.level,
                first.kind,
                first.parent_code,
                sum(r.households or 0 for r in rows),
                sum(r.population or 0 for r in rows),
                dict(first.attributes),
                merged,
            )
        )
        self.lineage += [(r.code, result_code, "merge") for r in rows]

    def create(self, row: GridRow) -> None:
        """Add a grid inside its parent; same-level grids it overlaps give up that area."""
        row.geom = self._snapped(row.level, row.code, row.geom)
        parent_level = self._parent_level(row.level)
        if parent_level is not None:
            parent = self.rows.get(row.parent_code or "")
            if parent is None or parent.level != parent_level:
                raise EditError(
                    f"{row.level} 层级的网格需要一个 {parent_level} 层级的上级（parent_code）",
                    "invalid_parent",
                    "parent_code",
                )
            self._within_parent(row, row.geom, "geometry")
        self._add(row)
        for neighbour in self._same_level(row.code, row.geom):
            piece = significant(self.rows[neighbour].geom.intersection(row.geom))
            remaining = self.rows[neighbour].geom.difference(row.geom)
            self._set_geometry(neighbour, remaining, contiguous=True)
            if piece:
                self._carry_children(neighbour, shapely.union_all(piece), row.code)
        if tidy(row.geom).geom_type != "Polygon":
            raise EditError("新网格应是一个连通的面", "not_contiguous", "geometry")
        self.lineage.append((None, row.code, "create"))

    def delete(self, code: str, with_children: bool) -> list[str]:
        """Remove a grid (and, if asked, its descendants); its area is left uncovered."""
        self.grid(code)
        descendants = self._descendants(code)
        if descendants and not with_children:
            raise EditError(
                f"网格 {code} 还有 {len(descendants)} 个下级网格：请先处理，或设置 with_children=true 一并删除",
                "has_children",
                "with_children",
            )
        for gone in [*descendants, code]:
            self._remove(gone)
            self.lineage.append((gone, None, "delete"))
        return [code, *descendants]

    def update(self, code: str, changes: dict[str, Any]) -> None:
        """Change attributes, parent or code; children follow a new code."""
        row = self._touch(self.grid(code).code)
        if "parent_code" in changes and changes["parent_code"] != row.parent_code:
            parent = self.rows.get(changes["parent_code"] or "")
            expected = self._parent_level(row.level)
            if parent is None or parent.level != expected:
                raise EditError(
                    f"新的上级应是草稿中 {expected} 层级的网格",
                    "invalid_parent",
                    "parent_code",
                )
            if significant(row.geom.difference(parent.geom)):
                raise EditError(
                    f"网格 {code} 不在新的上级 {parent.code} 的范围内：请先调整边界",
                    "outside_parent",
                    "parent_code",
                )
        for name in ("name", "kind", "parent_code", "households", "population", "attributes"):
            if name in changes:
                setattr(row, name, changes[name])
        new_code = changes.get("code")
        if new_code and new_code != code:
            self.recode(code, new_code)

    def take_building(self, footprint: shapely.Geometry, target: str) -> list[str]:
        """Move the boundary so a building lies in `target`: the strip between them changes grid."""
        row = self.grid(target, "grid_code")
        sources = [
            c
            for c in self._same_level(target, footprint)
            if significant(self.rows[c].geom.intersection(footprint))
        ]
        if not sources:
            raise EditError(f"该楼栋已在网格 {target} 内", "already_there", "buildings")
        size = float(np.sqrt(footprint.area))
        for source in sources:
            if self.rows[source].parent_code != row.parent_code:
                raise EditError(
                    f"楼栋所在网格 {source} 与目标网格不属于同一上级：请先调整上级边界",
                    "not_siblings",
                    "grid_code",
                )
            # The strip runs from the building to the edge the two grids share.
            # (near the target's edge, not on it: a strip taken just before may have left the
            # two edges a rounding error apart until heal_vertices)
            shared = self.rows[source].geom.boundary.intersection(
                row.geom.boundary.buffer(SNAP_DEG)
            )
            if shared.length <= MIN_WIDTH_DEG:
                raise EditError(
                    f"楼栋所在网格 {source} 与目标网格 {target} 不相邻",
                    "not_adjacent",
                    "grid_code",
                )
            reach = footprint.distance(shared) + size
            near = shared.intersection(footprint.buffer(reach))
            # Reach a little past the shared edge, so the strip's side there is the grid's own edge.
            corridor = shapely.convex_hull(shapely.union_all([footprint, near.buffer(size / 10)]))
            for part in significant(self.rows[source].geom.intersection(corridor)):
                # A strip that meets the target only at a point would leave the source a hole
                # touching its own edge there (invalid once reprojected): refuse it instead.
                edge = self.rows[target].geom.boundary.buffer(SNAP_DEG)
                contact = part.boundary.intersection(edge).length
                if contact < size / 4:
                    raise EditError(
                        f"楼栋离网格 {source} 与目标网格 {target} 的共同边界太远（或共同边界太短），"
                        "无法只划出一条通道：请拖动边界（reshape）调整",
                        "not_adjacent",
                        "grid_code",
                    )
                # Where the strip crosses the source's edge, the crossing point is computed a
                # rounding error off that edge; given to the source as a vertex first, the
                # difference below cuts along the edge instead of leaving the strip as a hole.
                self._touch(source).geom = shapely.snap(self.rows[source].geom, part, SNAP_DEG)
                self.transfer(part, source, target)
        return sources

    def repartition(
        self, parent: str, groups: list[tuple[str, str, int, list[str], shapely.Geometry]]
    ) -> None:
        """Replace a parent's children by new grids: (code, name, households, children, outline)."""
        old = [self.rows[c] for c in self.children(parent)]
        if not old:
            raise EditError(f"网格 {parent} 没有下级网格可重新划分", "no_children", "community")
        template = old[0]
        for row in old:
            self._remove(row.code)
        for code, name, households, members, outline in groups:
            self._add(
                GridRow(
                    code,
                    name,
                    template.level,
                    template.kind,
                    parent,
                    households,
                    round(
                        households * (template.population or 0) / max(template.households or 1, 1)
                    ),
                    {},
                    tidy(outline),
                )
            )
            for member in members:
                self._touch(member).parent_code = code
            for row in old:
                if area(row.geom.intersection(outline)) >= MIN_PIECE_DEG2:
                    self.lineage.append((row.code, code, "redraw"))
