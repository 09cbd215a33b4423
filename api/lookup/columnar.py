"""Columnar batch lookups: JSON arrays, Arrow IPC streams and Parquet in and out.

A bulk caller sends coordinates as columns and names the answer columns it wants (`fields=`);
the points go from the body straight into numpy arrays (no per-point Python objects), the index
runs only the work those columns need (`locate` for codes, `lookup` for edge distances and the
runner-up), and per-grid values (code, name, path, staff) are picked from per-grid tables by the
grid index. Every check on the input runs before any lookup, and answers the first problem found
as a 4xx naming where it is (`body.lat[17]`, `query.fields`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.errors import InvalidInput, WanggeError
from api.lookup.service import DEFAULT_NEAR_M
from api.times import Instant
from spatial.crs import CHINESE_SYSTEMS, UnknownCRS, normalise_crs, parse_crs

MAX_BATCH_POINTS = 100_000
MAX_ID_BYTES = 200  # an id is the caller's key for a point, not a payload
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JSON = "application/json"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
PARQUET_ALIASES = (PARQUET, "application/x-parquet")

# Answer fields: what each column holds. Unmatched points have nulls (matched: false).
FIELDS = {
    "code": "code of the finest grid covering the point",
    "level": "level of that grid (micro_grid, grid…)",
    "name": "name of that grid",
    "path": "codes from the street down to that grid",
    "matched": "whether a grid covers the point",
    "distance_to_edge_m": "metres to the grid's edge",
    "on_boundary": "within 1 cm of an edge (the tie-break chose the grid)",
    "runner_up": "the nearest other grid within near_m, and runner_up_distance_m",
    "nearest": "for unmatched points, the nearest grid, and nearest_distance_m",
    "lon": "WGS84 longitude used",
    "lat": "WGS84 latitude used",
    "staff": "staff on duty, finest grid first, for callers entitled to personal data (else null)",
}
DEFAULT_FIELDS = ("code", "level", "name", "matched")
FULL_LOOKUP = {"distance_to_edge_m", "on_boundary", "runner_up", "nearest"}  # need GridIndex.lookup
_AT = TypeAdapter(Instant | None)


class UnsupportedMediaType(WanggeError):
    status = 415
    code = "unsupported_media_type"


class NotAcceptable(WanggeError):
    status = 406
    code = "not_acceptable"


@dataclass
class Batch:
    """Points to look up, in the request's coordinates, and how to look them up."""

    x: np.ndarray
    y: np.ndarray
    ids: list[Any] | pa.Array | None
    crs: str  # normalised
    at: datetime | None = None
    near_m: float = DEFAULT_NEAR_M

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class QueryOptions:
    """crs, at and near_m from the query: a binary body has nowhere else to carry them."""

    crs: str | None = None
    at: datetime | None = None
    near_m: float | None = None


# --- media types and fields: checked before the body is read ------------------------------------


def request_form(content_type: str | None) -> str:
    """'json', 'arrow' or 'parquet' from the Content-Type (none: JSON, as FastAPI reads it)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("", JSON) or media.endswith("+json"):
        return "json"
    if media == ARROW:
        return "arrow"
    if media in PARQUET_ALIASES:
        return "parquet"
    raise UnsupportedMediaType(
        f"不支持的请求体类型 {media[:80]}：请用 {JSON}、{ARROW} 或 {PARQUET}",
        where="header.Content-Type",
    )


def accepted(accept: str | None) -> str | None:
    """The answer form the Accept header prefers: 'json', 'arrow', 'parquet', or None for the
    request's own form (no header, */*)."""
    if not accept or not accept.strip():
        return None
    best: tuple[float, str | None] | None = None
    for part in accept.split(","):
        media, *parameters = (piece.strip().lower() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        choice: str | None
        if media in ("*/*", "application/*"):
            choice = None
        elif media == JSON or media.endswith("+json"):
            choice = "json"
        elif media == ARROW:
            choice = "arrow"
        elif media in PARQUET_ALIASES:
            choice = "parquet"
        else:
            continue
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, choice)
    if best is None:
        raise NotAcceptable(
            f"无法以 Accept 要求的类型作答：可用 {JSON}、{ARROW} 或 {PARQUET}",
            where="header.Accept",
        )
    return best[1]


def answer_form(request: str, preference: str | None, fields_given: bool) -> str:
    """'rows' (today's per-point objects), 'json' (columns), 'arrow' or 'parquet'.

    Row requests keep their row answer unless they name fields or ask for a binary answer."""
    if request == "rows" and preference in (None, "json"):
        return "json" if fields_given else "rows"
    if request == "columns":
        return preference or "json"
    return preference or request


def parse_fields(text: str | None) -> tuple[str, ...] | None:
    """The requested answer columns, in the order asked (None: the defaults)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FIELDS]
    if unknown or not names:
        raise InvalidInput(
            f"未知的字段 {', '.join(unknown)[:200]}；可用：{', '.join(FIELDS)}"
            if unknown
            else f"fields 不能为空；可用：{', '.join(FIELDS)}",
            code="unknown_field",
            where="query.fields",
        )
    return tuple(dict.fromkeys(names))


# --- reading the body ----------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """The JSON body. orjson first; what it refuses but Python's json reads (NaN, Infinity,
    1e400) is read too, so the row form answers as before and the columnar form can say where.
    Text orjson refuses as invalid Unicode (a lone surrogate such as "\\ud800") stays refused."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = error
        if not isinstance(data, orjson.JSONDecodeError):
            where = _bad_text(data, "body")
            if where is None:
                return data
            raise InvalidInput(
                "文本含无效的 Unicode（孤立的代理码点，如 \\ud800）",
                code="invalid_json",
                where=where,
            ) from None
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", error.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": error.msg},
                }
            ]
        ) from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_text(data: Any, where: str) -> str | None:
    """Where the first string (or key) that is not valid Unicode is, or None."""
    stack = [(data, where)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return at
        elif isinstance(value, list):
            stack.extend((item, f"{at}[{i}]") for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                if not _encodable(key):
                    return at
                stack.append((item, f"{at}.{key}"))
    return None


def is_row_request(data: Any) -> bool:
    return not (
        isinstance(data, dict) and "points" not in data and ("lon" in data or "lat" in data)
    )


def read_columns(data: dict[str, Any], query: QueryOptions) -> Batch:
    """`{"crs", "lon": [...], "lat": [...], "ids"?: [...], "at"?, "near_m"?}`."""
    for name in ("lon", "lat"):
        values = data.get(name)
        if not isinstance(values, list):
            raise InvalidInput(f"{name} 须为数字数组", code="invalid_column", where=f"body.{name}")
        check_count(len(values), f"body.{name}")
    if len(data["lon"]) != len(data["lat"]):
        raise InvalidInput(
            f"lon 有 {len(data['lon'])} 个值，lat 有 {len(data['lat'])} 个：长度须相同",
            code="length_mismatch",
            where="body.lat",
        )
    ids = data.get("ids")
    if ids is not None:
        _check_ids(ids, len(data["lon"]))
    x, y = _numbers(data["lon"], "body.lon"), _numbers(data["lat"], "body.lat")
    crs = data.get("crs", query.crs)
    if crs is None:
        raise InvalidInput(
            "缺少坐标系 crs（字符串，如 EPSG:4326）", code="missing_crs", where="body.crs"
        )
    if not isinstance(crs, str):
        raise InvalidInput('crs 须为字符串（如 "EPSG:4326"）', code="invalid_crs", where="body.crs")
    at = data.get("at", query.at)
    if at is not None and not isinstance(at, str | datetime):  # a number is no Unix time here
        raise InvalidInput("at 须为 ISO-8601 时间字符串", code="invalid_time", where="body.at")
    try:
        at = _AT.validate_python(at)
    except ValidationError:
        raise InvalidInput("at 须为 ISO-8601 时间", code="invalid_time", where="body.at") from None
    near_m = data.get("near_m", query.near_m if query.near_m is not None else DEFAULT_NEAR_M)
    if isinstance(near_m, bool) or not isinstance(near_m, int | float) or not 0 <= near_m <= 100:
        raise InvalidInput(
            "near_m 须为 0 到 100 之间的数", code="invalid_near_m", where="body.near_m"
        )
    return Batch(
        x, y, ids, checked_crs(crs, "body.crs" if "crs" in data else "query.crs"), at, float(near_m)
    )


def checked_crs(text: str, where: str) -> str:
    """The normalised CRS; only 2D horizontal systems (a geocentric or 3D one has no lon/lat)."""
    try:
        crs = normalise_crs(text)
        if crs not in CHINESE_SYSTEMS.values():
            parsed = parse_crs(crs)
            if parsed.is_geocentric or len(parsed.axis_info) != 2:
                raise UnknownCRS("须为二维坐标系（经纬度或平面坐标），不能是地心或三维坐标系")
        return crs
    except UnknownCRS as error:
        raise InvalidInput(
            f"未知或不支持的坐标系 {text[:60]}（{error}）", code="unknown_crs", where=where
        ) from None


def check_count(count: int, where: str) -> None:
    if count > MAX_BATCH_POINTS:
        raise InvalidInput(
            f"一次最多查询 {MAX_BATCH_POINTS:,} 个点（收到 {count:,} 个）；更多请分批或用 wangge geocode",
            code="too_many_points",
            where=where,
        )


def _numbers(values: list[Any], where: str) -> np.ndarray:
    if not {type(value) for value in values} <= {int, float}:
        bad = next(i for i, v in enumerate(values) if type(v) not in (int, float))
        raise InvalidInput("坐标须为数字", code="not_a_number", where=f"{where}[{bad}]")
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond any double (Python's json reads 10**400 exactly)
        array = np.array([float(v) if abs(v) < 1e308 else np.inf for v in values])
    check_finite(array, where)
    return array


def check_finite(array: np.ndarray, where: str) -> None:
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise InvalidInput(
            f"坐标须为有限数（第 {bad[0]} 个是 {array[bad[0]]}；共 {len(bad)} 个 NaN 或 Infinity）",
            code="non_finite",
            where=f"{where}[{bad[0]}]",
            details=[{"index": int(i)} for i in bad[:10]],
        )


def _check_ids(ids: Any, count: int) -> None:
    if not isinstance(ids, list) or len(ids) != count:
        raise InvalidInput(
            f"ids 须为与 lon、lat 等长（{count}）的数组", code="length_mismatch", where="body.ids"
        )
    for i, value in enumerate(ids):
        kind = type(value)
        if kind is str:
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvalidInput(
                    "id 含无效的 Unicode（孤立的代理码点）",
                    code="invalid_id",
                    where=f"body.ids[{i}]",
                ) from None
            if size > MAX_ID_BYTES:
                raise id_too_long(f"body.ids[{i}]")
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise id_out_of_range(f"body.ids[{i}]")
        elif kind is float and value == value and abs(value) >= 2**63:
            raise id_out_of_range(f"body.ids[{i}]")  # an integer too long for orjson's int
        elif value is not None:
            raise InvalidInput(
                "id 须为字符串、整数或 null", code="invalid_id", where=f"body.ids[{i}]"
            )


def id_too_long(where: str) -> InvalidInput:
    return InvalidInput(f"id 最长 {MAX_ID_BYTES} 字节（UTF-8）", code="id_too_long", where=where)


def id_out_of_range(where: str) -> InvalidInput:
    return InvalidInput(
        "整数 id 须在 64 位有符号整数范围内（-2^63 到 2^63-1）；更长的编号请用字符串",
        code="id_out_of_range",
        where=where,
    )
