"""The body of an OGC API Features write: JSON whatever its label, a GeoJSON Feature's writable
properties (checked), and its geometry in WGS84 from the CRS named by Content-Crs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import InvalidInput, WanggeError
from api.ogc.crs import parse_crs
from api.routes.params import geometry_from_geojson
from spatial.crs import WGS84, transform

JSON_TYPES = ("application/json", "application/geo+json", "application/merge-patch+json")
# Read-only members of the read side's representation: accepted, never written.
READ_ONLY = frozenset({"level_label", "generation"})


class UnsupportedMediaType(WanggeError):
    status = 415
    code = "unsupported_media_type"


def read_json(body: bytes, content_type: str | None) -> Any:
    """The JSON body. A JSON media type is expected, yet a body that parses is taken whatever
    it was labelled (OWSLib labels JSON strings text/xml); one that does not → 400, or 415
    when it was not declared as JSON."""
    media = (content_type or "").split(";")[0].strip().lower()
    declared_json = not media or media in JSON_TYPES or media.endswith("+json")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        if not declared_json:
            raise UnsupportedMediaType(
                f"不支持的请求体类型 {media}：请用 GeoJSON（application/geo+json）",
                where="header.Content-Type",
            ) from error
        raise WanggeError("请求体不是有效的 JSON", code="unreadable_body", where="body") from error


class Properties(BaseModel):
    """The writable properties of a draft grid (the read side's, less the read-only ones)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code: str | None = Field(default=None, min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    level: str | None = Field(default=None, min_length=1, max_length=64)
    kind: str = Field(default="other", min_length=1, max_length=64)
    parent_code: str | None = Field(default=None, min_length=1, max_length=64)
    households: int | None = Field(default=None, ge=0, le=10_000_000)
    population: int | None = Field(default=None, ge=0, le=100_000_000)


def properties(raw: Any, partial: bool) -> dict[str, Any]:
    """Checked properties: all of them (defaults filled), or only those given when `partial`."""
    if not isinstance(raw, dict):
        raise InvalidInput("properties 应为对象", code="invalid_feature", where="body.properties")
    given = {k: v for k, v in raw.items() if k not in READ_ONLY}
    try:
        model = Properties.model_validate({"name": "-", **given} if partial else given)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "properties"
        unknown = first["type"] == "extra_forbidden"
        raise InvalidInput(
            f"未知的属性 {field}（可写：{'、'.join(Properties.model_fields)}）"
            if unknown
            else f"属性 {field} 有误：{first['msg']}",
            code="unknown_property" if unknown else "invalid_property",
            where=f"body.properties.{field}",
        ) from error
    values = model.model_dump()
    return {k: values[k] for k in given} if partial else values


def feature(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"请求体应为 {what}", code="invalid_feature", where="body")
    if "crs" in body:
        raise InvalidInput(
            "不支持 GeoJSON 的 crs 成员：请用请求头 Content-Crs",
            code="unknown_crs",
            where="body.crs",
        )
    return body


def content_crs(header: str | None) -> tuple[str, bool]:
    """(CRS of the body's coordinates, whether their first axis is northing/latitude).

    The read side's CRSs (api/ogc/crs.py): CRS84 (the default, as GeoJSON), EPSG:4326 and
    EPSG:4490 (latitude first, as their URIs say), the CGCS2000 Gauss-Kruger zones
    EPSG:4513–4554 (northing first), and the documented extensions gcj02 and bd09."""
    if header is None or not header.strip():
        return WGS84, False
    value = header.strip().removeprefix("<").removesuffix(">").strip()
    named = parse_crs(value, "header.Content-Crs")
    if named.chinese:
        return named.chinese, False
    return f"EPSG:{named.srid}", named.lat_first


def feature_geometry(raw: Any, crs: tuple[str, bool]) -> shapely.Geometry:
    """The body's geometry in WGS84 longitude/latitude, or 422 naming body.geometry."""
    where = "body.geometry"
    if not isinstance(raw, dict):
        raise InvalidInput("需要 GeoJSON 几何（面）", code="invalid_geometry", where=where)
    geometry = geometry_from_geojson(raw, where)
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(
            f"几何应为面，收到 {geometry.geom_type}", code="invalid_geometry", where=where
        )
    source, north_first = crs
    if north_first:
        geometry = shapely.transform(geometry, lambda xy: xy[:, ::-1])
    if source != WGS84:
        geometry = transform(geometry, source, WGS84)
    xy = shapely.get_coordinates(geometry)
    if not np.isfinite(xy).all() or not (
        (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()
    ):
        raise InvalidInput(
            "坐标超出范围：请检查坐标轴顺序和 Content-Crs", code="invalid_geometry", where=where
        )
    return geometry
