"""Read points from CSV, Parquet or GeoJSON in bounded chunks (pyarrow streaming readers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely

from api.transfer.read import LAT_NAMES, LON_NAMES

CHUNK_ROWS = 200_000
POINT_FORMATS = (".csv", ".parquet", ".geojson", ".json")


class UnreadablePoints(ValueError):
    """The point file cannot be read; the message names the file and what is missing."""


@dataclass
class PointChunk:
    table: pa.Table  # the input rows, unchanged
    x: np.ndarray
    y: np.ndarray
    first_row: int  # 1-based number of the chunk's first data row


def _column(
    names: list[str], explicit: str | None, candidates: tuple[str, ...], what: str, path: Path
) -> str:
    if explicit:
        if explicit not in names:
            raise UnreadablePoints(f"{path.name} 没有字段 {explicit!r}（现有：{', '.join(names)}）")
        return explicit
    lowered = {n.lower(): n for n in names}
    for candidate in candidates:
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    raise UnreadablePoints(
        f"{path.name} 中找不到{what}列（尝试了 {', '.join(candidates)}；现有：{', '.join(names)}），"
        f"请用 --{'lon' if what == '经度' else 'lat'}-field 指定"
    )


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Numbers from a text or numeric column; anything unparseable becomes NaN (reported per row)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
        valid = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
        valid = pc.fill_null(valid, False)
        text = pc.if_else(valid, text, pa.scalar(None, pa.string()))
        column = pc.cast(text, pa.float64())
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return np.where(np.isnan(values), np.nan, values).astype(float)


def iter_points(
    path: Path,
    lon_field: str | None = None,
    lat_field: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[PointChunk]:
    suffix = path.suffix.lower()
    if suffix not in POINT_FORMATS:
        raise UnreadablePoints(
            f"{path.name}：不支持的类型 {suffix}（支持 .csv、.parquet、.geojson）"
        )
    try:
        if suffix == ".csv":
            yield from _csv(path, lon_field, lat_field, chunk_rows)
        elif suffix == ".parquet":
            yield from _parquet(path, lon_field, lat_field, chunk_rows)
        else:
            yield _geojson(path)
    except (pa.ArrowInvalid, OSError, json.JSONDecodeError) as error:
        raise UnreadablePoints(
            f"{path.name}：读取失败（{str(error).splitlines()[0][:200]}）"
        ) from error


def _csv(path: Path, lon_field, lat_field, chunk_rows) -> Iterator[PointChunk]:
    # Every column as text: codes keep their leading zeros and nothing is silently altered.
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=None, strings_can_be_null=False, auto_dict_encode=False, check_utf8=True
        ),
    )
    names = reader.schema.names
    lon = _column(names, lon_field, LON_NAMES, "经度", path)
    lat = _column(names, lat_field, LAT_NAMES, "纬度", path)
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
    )
    row = 1
    for batch in reader:
        table = pa.Table.from_batches([batch])
        yield PointChunk(table, _numbers(table[lon]), _numbers(table[lat]), row)
        row += table.num_rows


def _parquet(path: Path, lon_field, lat_field, chunk_rows) -> Iterator[PointChunk]:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    geometry = "geometry" if "geometry" in names and not (lon_field or lat_field) else None
    if geometry is None:
        lon = _column(names, lon_field, LON_NAMES, "经度", path)
        lat = _column(names, lat_field, LAT_NAMES, "纬度", path)
    row = 1
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        table = pa.Table.from_batches([batch])
        if geometry:  # GeoParquet: WKB points
            points = shapely.from_wkb(table[geometry].to_numpy(zero_copy_only=False))
            x, y = shapely.get_x(points), shapely.get_y(points)
        else:
            x, y = _numbers(table[lon]), _numbers(table[lat])
        yield PointChunk(table, np.asarray(x, dtype=float), np.asarray(y, dtype=float), row)
        row += table.num_rows


def _geojson(path: Path) -> PointChunk:
    data = json.loads(path.read_text(encoding="utf-8"))
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise UnreadablePoints(f"{path.name}：不是 GeoJSON FeatureCollection")
    x, y, ids = [], [], []
    for feature in features:
        geometry = (feature or {}).get("geometry") or {}
        coords = geometry.get("coordinates") if geometry.get("type") == "Point" else None
        ok = (
            isinstance(coords, list)
            and len(coords) >= 2
            and all(isinstance(c, int | float) for c in coords[:2])
        )
        x.append(float(coords[0]) if ok and coords else np.nan)
        y.append(float(coords[1]) if ok and coords else np.nan)
        ids.append(str((feature or {}).get("id", "")) or None)
    table = pa.table({"id": pa.array(ids, pa.string())})
    return PointChunk(table, np.array(x, dtype=float), np.array(y, dtype=float), 1)
