"""Read a vector file (GeoJSON, GeoPackage, Shapefile or zipped Shapefile, KML/KMZ, CSV).

Returns geometries (shapely, source CRS) and attribute columns as Python values. Shapefiles
without a .cpg are decoded as UTF-8 when that works and as GBK otherwise (Chinese GIS
software writes GBK), and the report says which.

Files may come from anyone (uploads): GDAL sees them only through `guard.gdal_path` (one driver
per extension, network off), and archives are unpacked by `archives.unpack` (safe names,
capped sizes). A KMZ is read as its main KML document, unpacked the same way.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyogrio
import shapely
from pyogrio import raw
from pyogrio.errors import DataLayerError, DataSourceError

from api.settings import LimitSettings, get_settings
from api.transfer.archives import (
    ArchiveTooLarge,
    UnpackLimits,
    UnsafeArchive,
    checked_names,
    plain_name,
    unpack,
)
from api.transfer.cells import unquoted_cell
from api.transfer.guard import RefusedFile, gdal_encoding, gdal_path

FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".zip": "ESRI Shapefile",
    ".kml": "KML",
    ".kmz": "KML",
    ".csv": "CSV",
}
LON_NAMES = ("lon", "lng", "longitude", "x", "经度", "LON", "LNG", "Longitude", "X")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "LAT", "Latitude", "Y")
WKT_NAMES = ("wkt", "WKT", "geometry", "geom", "the_geom")
# Columns LIBKML adds to every placemark; dropped when they hold nothing but their defaults.
KML_DEFAULTS = {
    "description": None,
    "timestamp": None,
    "begin": None,
    "end": None,
    "altitudeMode": None,
    "tessellate": -1,
    "extrude": 0,
    "visibility": -1,
    "drawOrder": None,
    "icon": None,
}


class UnreadableFile(ValueError):
    """The file cannot be read as a layer; the message says why and where."""

    member: str | None = None  # the archive member at fault, if any


class UnpackedTooLarge(UnreadableFile):
    """An archive member would unpack beyond the limits."""


def unpack_limits(limits: LimitSettings) -> UnpackLimits:
    return UnpackLimits(limits.max_unpacked_bytes, limits.max_compression_ratio)


@dataclass
class SourceLayer:
    path: Path
    format: str
    geometries: np.ndarray
    fields: dict[str, list[Any]]
    crs: str | None
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)
    # Features whose geometry GDAL read but GEOS cannot build (a line of one point…): their
    # index → why, in Chinese; their geometry is None. Every import refuses them by row.
    broken: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.geometries)


@dataclass(frozen=True)
class CsvColumns:
    lon: str | None = None
    lat: str | None = None
    wkt: str | None = None


def read_layer(
    path: Path,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    csv_columns: CsvColumns = CsvColumns(),
    limits: UnpackLimits | None = None,
) -> SourceLayer:
    """Read one layer; `limits` cap what archives unpack to (default: the settings' limits)."""
    path = Path(path)
    if not path.exists():
        raise UnreadableFile(f"{path}：文件不存在")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UnreadableFile(
            f"{path}：不支持的文件类型 {suffix or '(无扩展名)'}；"
            "支持 GeoJSON、GeoPackage、Shapefile（.shp 或 .zip）、KML/KMZ、CSV"
        )
    limits = limits or unpack_limits(get_settings().limits)  # the CLI: WANGGE_LIMITS__*
    try:
        encoding = gdal_encoding(encoding) if encoding else None
    except ValueError as error:
        raise UnreadableFile(f"{path.name}：{error}") from error
    try:
        if suffix in (".zip", ".kmz"):
            return _read_archive(path, layer=layer, encoding=encoding, limits=limits)
        if suffix == ".csv":
            return _read_csv(path, csv_columns)
        if suffix == ".kml":
            return _read_all_layers(path, "KML")
        if suffix == ".shp":
            return _read_shapefile(path, encoding)
        return _read_one(path, FORMATS[suffix], layer=layer)
    except RefusedFile as error:
        raise UnreadableFile(str(error)) from error


def _layers(path: Path, format_name: str) -> list[str]:
    try:
        return [str(name) for name, _ in pyogrio.list_layers(gdal_path(path, format_name))]
    except (DataSourceError, DataLayerError, OSError) as error:
        raise UnreadableFile(f"{path}：无法打开（{_short(error)}）") from error


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:300]


def _read_one(path: Path, format_name: str, *, layer: str | None, **options: Any) -> SourceLayer:
    names = _layers(path, format_name)
    if layer is None and len(names) > 1:
        raise UnreadableFile(f"{path} 有多个图层（{', '.join(names)}），请用 --layer 指定一个")
    if layer is not None and layer not in names:
        raise UnreadableFile(f"{path} 中没有图层 {layer}（现有：{', '.join(names)}）")
    return _from_raw(path, format_name, layer=layer, **options)


def _from_raw(
    path: Path, format_name: str, *, layer: str | None = None, **options: Any
) -> SourceLayer:
    try:
        meta, _, wkb, columns = raw.read(gdal_path(path, format_name), layer=layer, **options)
    except UnicodeDecodeError:
        raise
    except (DataSourceError, DataLayerError, OSError, ValueError, RuntimeError) as error:
        raise UnreadableFile(f"{path}：读取失败（{_short(error)}）") from error
    broken: dict[int, str] = {}
    if wkb is not None:
        geometries, broken = _decoded(wkb)
    else:
        geometries = np.full(len(columns[0]) if columns else 0, None)
    fields = {
        str(name): [_python(v) for v in column]
        for name, column in zip(meta["fields"], columns, strict=True)
    }
    return SourceLayer(
        path,
        format_name,
        np.asarray(geometries, dtype=object),
        fields,
        meta.get("crs"),
        meta.get("encoding"),
        broken=broken,
    )


def _decoded(wkb: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Shapely geometries of the features, and which of them GEOS refuses to build, why."""
    try:
        return shapely.from_wkb(wkb), {}
    except shapely.errors.GEOSException:
        pass
    geometries = np.full(len(wkb), None, dtype=object)
    broken: dict[int, str] = {}
    for index, blob in enumerate(wkb):
        if blob is None:
            continue
        try:
            geometries[index] = shapely.from_wkb(blob)
        except shapely.errors.GEOSException as error:
            broken[index] = _geos_reason(error, bytes(blob))
    return geometries, broken


def _geos_reason(error: Exception, blob: bytes) -> str:
    """Why GEOS refused a feature's geometry, in the caller's terms (by its WKB type)."""
    message = str(error)
    order: Literal["little", "big"] = "little" if blob[:1] == b"\x01" else "big"
    base = (int.from_bytes(blob[1:5], order) & 0x0FFFFFFF) % 1000 if len(blob) >= 5 else 0
    if "point array must contain 0 or >1 elements" in message:
        if base in (3, 6):  # Polygon, MultiPolygon
            return "面的环只有一个点（环至少需要 4 个点，首尾相同）"
        return "线只有一个点（线至少需要 2 个点）"
    if "LinearRing" in message:
        return "面的环点数太少（环至少需要 4 个点，首尾相同）"
    return f"几何无法解析（{_short(error)}）"


def _python(value: Any) -> Any:
    """numpy scalars → Python; NaN/NaT → None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _read_shapefile(path: Path, encoding: str | None) -> SourceLayer:
    if encoding or path.with_suffix(".cpg").exists() or path.with_suffix(".CPG").exists():
        return _from_raw(path, "ESRI Shapefile", encoding=encoding)
    try:
        source = _from_raw(path, "ESRI Shapefile", encoding="UTF-8")
        source.encoding = "UTF-8"
        return source
    except UnicodeDecodeError:
        pass
    try:
        source = _from_raw(path, "ESRI Shapefile", encoding="GBK")
    except UnicodeDecodeError as error:
        raise UnreadableFile(
            f"{path}：属性表既不是 UTF-8 也不是 GBK 编码，请用 --encoding 指定"
        ) from error
    source.encoding = "GBK"
    source.notes.append("属性表没有 .cpg 编码声明，已按 GBK 解码")
    return source


def _read_archive(
    path: Path, *, layer: str | None, encoding: str | None, limits: UnpackLimits
) -> SourceLayer:
    """A zipped Shapefile, or a KMZ (its main document: the first .kml, usually doc.kml)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise UnreadableFile(f"{path.name}：不是有效的 zip 文件") from error
    with archive, tempfile.TemporaryDirectory(prefix="wangge-zip-") as folder:
        try:
            names = checked_names(archive)
            if path.suffix.lower() == ".kmz":
                documents = [n for n in names if n.lower().endswith(".kml")]
                if not documents:
                    raise UnreadableFile(f"{path.name}：KMZ 中没有 .kml 文档")
                main = "doc.kml" if "doc.kml" in documents else documents[0]
                unpack(archive, {main: "doc.kml"}, Path(folder), limits)
                source = _read_all_layers(Path(folder) / "doc.kml", "KML")
            else:
                chosen = _chosen_shapefile(path, names, layer)
                stem = chosen[: -len(".shp")]
                members = {n: plain_name(n) for n in names if n.startswith(stem + ".")}
                unpack(archive, members, Path(folder), limits)
                source = _read_shapefile(Path(folder) / plain_name(chosen), encoding)
        except ArchiveTooLarge as error:
            raise _with_member(UnpackedTooLarge(f"{path.name}：{error}"), error) from error
        except UnsafeArchive as error:
            raise _with_member(UnreadableFile(f"{path.name}：{error}"), error) from error
        except UnreadableFile as error:  # name the archive, not our temporary folder
            raise UnreadableFile(str(error).replace(folder, path.name)) from error
        source.path = path
        return source


def _with_member(error: UnreadableFile, cause: UnsafeArchive) -> UnreadableFile:
    error.member = cause.member
    return error


def _chosen_shapefile(path: Path, names: list[str], layer: str | None) -> str:
    shapefiles = [n for n in names if n.lower().endswith(".shp") and not n.startswith("__MACOSX")]
    if not shapefiles:
        raise UnreadableFile(f"{path.name}：zip 中没有 .shp 文件")
    if len(shapefiles) > 1 and layer is None:
        raise UnreadableFile(
            f"{path.name}：zip 中有多个 Shapefile（{', '.join(shapefiles)}），请用 --layer 指定"
        )
    chosen = next(
        (n for n in shapefiles if layer is None or Path(plain_name(n)).stem == layer), None
    )
    if chosen is None:
        raise UnreadableFile(f"{path.name}：zip 中没有名为 {layer} 的 Shapefile")
    return chosen


def _read_csv(path: Path, columns: CsvColumns) -> SourceLayer:
    options: dict[str, Any] = {"KEEP_GEOM_COLUMNS": "NO"}
    if columns.wkt:
        options["GEOM_POSSIBLE_NAMES"] = columns.wkt
    elif columns.lon or columns.lat:
        if not (columns.lon and columns.lat):
            raise UnreadableFile(f"{path}：--lon-field 与 --lat-field 需同时给出")
        options["X_POSSIBLE_NAMES"] = columns.lon
        options["Y_POSSIBLE_NAMES"] = columns.lat
    else:
        options["X_POSSIBLE_NAMES"] = ",".join(LON_NAMES)
        options["Y_POSSIBLE_NAMES"] = ",".join(LAT_NAMES)
        options["GEOM_POSSIBLE_NAMES"] = ",".join(WKT_NAMES)
    source = _from_raw(path, "CSV", **options)
    source.fields = {
        unquoted_cell(name): [unquoted_cell(v) for v in values]
        for name, values in source.fields.items()
    }
    if all(g is None for g in source.geometries) and len(source):
        raise UnreadableFile(
            f"{path}：CSV 中找不到坐标列；需要经纬度列（lon/lat、longitude/latitude、经度/纬度）"
            "或 WKT 列（wkt/geometry），也可用 --lon-field/--lat-field 或 --wkt-field 指定"
        )
    return source


def _read_all_layers(path: Path, format_name: str) -> SourceLayer:
    """KML folders come out as layers; a KML import takes all of them in order."""
    parts = [_from_raw(path, format_name, layer=name) for name in _layers(path, format_name)]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise UnreadableFile(f"{path}：没有要素")
    names = list(dict.fromkeys(n for p in parts for n in p.fields))
    fields = {n: [v for p in parts for v in p.fields.get(n, [None] * len(p))] for n in names}
    geometries = np.concatenate([p.geometries for p in parts])
    offsets = np.cumsum([0] + [len(p) for p in parts])
    broken = {
        int(o) + i: why for p, o in zip(parts, offsets, strict=False) for i, why in p.broken.items()
    }
    for name, default in KML_DEFAULTS.items():
        if name in fields and all(v in (None, default) for v in fields[name]):
            del fields[name]
    if "id" in fields and all(v is None or re.fullmatch(r".+\.\d+", str(v)) for v in fields["id"]):
        del fields["id"]  # LIBKML's generated placemark ids (layer.N), not the data's
    crs = parts[0].crs or "EPSG:4326"
    return SourceLayer(path, format_name, geometries, fields, crs, broken=broken)
