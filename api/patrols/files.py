"""Reading a track file from another app: GPX 1.0/1.1 or GeoJSON, with a time on every fix.

GPX is parsed with defusedxml (no DTD, no entities, no external references: a file cannot make
the parser fetch or expand anything); GeoJSON with the standard json module. Neither ever reaches
GDAL, so no file can name a URL or a path for a driver to open.

What is read:
- GPX: every `trk/trkseg/trkpt` (or, without tracks, every `rte/rtept`) with `lat`, `lon` and
  `<time>`; a segment is one part.
- GeoJSON (a FeatureCollection, a Feature or a bare geometry, WGS84): LineString and
  MultiLineString features whose times are in `properties.times`, `properties.coordTimes` or
  `properties.coordinateProperties.times` (one ISO time per vertex, a list per line of a
  MultiLineString: what togeojson and most exporters write), or a fourth coordinate in epoch
  seconds; Point features with `properties.time` (or `timestamp`) and optionally
  `properties.accuracy_m`. Each line is one part; all points together are one part.
Times without an offset are UTC (GPX's rule).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

MAX_FILE_POINTS = 200_000  # eleven days of a fix every 5 s
# Fixes from before GPS phones or after this century are not a patrol's (and keep times sane).
EARLIEST, LATEST = 946_684_800.0, 4_102_444_800.0  # 2000-01-01, 2100-01-01 (UTC)
_CRS84 = {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:EPSG::4326", "EPSG:4326"}


class TrackFileError(ValueError):
    """A file that is not a readable track; `code` is stable, the message Chinese."""

    def __init__(self, message: str, code: str = "unreadable_file", **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


@dataclass
class TrackPart:
    """One segment or line as the file has it, in the file's order."""

    times: list[float] = field(default_factory=list)  # epoch seconds
    lon: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    accuracy_m: list[float] = field(default_factory=list)  # NaN when unknown


@dataclass
class TrackFile:
    source: str  # gpx | geojson
    parts: list[TrackPart]

    @property
    def count(self) -> int:
        return sum(len(part.times) for part in self.parts)


def read_track_file(data: bytes) -> TrackFile:
    """GPX or GeoJSON, told apart by the first character that is not white space or a BOM."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if not head:
        raise TrackFileError("文件为空", code="empty_file")
    if head == b"<":
        parsed = TrackFile("gpx", _gpx_parts(data))
    elif head in (b"{", b"["):
        parsed = TrackFile("geojson", _geojson_parts(data))
    else:
        raise TrackFileError("无法识别的轨迹文件：应为 GPX 或 GeoJSON", code="unsupported_format")
    parsed.parts = [part for part in parsed.parts if part.times]
    if parsed.count == 0:
        raise TrackFileError("文件中没有带时间的轨迹点", code="no_track_points")
    if parsed.count > MAX_FILE_POINTS:
        raise TrackFileError(
            f"轨迹点过多：{parsed.count} 个，上限 {MAX_FILE_POINTS}", code="too_many_points"
        )
    return parsed


def parse_time(value: Any, where: str) -> float:
    """An ISO-8601 time as epoch seconds (no offset: UTC)."""
    if not isinstance(value, str):
        raise TrackFileError(f"{where}：时间应为 ISO 8601 字符串", code="invalid_time", where=where)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise TrackFileError(
            f"{where}：无法识别的时间 {value[:40]!r}", code="invalid_time", where=where
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _in_range(moment.timestamp(), where)


def _in_range(seconds: float, where: str) -> float:
    if not EARLIEST <= seconds < LATEST:
        raise TrackFileError(
            f"{where}：时间应在 2000 年至 2099 年之间", code="invalid_time", where=where
        )
    return seconds


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding=["']([A-Za-z0-9._-]{1,40})["']""")
_EXPAT_NATIVE = {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"}


def _as_utf8(data: bytes) -> bytes:
    """GPX from Chinese apps is often GBK, which the XML parser cannot read: decode it here."""
    declared = _DECLARED.match(data)
    if declared is None or declared.group(1).decode().lower() in _EXPAT_NATIVE:
        return data
    name = declared.group(1).decode()
    try:
        text = data.decode(name)
    except (LookupError, UnicodeDecodeError) as error:
        raise TrackFileError(
            f"GPX 文件声明的编码 {name} 无法读取：{error}", code="unreadable_file"
        ) from error
    start, end = declared.span(1)
    # The declaration is ASCII in any encoding we read: swap its name, keep the rest as text.
    rest = text[len(data[:end].decode("ascii", "replace")) :]
    return (data[:start].decode("ascii", "replace") + "utf-8" + rest).encode("utf-8")


def _gpx_parts(data: bytes) -> list[TrackPart]:
    data = _as_utf8(data)
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as error:
        raise TrackFileError(
            "GPX 文件含有 DTD 或实体声明，出于安全原因拒绝读取", code="unsafe_xml"
        ) from error
    except (ElementTree.ParseError, ValueError, LookupError) as error:
        raise TrackFileError(f"GPX 文件不是有效的 XML：{error}", code="unreadable_file") from error
    if _local(root.tag) != "gpx":
        raise TrackFileError("XML 文件的根元素不是 <gpx>", code="unsupported_format")
    segments = [e for e in root.iter() if _local(e.tag) == "trkseg"]
    point_tag = "trkpt"
    if not segments:
        segments = [e for e in root.iter() if _local(e.tag) == "rte"]
        point_tag = "rtept"
    parts = []
    for s, segment in enumerate(segments):
        part = TrackPart()
        points = [e for e in segment if _local(e.tag) == point_tag]
        for p, point in enumerate(points):
            where = f"第 {s + 1} 段第 {p + 1} 个点"
            times = [child.text for child in point if _local(child.tag) == "time"]
            if not times:
                raise TrackFileError(f"{where}没有时间（<time>）", code="missing_time", where=where)
            try:
                lon, lat = float(point.get("lon", "")), float(point.get("lat", ""))
            except ValueError as error:
                raise TrackFileError(
                    f"{where}的 lat/lon 不是数字", code="invalid_coordinates", where=where
                ) from error
            part.times.append(parse_time(times[0], where))
            part.lon.append(lon)
            part.lat.append(lat)
            part.accuracy_m.append(np.nan)
        parts.append(part)
    return parts


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TrackFileError(f"{where}：坐标应为数字", code="invalid_coordinates", where=where)
    try:
        return float(value)
    except OverflowError as error:  # an integer with hundreds of digits
        raise TrackFileError(
            f"{where}：数值过大", code="invalid_coordinates", where=where
        ) from error


def _features(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise TrackFileError("GeoJSON 应为对象（FeatureCollection、Feature 或几何）")
    crs = document.get("crs")
    if isinstance(crs, dict):
        name = str((crs.get("properties") or {}).get("name", ""))
        if name not in _CRS84:
            raise TrackFileError(
                f"GeoJSON 的坐标系 {name[:60]!r} 不受支持：轨迹须为 WGS84 经纬度",
                code="unsupported_crs",
            )
    kind = document.get("type")
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            raise TrackFileError("FeatureCollection 缺少 features 数组")
        return [f if isinstance(f, dict) else {} for f in features]
    if kind == "Feature":
        return [document]
    return [{"type": "Feature", "geometry": document, "properties": {}}]


def _vertex_times(properties: dict[str, Any], line: int) -> list[Any] | None:
    for key in ("times", "coordTimes"):
        if key in properties:
            return _nth(properties[key], line)
    nested = properties.get("coordinateProperties")
    if isinstance(nested, dict) and "times" in nested:
        return _nth(nested["times"], line)
    return None


def _nth(times: Any, line: int) -> list[Any] | None:
    """A LineString's times, or the `line`-th list of a MultiLineString's."""
    if isinstance(times, list) and times and isinstance(times[0], list):
        return times[line] if line < len(times) else None
    return times if isinstance(times, list) else None


def _line_part(coordinates: Any, times: list[Any] | None, where: str) -> TrackPart:
    if not isinstance(coordinates, list):
        raise TrackFileError(f"{where}：coordinates 应为数组", code="invalid_geometry", where=where)
    if times is not None and len(times) != len(coordinates):
        raise TrackFileError(
            f"{where}：时间 {len(times)} 个，坐标 {len(coordinates)} 个，数量不一致",
            code="missing_time",
            where=where,
        )
    part = TrackPart()
    for v, vertex in enumerate(coordinates):
        here = f"{where}第 {v + 1} 个坐标"
        if not isinstance(vertex, list) or len(vertex) < 2:
            raise TrackFileError(f"{here}应为 [经度, 纬度]", code="invalid_geometry", where=here)
        if times is not None:
            moment = parse_time(times[v], here)
        elif len(vertex) >= 4:
            moment = _in_range(_number(vertex[3], here), here)
        else:
            raise TrackFileError(
                f"{here}没有时间（properties.times 或第四个坐标）", code="missing_time", where=here
            )
        part.times.append(moment)
        part.lon.append(_number(vertex[0], here))
        part.lat.append(_number(vertex[1], here))
        part.accuracy_m.append(np.nan)
    return part


def _geojson_parts(data: bytes) -> list[TrackPart]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise TrackFileError(f"GeoJSON 文件无法解析：{error}", code="unreadable_file") from error
    parts: list[TrackPart] = []
    points = TrackPart()
    for f, feature in enumerate(_features(document)):
        geometry = feature.get("geometry") or {}
        properties = feature.get("properties") or {}
        if not isinstance(geometry, dict) or not isinstance(properties, dict):
            raise TrackFileError(f"第 {f + 1} 个要素的结构无效", code="invalid_geometry")
        kind, coordinates = geometry.get("type"), geometry.get("coordinates")
        where = f"第 {f + 1} 个要素"
        if kind == "LineString":
            parts.append(_line_part(coordinates, _vertex_times(properties, 0), where))
        elif kind == "MultiLineString" and isinstance(coordinates, list):
            for n, line in enumerate(coordinates):
                times = _vertex_times(properties, n)
                parts.append(_line_part(line, times, f"{where}第 {n + 1} 条线"))
        elif kind == "Point" and isinstance(coordinates, list) and len(coordinates) >= 2:
            stamp = properties.get("time", properties.get("timestamp"))
            if stamp is None:
                raise TrackFileError(
                    f"{where}（点）没有时间（properties.time）", code="missing_time", where=where
                )
            accuracy = properties.get("accuracy_m", properties.get("accuracy"))
            points.times.append(parse_time(stamp, where))
            points.lon.append(_number(coordinates[0], where))
            points.lat.append(_number(coordinates[1], where))
            points.accuracy_m.append(
                float(accuracy) if isinstance(accuracy, int | float) and accuracy >= 0 else np.nan
            )
        else:
            raise TrackFileError(
                f"{where}的几何类型 {str(kind)[:30]} 不是轨迹：应为 LineString、MultiLineString 或带时间的 Point",
                code="invalid_geometry",
                where=where,
            )
    return [*parts, points]
