"""Run lookups against the in-memory index and shape the per-point answers.

Every answer, single or batch, has the same shape (see README): matched, the WGS84 point,
generation, grid, path, on_boundary, distance_to_edge_m, runner_up, nearest, and staff only for
callers entitled to personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from api.lookup.geocoding import DEFAULT_THRESHOLD, geocode_answer
from api.lookup.index_store import IndexStore
from api.privacy import Caller
from spatial.crs import coordinate_problems, normalise_crs, to_wgs84_xy
from spatial.lookup import GridIndex, GridRecord

DEFAULT_NEAR_M = 5.0


def _grid(record: GridRecord) -> dict[str, str]:
    return {"level": record.level, "code": record.code, "name": record.name}


def _metres(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 2)


def lookup_points(
    store: IndexStore,
    x: np.ndarray,
    y: np.ndarray,
    crs: str,
    *,
    at: datetime | None = None,
    near_m: float = DEFAULT_NEAR_M,
    caller: Caller,
) -> tuple[int, list[dict[str, Any]]]:
    """(generation, one answer per input point, in input order)."""
    spec = normalise_crs(crs)
    index = store.at(at)
    problems = coordinate_problems(x, y, spec)
    valid = np.array([p is None for p in problems], dtype=bool)
    lon = np.full(len(x), np.nan)
    lat = np.full(len(x), np.nan)
    if valid.any():
        lon[valid], lat[valid] = to_wgs84_xy(
            np.asarray(x, dtype=float)[valid], np.asarray(y, dtype=float)[valid], spec
        )
    result = index.lookup(np.where(valid, lon, np.nan), np.where(valid, lat, np.nan), near_m=near_m)
    answers = []
    for i in range(len(x)):
        if problems[i] is not None:
            answers.append(
                {"matched": False, "error": {"code": "invalid_coordinates", "message": problems[i]}}
            )
            continue
        answers.append(shape_answer(index, store, result, i, float(lon[i]), float(lat[i]), caller))
    return index.generation, answers


def shape_answer(
    index: GridIndex, store: IndexStore, result: Any, i: int, lon: float, lat: float, caller: Caller
) -> dict[str, Any]:
    grid = int(result.grid[i])
    answer: dict[str, Any] = {
        "matched": grid >= 0,
        "lon": round(lon, 9),
        "lat": round(lat, 9),
        "generation": index.generation,
    }
    if grid < 0:
        nearest = int(result.nearest[i])
        answer.update(
            grid=None,
            path=[],
            on_boundary=False,
            distance_to_edge_m=None,
            runner_up=None,
            nearest=(
                {
                    **_grid(index.records[nearest]),
                    "distance_m": _metres(result.nearest_distance_m[i]),
                }
                if nearest >= 0
                else None
            ),
        )
        return answer
    path = index.path(grid)
    runner = int(result.runner_up[i])
    answer.update(
        grid=_grid(index.records[grid]),
        path=[_grid(r) for r in path],
        on_boundary=bool(result.on_boundary[i]),
        distance_to_edge_m=_metres(result.edge_distance_m[i]),
        runner_up=(
            {**_grid(index.records[runner]), "distance_m": _metres(result.runner_up_distance_m[i])}
            if runner >= 0
            else None
        ),
        nearest=None,
    )
    staff = visible_staff(store, index, [r.code for r in path], caller)
    if staff is not None:
        answer["staff"] = staff
    return answer


def visible_staff(
    store: IndexStore, index: GridIndex, path_codes: list[str], caller: Caller
) -> list[dict[str, Any]] | None:
    """Staff the caller may see for a path, or None when they may see none.

    Staff are today's people and a token's scope is today's grids, so an answer about an
    earlier generation (`at=`) never carries staff."""
    if index.generation != store.active().generation:
        return None
    visible = caller.personal_codes(path_codes)
    return staff_on_duty(store, visible) if visible else None


def staff_on_duty(store: IndexStore, path_codes: list[str]) -> list[dict[str, Any]]:
    """Staff of the grid and every grid above it, finest first (whoever answers first)."""
    staff = []
    for code in reversed(path_codes):
        for person in store.staff.get(code, []):
            staff.append({**person, "grid_code": code})
    return staff


def match_address(
    store: IndexStore,
    address: str,
    *,
    at: datetime | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    caller: Caller,
) -> dict[str, Any]:
    """Place, precision, grid (or grid candidates) and confidence for what a caller said."""
    return geocode_answer(store, address, at=at, threshold=threshold, caller=caller)
