"""Export grids, buildings, monitoring points and the gazetteer's places to GeoJSON, GeoPackage, Shapefile, KML or CSV.

Free attributes become columns again, so an exported file imports back to the same rows; they
hold personal data (owners, phones…), so a caller not entitled to it gets only the fixed
columns. CSV text cells that a spreadsheet would run as formulas are quoted (`cells`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyogrio import raw
from sqlalchemy import Engine

from api.db.exports import layer_rows
from api.transfer.cells import quoted_cell
from api.transfer.guard import gdal_encoding
from spatial.crs import WGS84, crs_label, parse_crs, transform


@dataclass(frozen=True)
class ExportFormat:
    driver: str
    suffix: str


EXPORT_FORMATS = {
    "geojson": ExportFormat("GeoJSON", ".geojson"),
    "gpkg": ExportFormat("GPKG", ".gpkg"),
    "shp": ExportFormat("ESRI Shapefile", ".shp"),
    "kml": ExportFormat("LIBKML", ".kml"),
    "csv": ExportFormat("CSV", ".csv"),
}
SHAPEFILE_NAMES = {
    "parent_code": "parent",
    "heading_deg": "heading",
    "compound_code": "compound",
}  # ≤ 10 characters
GEOMETRY_TYPES = {
    "points": "Point",
    "pois": "Point",
    "house-numbers": "Point",
    "roads": "MultiLineString",
}  # every other kind: MultiPolygon
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


class ExportError(ValueError):
    pass


class NothingToExport(ExportError):
    pass


def format_for(out: Path, format_name: str | None) -> str:
    if format_name:
        if format_name not in EXPORT_FORMATS:
            raise ExportError(
                f"不支持的导出格式 {format_name}（支持：{', '.join(EXPORT_FORMATS)}）"
            )
        return format_name
    suffix = out.suffix.lower()
    for name, spec in EXPORT_FORMATS.items():
        if spec.suffix == suffix or (name == "geojson" and suffix == ".json"):
            return name
    raise ExportError(
        f"无法从文件名 {out.name} 判断格式，请用 --format 指定（{', '.join(EXPORT_FORMATS)}）"
    )


def export_layer(
    engine: Engine,
    kind: str,
    out: Path,
    *,
    format_name: str | None = None,
    level: str | None = None,
    generation: int | None = None,
    crs: str = WGS84,
    encoding: str | None = None,
    include_attributes: bool = True,
) -> int:
    """Write the layer to `out`; returns the number of features written.

    `include_attributes`: also the free columns of imported files (personal data).
    """
    chosen = format_for(out, format_name)
    spec = EXPORT_FORMATS[chosen]
    target = crs_label(parse_crs(crs))
    if chosen == "kml" and parse_crs(target) != parse_crs(WGS84):
        raise ExportError("KML 只能使用 WGS84（EPSG:4326）")
    try:
        encoding = gdal_encoding(encoding) if encoding else None
    except ValueError as error:
        raise ExportError(str(error)) from error
    with engine.connect() as connection:
        rows = layer_rows(connection, kind, generation=generation, level=level)
    if not rows:
        raise NothingToExport("没有可导出的要素")
    geometries = transform(shapely.from_wkb([bytes(r["wkb"]) for r in rows]), WGS84, target)
    names, columns = _columns(
        rows, shapefile=chosen == "shp", attributes=include_attributes, csv=chosen == "csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if chosen == "csv":
        point = GEOMETRY_TYPES.get(kind) == "Point"
        options["layer_options"] = {"GEOMETRY": "AS_XY" if point else "AS_WKT"}
    if chosen == "shp":
        options["encoding"] = encoding or "UTF-8"
    geometry_type = GEOMETRY_TYPES.get(kind, "MultiPolygon")
    if out.exists():
        out.unlink()
    raw.write(
        out,
        shapely.to_wkb(geometries),
        columns,
        names,
        driver=spec.driver,
        crs=target,
        geometry_type=geometry_type,
        layer=kind,
        **options,
    )
    return len(rows)


def _columns(
    rows: Sequence[Any], *, shapefile: bool, attributes: bool, csv: bool
) -> tuple[list[str], list[np.ndarray]]:
    fixed = [k for k in rows[0] if k not in ("wkb", "attributes")]
    extra = (
        list(dict.fromkeys(k for r in rows for k in (r["attributes"] or {}))) if attributes else []
    )
    extra = [k for k in extra if k not in fixed]
    names, columns = [], []
    for name in fixed:
        names.append(SHAPEFILE_NAMES.get(name, name) if shapefile else name)
        columns.append(_array([r[name] for r in rows], csv))
    for name in extra:
        names.append(quoted_cell(name) if csv else name)
        columns.append(_array([(r["attributes"] or {}).get(name) for r in rows], csv))
    return names, columns


def _array(values: list[Any], csv: bool = False) -> np.ndarray:
    """A typed column when every value is an int or float; text (NULL kept) otherwise.

    For CSV, text cells a spreadsheet would run as formulas are quoted; numbers written as
    text in a mixed column are not (they are still numbers).
    """
    present = [v for v in values if v is not None]
    if present and len(present) == len(values):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            return np.array(values, dtype=np.int64)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            return np.array(values, dtype=np.float64)
    text = [quoted_cell(v) if csv else v for v in values]
    return np.array(
        [v if v is None or isinstance(v, str) else _text(v) for v in text], dtype=object
    )


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


def zip_shapefile(shp: Path, member_stem: str | None = None) -> Path:
    """Bundle a .shp with its sidecar files into one .zip (for downloads)."""
    archive = shp.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for suffix in SHAPEFILE_PARTS:
            part = shp.with_suffix(suffix)
            if part.is_file():
                bundle.write(part, (member_stem or shp.stem) + suffix)
    return archive
