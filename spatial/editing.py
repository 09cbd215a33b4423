"""Edits to a grid hierarchy held in memory: reshape, split, merge, create, delete, re-code.

The draft layer loads the grids around an edit, applies one operation here and writes back
what changed. Every operation keeps the coverage a partition: area a grid gains is taken from
its neighbours, area it gives up goes to the neighbour it borders most, and the same transfer is
carried down to the children so micro-grids stay inside their grid. `before` keeps the original
of every grid the operation touched, which is what undo restores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely import ops

# Pieces smaller than this (square degrees, ~0.01 m²) are overlay noise, not area.
MIN_PIECE_DEG2 = 1e-12
# Pieces thinner than this (degrees, ~1 cm) are overlay or rounding slivers, not area.
MIN_WIDTH_DEG = 1e-7
# A drawn vertex this close to an existing vertex or edge is meant to be on it (degrees, ~10 cm):
# a map editor or a GeoJSON writer rounding to 6 decimals moves it by up to 7e-7 degrees.
SNAP_INPUT_DEG = 1e-6
# Vertices closer than this (degrees, ~0.1 µm) are one point computed twice.
_VERTEX_EPS = 1e-12
# Crossing vertices are inserted into every edge this close (degrees, ~0.1 mm).
SNAP_DEG = 1e-9
# Geometries closer than this (degrees, ~0.1 mm) are the same drawing: a KML or GeoJSON round
# trip prints 15 significant digits, which must not count as a redraw.
SAME_GEOMETRY_DEG = 1e-9


class EditError(ValueError):
    """An edit that cannot be made as asked; `code` and `where` say why and which input."""

    def __init__(self, message: str, code: str, where: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.where = where


# A grid's columns besides its code and geometry.
GRID_ATTRIBUTES = ("name", "level", "kind", "parent_code", "households", "population", "attributes")


@dataclass
class GridRow:
    code: str
    name: str
    level: str
    kind: str = "other"
    parent_code: str | None = None
    households: int | None = None
    population: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    geom: Any = None

    def same_as(self, other: GridRow) -> bool:
        return all(getattr(self, f) == getattr(other, f) for f in GRID_ATTRIBUTES) and bool(
            shapely.equals_exact(self.geom, other.geom, tolerance=SAME_GEOMETRY_DEG)
        )


def polygon_or_error(geometry: shapely.Geometry, where: str) -> shapely.Geometry:
    """A valid, non-empty polygon, or an EditError naming the reason."""
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        raise EditError(f"几何应为面，收到 {geometry.geom_type}", "invalid_geometry", where)
    if not geometry.is_valid:
        raise EditError(f"几何无效：{shapely.is_valid_reason(geometry)}", "invalid_geometry", where)
    return geometry


def _despiked(ring: shapely.LinearRing) -> list[tuple[float, float]]:
    """The ring without zero-width spikes (out and straight back), which overlays of nearly
    collinear edges leave behind; such a spike would never match a neighbour's edge."""
    points = [tuple(c) for c in shapely.get_coordinates(ring)[:-1]]
    changed = True
    while changed and len(points) > 3:
        changed = False
        for i in range(len(points)):
            (ax, ay), (bx, by), (cx, cy) = points[i - 1], points[i], points[(i + 1) % len(points)]
            out = (bx - ax, by - ay)
            back = (cx - bx, cy - by)
            length = max(np.hypot(*out), np.hypot(*back), 1e-300)
            width = abs(out[0] * back[1] - out[1] * back[0]) / length
            if width < SNAP_DEG and out[0] * back[0] + out[1] * back[1] < 0:
                del points[i]  # the spike's tip
                changed = True
                break
            if np.hypot(*back) < SNAP_DEG * 1e-3:
                del points[(i + 1) % len(points)]  # a duplicate left where a spike was
                changed = True
                break
    return [*points, points[0]]


def _tidy(geometry: shapely.Geometry) -> shapely.Geometry:
    """Drop overlay crumbs: spikes, and parts and holes smaller than MIN_PIECE_DEG2."""
    polygons = []
    for part in shapely.get_parts(shapely.make_valid(geometry)):
        if part.geom_type == "Polygon" and part.area >= MIN_PIECE_DEG2:
            holes = [
                _despiked(r) for r in part.interiors if shapely.Polygon(r).area >= MIN_PIECE_DEG2
            ]
            polygons.append(shapely.Polygon(_despiked(part.exterior), holes))
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            polygons += list(shapely.get_parts(_tidy(part)))
    if not polygons:
        return shapely.Polygon()
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def _area(geometry: shapely.Geometry) -> float:
    return float(shapely.area(geometry))


def _significant(geometry: shapely.Geometry) -> list[shapely.Geometry]:
    """The polygon parts that are real area: neither crumbs nor hairline slivers."""
    return [
        part
        for part in shapely.get_parts(_tidy(geometry))
        if part.area >= MIN_PIECE_DEG2 and 2 * part.area / part.length >= MIN_WIDTH_DEG
    ]


class HierarchyEdit:
    """One operation on the grids of a draft (those loaded around the edit)."""

    def __init__(self, rows: dict[str, GridRow], level_ranks: dict[str, int]) -> None:
        self.rows = rows
        self.ranks = level_ranks
        self.before: dict[str, GridRow] = {}
        self.created: set[str] = set()
        self.removed: set[str] = set()
        self.lineage: list[tuple[str | None, str | None, str]] = []

    # bookkeeping ---------------------------------------------------------------------------
    def grid(self, code: str, where: str = "path.code") -> GridRow:
        row = self.rows.get(code)
        if row is None:
            raise EditError(f"草稿中没有编码为 {code} 的网格", "grid_not_found", where)
        return row

    def _touch(self, code: str) -> GridRow:
        row = self.rows[code]
        if code not in self.before and code not in self.created:
            self.before[code] = copy.deepcopy(row)
        return row

    def _add(self, row: GridRow) -> None:
        if row.code in self.rows:
            raise EditError(f"编码 {row.code} 已被使用", "code_taken", "body.code")
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
        tidy = _tidy(geometry)
        if tidy.is_empty:
            raise EditError(
                f"操作会使网格 {code} 面积为零；如需去掉它，请使用合并或删除", "grid_emptied"
            )
        if contiguous and tidy.geom_type == "MultiPolygon":
            raise EditError(
                f"操作会使网格 {code} 分成 {len(tidy.geoms)} 块不相连的部分", "not_contiguous"
            )
        self._touch(code).geom = tidy

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

    def _parent_level(self, level: str) -> str | None:
        above = [name for name, rank in self.ranks.items() if rank < self.ranks[level]]
        return max(above, key=lambda name: self.ranks[name]) if above else None

    # the one primitive ---------------------------------------------------------------------
    def transfer(self, piece: shapely.Geometry, source: str, target: str) -> None:
        """Move `piece` from `source` to `target`, and its share of source's children with it."""
        self._set_geometry(source, self.rows[source].geom.difference(piece), contiguous=True)
        grown = _tidy(self.rows[target].geom.union(piece))
        if grown.geom_type == "MultiPolygon":
            # A piece cut along the target's edge may sit a rounding error away from it; joined
            # on a fine grid it closes up (finish() restores the untouched vertices exactly).
            grown = shapely.union(self.rows[target].geom, piece, grid_size=_VERTEX_EPS)
        self._set_geometry(target, grown, contiguous=True)
        self._carry_children(source, piece, target)

    def _carry_children(self, source: str, piece: shapely.Geometry, target: str) -> None:
        """Source's children follow `piece` to target: wholly inside, re-parented; partly, shared out."""
        receivers = self.children(target)
        for child in self.children(source):
            child_geometry = self.rows[child].geom
            if not _significant(child_geometry.difference(piece)):
                self._touch(child).parent_code = target  # wholly moved: it follows as it is
                continue
            share = _significant(child_geometry.intersection(piece))
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
            if _significant(self.rows[child].geom.intersection(piece)):
                self._clip(child, piece)

    # operations ----------------------------------------------------------------------------
    def redraw(self, code: str, geometry: shapely.Geometry) -> None:
        """Replace one grid's geometry; neighbours are left as they are."""
        self.grid(code)
        self._set_geometry(code, polygon_or_error(geometry, "body.geometry"), contiguous=False)

    def _snapped(self, level: str, code: str, geometry: shapely.Geometry) -> shapely.Geometry:
        """The drawn outline with near-misses of existing vertices and edges made exact."""
        drawn = polygon_or_error(geometry, "body.geometry")
        nearby = [
            r.geom
            for r in self.rows.values()
            if (r.level == level or r.code == code) and r.geom.distance(drawn) <= SNAP_INPUT_DEG
        ]
        if not nearby:
            return drawn
        snapped = shapely.snap(
            drawn, shapely.union_all([g.boundary for g in nearby]), SNAP_INPUT_DEG
        )
        return snapped if snapped.is_valid and not snapped.is_empty else drawn

    def reshape(self, code: str, geometry: shapely.Geometry) -> None:
        """Give a grid a new outline; its neighbours give and take the difference."""
        row = self.grid(code)
        new = self._snapped(row.level, code, geometry)
        self._within_parent(row, new, "body.geometry")
        old = row.geom
        gained = new.difference(old)
        for neighbour in self._same_level(code, gained):
            for part in _significant(self.rows[neighbour].geom.intersection(gained)):
                self.transfer(part, neighbour, code)
        uncovered = _significant(new.difference(self.rows[code].geom))
        if uncovered:  # a gap the planner has now filled
            grown = shapely.union_all([self.rows[code].geom, *uncovered])
            self._set_geometry(code, grown, contiguous=True)
        for part in _significant(old.difference(new)):
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
                    "body.geometry",
                )
            self.transfer(part, code, self._best_receiver(part, siblings))

    def _within_parent(self, row: GridRow, geometry: shapely.Geometry, where: str) -> None:
        parent = self.rows.get(row.parent_code or "")
        if parent is not None and _significant(geometry.difference(parent.geom)):
            raise EditError(
                f"新的范围超出了上级网格 {parent.code}（{parent.name}）", "outside_parent", where
            )

    def split(self, code: str, line: shapely.Geometry, new_codes: list[str]) -> list[str]:
        """Cut a grid in two along a line; children go to the side their interior lies on.

        A grid with children is cut between them, never through them, so each micro-grid stays
        whole and inside its new parent.
        """
        row = self.grid(code, "body.code")
        if line.geom_type != "LineString":
            raise EditError("分割线应为 LineString", "invalid_geometry", "body.line")
        parts = [
            p for p in shapely.get_parts(ops.split(row.geom, line)) if p.geom_type == "Polygon"
        ]
        if len(parts) != 2:
            raise EditError(
                f"分割线应恰好把网格分成两块（实际 {len(parts)} 块）", "split_failed", "body.line"
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
            shares = [_area(p) for p in parts]
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
                "body.line",
            )
        second = _tidy(shapely.coverage_union_all(sides[1]).intersection(row.geom))
        first = _tidy(row.geom.difference(second))
        for part in (first, second):
            if part.geom_type != "Polygon":
                raise EditError(
                    "按下级网格分组后有一侧不连通：请沿下级网格的边界画分割线",
                    "split_failed",
                    "body.line",
                )
        return [first, second]

    def finish(self) -> None:
        """Insert every vertex the edit created into each grid whose edge passes through it.

        Without this, a cut that ends on a neighbour's edge leaves a T-junction there: the
        neighbour's edge no longer matches, at any level, and the coverage check rightly fails.
        """
        self._merge_near_duplicates()
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
        points = shapely.multipoints(sorted(fresh))
        for code, row in sorted(self.rows.items()):
            # Edges must match within a level; a parent need not repeat its children's vertices.
            if row.level not in levels or row.geom.distance(points) > SNAP_DEG:
                continue
            snapped = shapely.snap(row.geom, points, SNAP_DEG)
            if not shapely.equals_exact(snapped, row.geom, 0.0) and snapped.is_valid:
                self._touch(code).geom = snapped

    def _merge_near_duplicates(self) -> None:
        """One coordinate for each point that overlays computed twice with different rounding.

        Two grids that should share a vertex may each get their own copy a few 1e-15 degrees
        apart; their edges then do not match. Untouched grids' vertices are kept as they are.
        """
        touched = set(self.touched())
        canonical: dict[tuple[int, int], tuple[float, float]] = {}
        ordered = [c for c in sorted(self.rows) if c not in touched] + sorted(touched)
        for code in ordered:
            for x, y in shapely.get_coordinates(self.rows[code].geom):
                canonical.setdefault((round(x / _VERTEX_EPS), round(y / _VERTEX_EPS)), (x, y))

        def find(x: float, y: float) -> tuple[float, float]:
            kx, ky = round(x / _VERTEX_EPS), round(y / _VERTEX_EPS)
            for dx in (0, -1, 1):
                for dy in (0, -1, 1):
                    found = canonical.get((kx + dx, ky + dy))
                    if (
                        found is not None
                        and abs(found[0] - x) <= _VERTEX_EPS
                        and abs(found[1] - y) <= _VERTEX_EPS
                    ):
                        return found
            return (x, y)

        for code in sorted(touched):
            geometry = self.rows[code].geom
            coordinates = shapely.get_coordinates(geometry)
            merged = np.array([find(x, y) for x, y in coordinates])
            if not np.array_equal(merged, coordinates):
                self.rows[code].geom = _tidy(shapely.set_coordinates(geometry, merged))

    def merge(self, codes: list[str], result_code: str) -> None:
        """Merge neighbouring grids of one parent and level into one."""
        rows = [self.grid(c, "body.codes") for c in codes]
        if len({(r.level, r.parent_code) for r in rows}) != 1:
            raise EditError("只能合并同一上级、同一层级的网格", "not_siblings", "body.codes")
        merged = _tidy(shapely.union_all([r.geom for r in rows]))
        if merged.geom_type != "Polygon":
            raise EditError("被合并的网格不相邻（合并结果不连通）", "not_contiguous", "body.codes")
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
                    "body.parent_code",
                )
            self._within_parent(row, row.geom, "body.geometry")
        self._add(row)
        for neighbour in self._same_level(row.code, row.geom):
            piece = _significant(self.rows[neighbour].geom.intersection(row.geom))
            remaining = self.rows[neighbour].geom.difference(row.geom)
            self._set_geometry(neighbour, remaining, contiguous=True)
            if piece:
                self._carry_children(neighbour, shapely.union_all(piece), row.code)
        if _tidy(row.geom).geom_type != "Polygon":
            raise EditError("新网格应是一个连通的面", "not_contiguous", "body.geometry")
        self.lineage.append((None, row.code, "create"))

    def delete(self, code: str, with_children: bool) -> list[str]:
        """Remove a grid (and, if asked, its descendants); its area is left uncovered."""
        self.grid(code)
        descendants = self._descendants(code)
        if descendants and not with_children:
            raise EditError(
                f"网格 {code} 还有 {len(descendants)} 个下级网格：请先处理，或设置 with_children=true 一并删除",
                "has_children",
                "query.with_children",
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
                    "body.parent_code",
                )
            if _significant(row.geom.difference(parent.geom)):
                raise EditError(
                    f"网格 {code} 不在新的上级 {parent.code} 的范围内：请先调整边界",
                    "outside_parent",
                    "body.parent_code",
                )
        for name in ("name", "kind", "parent_code", "households", "population", "attributes"):
            if name in changes:
                setattr(row, name, changes[name])
        new_code = changes.get("code")
        if new_code and new_code != code:
            moved = copy.deepcopy(row)
            moved.code = new_code
            for child in self.children(code):
                self._touch(child).parent_code = new_code
            self._remove(code)
            self._add(moved)
            self.lineage.append((code, new_code, "recode"))

    def take_building(self, footprint: shapely.Geometry, target: str) -> list[str]:
        """Move the boundary so a building lies in `target`: the strip between them changes grid."""
        row = self.grid(target, "body.grid_code")
        sources = [
            c
            for c in self._same_level(target, footprint)
            if _significant(self.rows[c].geom.intersection(footprint))
        ]
        if not sources:
            raise EditError(f"该楼栋已在网格 {target} 内", "already_there", "body.buildings")
        size = float(np.sqrt(footprint.area))
        for source in sources:
            if self.rows[source].parent_code != row.parent_code:
                raise EditError(
                    f"楼栋所在网格 {source} 与目标网格不属于同一上级：请先调整上级边界",
                    "not_siblings",
                    "body.grid_code",
                )
            # The strip runs from the building to the edge the two grids share.
            shared = self.rows[source].geom.boundary.intersection(row.geom.boundary)
            if shared.length <= MIN_WIDTH_DEG:
                raise EditError(
                    f"楼栋所在网格 {source} 与目标网格 {target} 不相邻",
                    "not_adjacent",
                    "body.grid_code",
                )
            reach = footprint.distance(shared) + size
            near = shared.intersection(footprint.buffer(reach))
            # Reach a little past the shared edge, so the strip's side there is the grid's own edge.
            corridor = shapely.convex_hull(shapely.union_all([footprint, near.buffer(size / 10)]))
            for part in _significant(self.rows[source].geom.intersection(corridor)):
                self.transfer(part, source, target)
        return sources

    def repartition(
        self, parent: str, groups: list[tuple[str, str, int, list[str], shapely.Geometry]]
    ) -> None:
        """Replace a parent's children by new grids: (code, name, households, children, outline)."""
        old = [self.rows[c] for c in self.children(parent)]
        if not old:
            raise EditError(
                f"网格 {parent} 没有下级网格可重新划分", "no_children", "body.community"
            )
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
                    _tidy(outline),
                )
            )
            for member in members:
                self._touch(member).parent_code = code
            for row in old:
                if _area(row.geom.intersection(outline)) >= MIN_PIECE_DEG2:
                    self.lineage.append((row.code, code, "redraw"))
