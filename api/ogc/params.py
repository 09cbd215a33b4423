"""Query parameters of the items request: bbox, datetime, limit and the queryables, checked.

Every error names its parameter (`where: query.bbox` …) and becomes an OGC 400 under /ogc.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import shapely

from api.errors import InvalidInput
from api.ogc.crs import OgcCrs, within_zone
from spatial.crs import transform

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000
# Query parameters with a meaning of their own; any other that names a queryable filters by it.
RESERVED = frozenset(
    {
        "f",
        "limit",
        "offset",
        "bbox",
        "bbox-crs",
        "crs",
        "datetime",
        "filter",
        "filter-lang",
        "filter-crs",
    }
)
# Numbers as a URL writes them: ASCII digits only (int() and float() also read "١٠", "²", "1_0").
_INTEGER = re.compile(r"[0-9]{1,12}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


@dataclass(frozen=True)
class Box:
    """A bbox in EPSG:4326 longitude/latitude, or in a projected SRID (x = easting)."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    srid: int = 4326


@dataclass(frozen=True)
class Period:
    """A datetime parameter: an instant (start == end) or an interval; None = open end."""

    start: datetime | None
    end: datetime | None


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    limit = int(value) if _INTEGER.fullmatch(value) else -1
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit 须为 1 到 {MAX_LIMIT} 之间的整数", code="invalid_limit", where="query.limit"
        )
    return limit


def parse_offset(value: str | None) -> int:
    if value is None or value == "":
        return 0
    offset = int(value) if _INTEGER.fullmatch(value) else -1
    if not 0 <= offset <= 100_000_000:
        raise InvalidInput("offset 须为非负整数", code="invalid_offset", where="query.offset")
    return offset


def parse_bbox(value: str | None, crs: OgcCrs) -> Box | None:
    """`bbox` in the axis order of `bbox-crs` → a Box (x = longitude/easting)."""
    if value is None or value == "":
        return None
    parts = value.split(",")
    numbers = [float(p) for p in parts] if all(_NUMBER.fullmatch(p) for p in parts) else []
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise InvalidInput(
            "bbox 须为 4 个（或 6 个）逗号分隔的数", code="invalid_bbox", where="query.bbox"
        )
    half = len(numbers) // 2
    first_low, second_low = numbers[0], numbers[1]
    first_high, second_high = numbers[half], numbers[half + 1]
    if first_low > first_high or second_low > second_high:
        raise InvalidInput(
            "bbox 的最小值须在前、最大值在后（不支持跨越 180° 经线）",
            code="invalid_bbox",
            where="query.bbox",
        )
    if crs.lat_first:
        first_low, second_low, first_high, second_high = (
            second_low,
            first_low,
            second_high,
            first_high,
        )
    box = Box(first_low, second_low, first_high, second_high, crs.srid)
    if crs.projected and not within_zone(crs.srid, (box.minx, box.miny, box.maxx, box.maxy)):
        raise InvalidInput(
            "bbox 超出该高斯-克吕格投影带的适用范围（注意坐标轴顺序：北坐标在前）",
            code="invalid_bbox",
            where="query.bbox",
        )
    if not crs.projected and (box.miny < -90 or box.maxy > 90 or box.minx < -180 or box.maxx > 180):
        raise InvalidInput(
            "bbox 超出经纬度范围（注意坐标轴顺序：EPSG:4326 为纬度在前）",
            code="invalid_bbox",
            where="query.bbox",
        )
    if crs.chinese:
        polygon = shapely.segmentize(shapely.box(box.minx, box.miny, box.maxx, box.maxy), 0.01)
        minx, miny, maxx, maxy = transform(polygon, crs.chinese, "EPSG:4326").bounds
        box = Box(minx, miny, maxx, maxy)
    return box


def _moment(text: str, end_of_day: bool) -> datetime:
    if len(text) == 10:
        day = date.fromisoformat(text)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else moment
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_datetime(value: str | None) -> Period | None:
    """RFC 3339 instant, date, or interval `a/b` with `..` (or empty) for an open end."""
    if value is None or value == "":
        return None
    try:
        if "/" in value:
            start_text, end_text = value.split("/", 1)
            start = None if start_text in ("", "..") else _moment(start_text, False)
            end = None if end_text in ("", "..") else _moment(end_text, True)
            if start is None and end is None:
                raise ValueError("both ends open")
            if start is not None and end is not None and start > end:
                raise ValueError("start after end")
            return Period(start, end)
        if len(value) == 10:
            return Period(_moment(value, False), _moment(value, True))
        moment = _moment(value, False)
        return Period(moment, moment)
    except (ValueError, OverflowError):  # OverflowError: the day after 9999-12-31
        raise InvalidInput(
            "datetime 须为 RFC 3339 时间、日期或区间（如 2026-01-01T00:00:00Z/..）",
            code="invalid_datetime",
            where="query.datetime",
        ) from None


def queryable_params(items: list[tuple[str, str]], known: set[str]) -> list[tuple[str, str]]:
    """Query parameters that name a queryable (`?status=closed`). Any other unknown parameter is
    a 400 (OGC API Features /req/core/query-param-unknown): a client that believes it filtered
    on a field we do not offer (`?description=…`) must not get every feature back."""
    for name, _ in items:
        if name not in RESERVED and name not in known:
            raise InvalidInput(
                f"不支持的查询参数 {name[:64]!r}（可用：{'、'.join(sorted(RESERVED | known))}）",
                code="unknown_parameter",
                where=f"query.{name[:64]}",
            )
    return [(name, value) for name, value in items if name not in RESERVED]


def plain(value: Any) -> Any:
    """A datetime as RFC 3339 text (UTC), anything else unchanged."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value
