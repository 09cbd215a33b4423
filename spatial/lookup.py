"""Point-in-grid lookup for one generation, in memory.

Which grid: the finest grid whose closure covers the point. A point on an edge shared by
several grids of that level belongs to the one with the smallest code (the deterministic
tie-break, the same rule PostGIS reproduces with ST_Covers … ORDER BY code).

Speed: a raster over the grids' extent stores, for every cell that no grid edge touches, the
grid that owns the whole cell. Most points resolve by array indexing; only points in cells an
edge passes through (and points off the raster) take the exact STRtree path.

Distances are measured in the CGCS2000 Gauss-Kruger zone of the data, in metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from spatial.crs import WGS84, metric_crs_for, transform

MAX_RASTER_CELLS = 4_000_000
MIN_CELL_DEG = 3e-5  # ≈ 3 m: finer buys nothing, the exact path handles boundary cells
ON_BOUNDARY_M = 0.01  # within 1 cm of an edge (the accuracy of the GCJ-02 inverse)
UNRESOLVED = -2  # raster value: a grid edge passes through this cell
NO_GRID = -1
CLAIM_CHUNK = 2_000_000  # (leaf, cell) pairs tested per vectorised call while building


@dataclass(frozen=True)
class GridRecord:
    code: str
    name: str
    level: str
    rank: int  # depth of the level: larger is finer
    parent_code: str | None


@dataclass
class LookupResult:
    """Per-point arrays; index −1 means none."""

    grid: np.ndarray
    on_boundary: np.ndarray
    edge_distance_m: np.ndarray
    runner_up: np.ndarray
    runner_up_distance_m: np.ndarray
    nearest: np.ndarray
    nearest_distance_m: np.ndarray


@dataclass
class GridIndex:
    generation: int
    records: list[GridRecord]
    geometries: np.ndarray  # WGS84
    by_code: dict[str, int] = field(init=False)
    leaves: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.by_code = {r.code: i for i, r in enumerate(self.records)}
        parents = {r.parent_code for r in self.records if r.parent_code}
        self.leaves = np.array(
            [i for i, r in enumerate(self.records) if r.code not in parents], dtype=np.int64
        )
        # Tie-break key: finer level first, then the smaller code.
        order = sorted(
            range(len(self.records)), key=lambda i: (-self.records[i].rank, self.records[i].code)
        )
        self._priority = np.empty(len(self.records), dtype=np.int64)
        self._priority[order] = np.arange(len(self.records))
        shapely.prepare(self.geometries)
        self._leaf_tree = shapely.STRtree(self.geometries[self.leaves])
        self._all_tree = shapely.STRtree(self.geometries)
        self.metric_crs = metric_crs_for(self.geometries) if len(self.geometries) else WGS84
        self._metric = transform(self.geometries, WGS84, self.metric_crs)
        self._metric_boundaries = shapely.boundary(self._metric)
        shapely.prepare(self._metric_boundaries)
        self._metric_leaf_tree = shapely.STRtree(self._metric[self.leaves])
        self._build_raster()

    # --- which grid ----------------------------------------------------------------------

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index into records of the finest grid covering each point, or −1."""
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        result = np.full(len(lon), NO_GRID, dtype=np.int64)
        if not len(self.records):
            return result
        finite = np.isfinite(lon) & np.isfinite(lat)
        col = np.floor((np.where(finite, lon, self._x0 - 1) - self._x0) / self._cell).astype(
            np.int64
        )
        row = np.floor((np.where(finite, lat, self._y0 - 1) - self._y0) / self._cell).astype(
            np.int64
        )
        inside = (
            (col >= 0) & (col < self._raster.shape[1]) & (row >= 0) & (row < self._raster.shape[0])
        )
        result[inside] = self._raster[row[inside], col[inside]]
        exact = np.flatnonzero(~inside | (result == UNRESOLVED))
        exact = exact[np.isfinite(lon[exact]) & np.isfinite(lat[exact])]
        result[~inside] = NO_GRID
        if len(exact):
            result[exact] = self._locate_exact(lon[exact], lat[exact])
        return result

    def _locate_exact(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        points = shapely.points(lon, lat)
        hit_point, hit_leaf = self._leaf_tree.query(points, predicate="intersects")
        found = self._pick(hit_point, hit_leaf, len(points), self.leaves)
        missing = np.flatnonzero(found == NO_GRID)
        if len(missing):  # a gap in the finest level: fall back to coarser grids covering it
            hit_point, hit_grid = self._all_tree.query(points[missing], predicate="intersects")
            found[missing] = self._pick(
                hit_point, hit_grid, len(missing), np.arange(len(self.records))
            )
        return found

    def _pick(
        self, point_index: np.ndarray, tree_index: np.ndarray, count: int, members: np.ndarray
    ) -> np.ndarray:
        """For each point, the covering grid with the best (lowest) priority."""
        found = np.full(count, NO_GRID, dtype=np.int64)
        if len(point_index) == 0:
            return found
        grids = members[tree_index]
        order = np.lexsort((self._priority[grids], point_index))
        point_index, grids = point_index[order], grids[order]
        first = np.r_[True, point_index[1:] != point_index[:-1]]
        found[point_index[first]] = grids[first]
        return found

    # --- full lookup: edges, runner-up, nearest ----------------------------------------------

    def lookup(self, lon: np.ndarray, lat: np.ndarray, near_m: float = 5.0) -> LookupResult:
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        count = len(lon)
        grid = self.locate(lon, lat)
        nan = np.full(count, np.nan)
        result = LookupResult(
            grid,
            np.zeros(count, dtype=bool),
            nan.copy(),
            np.full(count, NO_GRID),
            nan.copy(),
            np.full(count, NO_GRID),
            nan.copy(),
        )
        if not len(self.records) or not count:
            return result
        points = transform(shapely.points(lon, lat), WGS84, self.metric_crs)
        matched = np.flatnonzero(grid >= 0)
        if len(matched):
            distance = shapely.distance(self._metric_boundaries[grid[matched]], points[matched])
            result.edge_distance_m[matched] = distance
            result.on_boundary[matched] = distance <= ON_BOUNDARY_M
            close = matched[distance <= near_m]
            if len(close):
                self._runner_up(points, close, near_m, result)
        unmatched = np.flatnonzero(grid < 0)
        if len(unmatched):
            (point_index, leaf_index), distance = self._metric_leaf_tree.query_nearest(
                points[unmatched], return_distance=True, all_matches=False
            )
            result.nearest[unmatched[point_index]] = self.leaves[leaf_index]
            result.nearest_distance_m[unmatched[point_index]] = distance
        return result

    def _runner_up(
        self, points: np.ndarray, close: np.ndarray, near_m: float, result: LookupResult
    ) -> None:
        """The nearest other grid of the same level within near_m of each point."""
        point_index, leaf_index = self._metric_leaf_tree.query(
            points[close], predicate="dwithin", distance=near_m
        )
        candidates = self.leaves[leaf_index]
        own = result.grid[close[point_index]]
        keep = candidates != own
        point_index, candidates = point_index[keep], candidates[keep]
        if not len(point_index):
            return
        distance = shapely.distance(self._metric[candidates], points[close[point_index]])
        order = np.lexsort((self._priority[candidates], distance, point_index))
        point_index, candidates, distance = point_index[order], candidates[order], distance[order]
        first = np.r_[True, point_index[1:] != point_index[:-1]]
        result.runner_up[close[point_index[first]]] = candidates[first]
        result.runner_up_distance_m[close[point_index[first]]] = distance[first]

    def path(self, index: int) -> list[GridRecord]:
        """The grid and its ancestors, from the top level down."""
        chain = []
        seen = set()
        while index >= 0 and index not in seen:
            seen.add(index)
            chain.append(self.records[index])
            parent = self.records[index].parent_code
            index = self.by_code.get(parent, NO_GRID) if parent else NO_GRID
        return chain[::-1]

    # --- the acceleration raster ---------------------------------------------------------

    def _build_raster(self) -> None:
        if not len(self.records):
            self._x0 = self._y0 = 0.0
            self._cell = 1.0
            self._raster = np.full((1, 1), NO_GRID, dtype=np.int32)
            return
        xmin, ymin, xmax, ymax = shapely.total_bounds(self.geometries)
        area = max((xmax - xmin) * (ymax - ymin), 1e-12)
        cell = max(MIN_CELL_DEG, float(np.sqrt(area / MAX_RASTER_CELLS)))
        self._cell = cell
        self._x0, self._y0 = xmin - cell, ymin - cell
        columns = int(np.ceil((xmax - self._x0) / cell)) + 2
        rows = int(np.ceil((ymax - self._y0) / cell)) + 2
        cx = self._x0 + (np.arange(columns) + 0.5) * cell
        cy = self._y0 + (np.arange(rows) + 0.5) * cell
        # Owner of every cell centre: the best-priority leaf containing it strictly (one
        # vectorised contains_xy over every (leaf, cell of its bounding box) pair, in chunks);
        # the cells no leaf claims take the exact rule.
        best = self._claim_cells(cx, cy, columns, rows)
        by_priority = np.argsort(self._priority).astype(np.int32)
        claimed = best < len(self.records)
        flat = np.full(rows * columns, NO_GRID, dtype=np.int32)
        flat[claimed] = by_priority[best[claimed]]
        rest = np.flatnonzero(~claimed)
        flat[rest] = self._locate_exact(cx[rest % columns], cy[rest // columns])
        raster = flat.reshape(rows, columns)
        # …then every cell an edge passes through (or near) is left to the exact path.
        edges = shapely.segmentize(shapely.boundary(self.geometries), cell / 2.0)
        coords = shapely.get_coordinates(edges)
        col = np.floor((coords[:, 0] - self._x0) / cell).astype(np.int64)
        row = np.floor((coords[:, 1] - self._y0) / cell).astype(np.int64)
        touched = np.zeros((rows, columns), dtype=bool)
        touched[row, col] = True
        # Dilate by one cell: a chord between two samples can clip a neighbouring corner.
        dilated = touched.copy()
        dilated[1:, :] |= touched[:-1, :]
        dilated[:-1, :] |= touched[1:, :]
        dilated[:, 1:] |= touched[:, :-1]
        dilated[:, :-1] |= touched[:, 1:]
        dilated[1:, 1:] |= touched[:-1, :-1]
        dilated[:-1, :-1] |= touched[1:, 1:]
        dilated[1:, :-1] |= touched[:-1, 1:]
        dilated[:-1, 1:] |= touched[1:, :-1]
        raster[dilated] = UNRESOLVED
        self._raster = raster

    def _claim_cells(self, cx: np.ndarray, cy: np.ndarray, columns: int, rows: int) -> np.ndarray:
        """Per cell (flat), the best priority of a leaf containing its centre, or len(records)."""
        best = np.full(rows * columns, len(self.records), dtype=np.int64)
        geometries = self.geometries[self.leaves]
        bounds = shapely.bounds(geometries)
        c0, c1 = np.searchsorted(cx, bounds[:, 0]), np.searchsorted(cx, bounds[:, 2])
        r0, r1 = np.searchsorted(cy, bounds[:, 1]), np.searchsorted(cy, bounds[:, 3])
        width = np.clip(c1 - c0, 0, None)
        counts = width * np.clip(r1 - r0, 0, None)
        ends = np.cumsum(counts)
        start = 0
        while start < len(counts):  # chunks of about CLAIM_CHUNK pairs
            stop = int(np.searchsorted(ends, ends[start] - counts[start] + CLAIM_CHUNK)) + 1
            stop = min(max(stop, start + 1), len(counts))
            part = np.arange(start, stop)
            leaf = np.repeat(part, counts[part])
            first = ends[part] - counts[part]  # each leaf's first pair, counted from 0
            offset = np.arange(len(leaf)) + first[0] - np.repeat(first, counts[part])
            row = r0[leaf] + offset // np.maximum(width[leaf], 1)
            col = c0[leaf] + offset % np.maximum(width[leaf], 1)
            inside = shapely.contains_xy(geometries[leaf], cx[col], cy[row])
            flat = row[inside] * columns + col[inside]
            np.minimum.at(best, flat, self._priority[self.leaves[leaf[inside]]])
            start = stop
        return best

    @property
    def raster_stats(self) -> dict[str, float]:
        return {
            "cell_deg": self._cell,
            "cells": int(self._raster.size),
            "unresolved_share": float(np.mean(self._raster == UNRESOLVED)),
        }
