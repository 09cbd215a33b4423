"""Read points from CSV, Parquet or GeoJSON in bounded chunks (pyarrow streaming readers).

`iter_points` reads a whole file, every column (the `wangge geocode` CLI keeps them). For a file
from anyone, `read_coordinates` counts the points before reading them (Parquet from its footer,
GeoJSON through GDAL's streaming parser, CSV while streaming) and reads only the coordinate
columns, so a small file cannot unpack into a huge table: a Parquet file of 10⁹ run-length
encoded rows is about a megabyte.
"""

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
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from api.transfer.guard import RefusedFile, gdal_path
from api.transfer.read import LAT_NAMES, LON_NAMES

CHUNK_ROWS = 200_000
POINT_FORMATS = (".csv", ".parquet", ".geojson", ".json")
# A coordinate as text, or a point as (E)WKB, is well under this; a longer value read through a
# Parquet dictionary would be repeated on every row. It also bounds the coordinate columns'
# unpacked size: rows × columns × this (a few MB for a full batch, whatever the file claims).
MAX_VALUE_BYTES = 64


class UnreadablePoints(ValueError):
    """The point file cannot be read; the message names the file and what is missing."""


class TooManyPoints(UnreadablePoints):
    """More points than the caller accepts (counted before reading them)."""


class PointsTooLarge(UnreadablePoints):
    """The file would unpack to more than the caller accepts."""


@dataclass(frozen=True)
class PointLimits:
    max_points: int
    max_unpacked_bytes: int


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


def _csv(
    path: Path, lon_field, lat_field, chunk_rows, *, coordinates_only: bool = False
) -> Iterator[PointChunk]:
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
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            include_columns=[lon, lat] if coordinates_only else None,
        ),
    )
    row = 1
    for batch in reader:
        table = pa.Table.from_batches([batch])
        yield PointChunk(table, _numbers(table[lon]), _numbers(table[lat]), row)
        row += table.num_rows


def _parquet(
    path: Path, lon_field, lat_field, chunk_rows, limits: PointLimits | None = None
) -> Iterator[PointChunk]:
    """With `limits`: only the coordinate columns, after checking the footer (see module)."""
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    names = schema.names
    geometry = "geometry" if "geometry" in names and not (lon_field or lat_field) else None
    if geometry is None:
        lon = _column(names, lon_field, LON_NAMES, "经度", path)
        lat = _column(names, lat_field, LAT_NAMES, "纬度", path)
    needed = [geometry] if geometry else [lon, lat]
    columns = None
    if limits is not None:
        _parquet_footprint(parquet, needed, limits, path)
        columns = needed
        # Text and WKB come back dictionary-encoded, so their values are checked before they
        # are repeated on every row (_decoded).
        expanding = [n for n in needed if not pa.types.is_floating(schema.field(n).type)]
        expanding = [n for n in expanding if not pa.types.is_integer(schema.field(n).type)]
        parquet = pq.ParquetFile(path, read_dictionary=expanding)
    row = 1
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        if limits is not None:
            batch = pa.RecordBatch.from_arrays(
                [_decoded(c, path) for c in batch.columns], names=batch.schema.names
            )
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


def read_coordinates(
    path: Path, lon_field: str | None, lat_field: str | None, limits: PointLimits
) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every point, refusing a file over the limits before reading its rows."""
    suffix = path.suffix.lower()
    if suffix not in POINT_FORMATS:
        raise UnreadablePoints(
            f"{path.name}：不支持的类型 {suffix}（支持 .csv、.parquet、.geojson）"
        )
    try:
        if suffix == ".parquet":
            chunks = _parquet(path, lon_field, lat_field, CHUNK_ROWS, limits)
        elif suffix == ".csv":
            chunks = _csv(path, lon_field, lat_field, CHUNK_ROWS, coordinates_only=True)
        else:
            _count_features(path, limits.max_points)
            chunks = iter([_geojson(path)])
        xs, ys, count = [], [], 0
        for chunk in chunks:  # CSV: stops at the first block past the limit
            count += len(chunk.x)
            if count > limits.max_points:
                raise TooManyPoints(f"{path.name} 的点数超过上限 {limits.max_points}")
            xs.append(chunk.x)
            ys.append(chunk.y)
    except (pa.ArrowInvalid, OSError, json.JSONDecodeError) as error:
        raise UnreadablePoints(
            f"{path.name}：读取失败（{str(error).splitlines()[0][:200]}）"
        ) from error
    if not xs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)


def _count_features(path: Path, max_points: int) -> None:
    """GDAL counts features while streaming through the file, without building them."""
    try:
        count = pyogrio.read_info(gdal_path(path, "GeoJSON"), force_feature_count=True)["features"]
    except RefusedFile as error:
        raise UnreadablePoints(str(error)) from error
    except (DataSourceError, DataLayerError) as error:
        raise UnreadablePoints(f"{path.name}：不是有效的 GeoJSON（{str(error)[:200]}）") from error
    if count > max_points:
        raise TooManyPoints(f"{path.name} 有 {count} 个点，超过上限 {max_points}")


def _parquet_footprint(
    parquet: pq.ParquetFile, columns: list[str], limits: PointLimits, path: Path
) -> None:
    """Rows and unpacked bytes of the columns to read, from the footer alone."""
    metadata = parquet.metadata
    if metadata.num_rows > limits.max_points:
        raise TooManyPoints(f"{path.name} 有 {metadata.num_rows} 行，超过上限 {limits.max_points}")
    leaves = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    unpacked = sum(
        metadata.row_group(g).column(leaves[name]).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for name in columns
        if name in leaves
    )
    # Page headers and levels cost a little beyond the values themselves.
    budget = min(
        limits.max_unpacked_bytes, 4096 + 2 * MAX_VALUE_BYTES * len(columns) * metadata.num_rows
    )
    if unpacked > budget:
        raise PointsTooLarge(f"{path.name} 的坐标列解压后 {unpacked} 字节，超过上限 {budget}")


def _decoded(column: pa.Array, path: Path) -> pa.Array:
    """A dictionary-read column, expanded only when its values are coordinate-sized."""
    if not pa.types.is_dictionary(column.type):
        return column
    longest = pc.max(pc.binary_length(column.dictionary)).as_py() or 0
    if longest > MAX_VALUE_BYTES:
        raise PointsTooLarge(
            f"{path.name} 的坐标列中有 {longest} 字节长的值（上限 {MAX_VALUE_BYTES}）"
        )
    return column.dictionary_decode()
