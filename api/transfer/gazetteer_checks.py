"""Checks of an imported gazetteer file beyond each value's own form: places far from the
served area are refused (a longitude sign typo puts a POI in California), names said twice —
within the file or by a place already stored under another code — are reported, not refused
(a city may really have two 新华路; the matcher then answers honestly with candidates)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import shapely
from sqlalchemy import Connection

from api.db.gazetteer_writes import active_extent, namesakes
from api.transfer.report import ImportIssue

OUTSIDE_LIMIT_M = 5_000.0  # farther than this outside the active generation's extent: refused
SHOWN = 10  # examples per note


def outside_issues(
    connection: Connection, geometries: np.ndarray, codes: list[str | None], label: str
) -> tuple[list[ImportIssue], str | None]:
    """A row error for each place (WGS84) more than OUTSIDE_LIMIT_M outside the extent of the
    active generation's grids; or, with no active generation, a note that nothing was checked."""
    extent = active_extent(connection)
    if extent is None:
        return [], "还没有生效的网格版本，未检查地点是否在辖区范围内"
    metres = metres_outside(geometries, extent)
    issues = [
        ImportIssue(
            int(index) + 1,
            "geometry",
            f"{label}位于当前网格范围之外约 {metres[index] / 1000:.1f} 公里"
            f"（超过 {OUTSIDE_LIMIT_M / 1000:.0f} 公里）：请检查坐标（经度正负号、经纬度顺序）"
            "或坐标系",
            codes[index],
        )
        for index in np.flatnonzero(metres > OUTSIDE_LIMIT_M)
    ]
    return issues, None


def metres_outside(geometries: np.ndarray, extent: tuple[float, float, float, float]) -> np.ndarray:
    """How far (m, about) each geometry's bounding box lies outside `extent` (lon/lat box);
    0 when they overlap. A local metric scale at the extent's middle latitude."""
    xmin, ymin, xmax, ymax = extent
    bounds = shapely.bounds(geometries)
    dx = np.maximum(np.maximum(xmin - bounds[:, 2], bounds[:, 0] - xmax), 0.0)
    dx = np.minimum(dx, 360.0 - dx)  # the short way round: −120.7 is 118.5° from 120.7
    dy = np.maximum(np.maximum(ymin - bounds[:, 3], bounds[:, 1] - ymax), 0.0)
    scale_x = 111_320.0 * math.cos(math.radians((ymin + ymax) / 2))
    return np.nan_to_num(np.hypot(dx * scale_x, dy * 110_574.0), nan=0.0)


def wordings(row: dict, table: str) -> list[str]:
    """What a row is called: its name and aliases; a plate its road + number (淞江路19号)."""
    if table == "house_number":
        return [f"{row['road']}{row['number']}号"] if row.get("road") and row.get("number") else []
    return list(
        dict.fromkeys([*([row["name"]] if row.get("name") else []), *(row.get("aliases") or [])])
    )


def duplicate_notes(connection: Connection, rows: list[dict], table: str, label: str) -> list[str]:
    """Names said by two rows of the file, and by a stored place of another code."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for number, row in enumerate(rows, start=1):
        for wording in wordings(row, table):
            rows_of[wording].append(number)
    notes = []
    twice = [(w, numbers) for w, numbers in rows_of.items() if len(set(numbers)) > 1]
    if twice:
        shown = "；".join(
            f"{w}（第 {'、'.join(map(str, sorted(set(n))))} 个要素）" for w, n in twice[:SHOWN]
        )
        more = f" 等 {len(twice)} 个" if len(twice) > SHOWN else ""
        notes.append(f"文件中有{label}名称重复（已导入，匹配时将给出候选而不确定）：{shown}{more}")
    codes = [row["code"] for row in rows]
    stored = namesakes(connection, table, list(rows_of), codes)
    if stored:
        shown = "；".join(
            f"{w}（第 {rows_of[w][0]} 个要素，已有编码 {code}）" for w, code in stored[:SHOWN]
        )
        more = f" 等 {len(stored)} 个" if len(stored) > SHOWN else ""
        notes.append(f"与已有{label}同名（已导入，匹配时将给出候选而不确定）：{shown}{more}")
    return notes
