"""Columnar batch lookups from Arrow IPC streams and Parquet files (untrusted binary bodies).

A binary body is untrusted memory layout: an Arrow stream's offsets and lengths, a Parquet
footer's row counts and sizes may all lie. Every batch is validated in full before any value is
read, row counts and unpacked sizes are checked from the headers and again while reading, text
ids are length-checked on their buffers before any cast, and every decoding step runs inside
one error mapping, so a corrupt body is a 422 (or 413) naming where, never a crash or a 500.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from api.errors import InvalidInput, PayloadTooLarge, WanggeError
from api.lookup.arrow_limits import StreamTooLarge, check_stream
from api.lookup.columnar import (
    ARROW,
    INT64_MAX,
    MAX_BATCH_POINTS,
    MAX_ID_BYTES,
    Batch,
    QueryOptions,
    check_count,
    check_finite,
    checked_crs,
    id_out_of_range,
    id_too_long,
)
from api.lookup.service import DEFAULT_NEAR_M

# What a corrupt Arrow or Parquet body can raise while being decoded (pyarrow and numpy
# errors, invalid UTF-8, sizes no allocator takes): all of it is the body's fault, a 422.
_DECODE_ERRORS = (
    pa.ArrowException,
    OSError,
    ValueError,
    IndexError,
    SystemError,
    OverflowError,
    MemoryError,
    UnicodeError,
)


def read_arrow(body: bytes, query: QueryOptions, max_unpacked_bytes: int) -> Batch:
    """An Arrow IPC stream with columns lon, lat (numbers) and optionally id.

    Every batch is validated in full (offsets, UTF-8, buffer sizes) before any value is read:
    a stream is untrusted memory layout, and reading an unvalidated one reads past the body."""
    crs = _query_crs(query)
    try:
        check_stream(body, MAX_BATCH_POINTS, max_unpacked_bytes)
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        _check_schema(reader.schema)
        batches, rows = [], 0
        for batch in reader:
            rows += batch.num_rows
            check_count(rows, "body")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        table.validate(full=True)
        return _batch_from_table(table, query, crs, max_unpacked_bytes)
    except StreamTooLarge as error:
        check_count(error.rows, "body")
        raise PayloadTooLarge(
            f"Arrow 流解压后超过 {max_unpacked_bytes} 字节", where="body"
        ) from None
    except WanggeError:
        raise
    except _DECODE_ERRORS as error:
        raise InvalidInput(
            f"无法读取 Arrow IPC 流（{ARROW}）：{_reason(error)}",
            code="unreadable_arrow",
            where="body",
        ) from None


PARQUET_BATCH_ROWS = 8_192


def read_parquet(body: bytes, query: QueryOptions, max_unpacked_bytes: int) -> Batch:
    """A Parquet file with columns lon, lat and optionally id.

    The footer is not trusted: rows are counted over the row groups and again while reading,
    sizes are summed over the columns read (by their leaf position, not the field's), and the
    file is read in bounded batches with text ids kept dictionary-encoded until their lengths
    are checked (one long dictionary value repeated on every row unpacks to rows × its size)."""
    crs = _query_crs(query)
    try:
        parquet = pq.ParquetFile(pa.BufferReader(body))
        schema = parquet.schema_arrow
        _check_schema(schema)
        if "id" in schema.names and not pa.types.is_integer(schema.field("id").type):
            parquet = pq.ParquetFile(pa.BufferReader(body), read_dictionary=["id"])
        metadata = parquet.metadata
        groups = range(metadata.num_row_groups)
        check_count(
            max(metadata.num_rows, sum(metadata.row_group(g).num_rows for g in groups)), "body"
        )
        columns = [name for name in ("lon", "lat", "id") if name in schema.names]
        leaves = [
            leaf
            for leaf in range(metadata.num_columns)
            if metadata.schema.column(leaf).path in columns
        ]
        unpacked = sum(
            metadata.row_group(g).column(leaf).total_uncompressed_size
            for g in groups
            for leaf in leaves
        )
        if unpacked > max_unpacked_bytes:
            raise PayloadTooLarge(f"Parquet 解压后超过 {max_unpacked_bytes} 字节", where="body")
        batches, rows, size = [], 0, 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            rows += batch.num_rows
            check_count(rows, "body")
            batch.validate(full=True)
            _check_id_sizes(batch)
            size += sum(_real_size(column) for column in batch.columns)
            if size > max_unpacked_bytes:
                raise PayloadTooLarge(f"Parquet 解压后超过 {max_unpacked_bytes} 字节", where="body")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=batches[0].schema if batches else None)
        return _batch_from_table(table, query, crs, max_unpacked_bytes)
    except WanggeError:
        raise
    except _DECODE_ERRORS as error:
        raise InvalidInput(
            f"无法读取 Parquet 文件：{_reason(error)}", code="unreadable_parquet", where="body"
        ) from None


def _reason(error: BaseException) -> str:
    """pyarrow's own words on what is wrong (its messages name sizes and positions, never
    values read from the body); other errors only by their kind."""
    if isinstance(error, pa.ArrowException | OSError):
        return str(error)[:200]
    return type(error).__name__


def _query_crs(query: QueryOptions) -> str:
    if query.crs is None:
        raise InvalidInput(
            "Arrow 与 Parquet 请求须在查询参数中给出坐标系 crs",
            code="missing_crs",
            where="query.crs",
        )
    return checked_crs(query.crs, "query.crs")


def _real_size(array: pa.Array) -> int:
    """Bytes the column takes once decoded (a dictionary's values counted once)."""
    if pa.types.is_dictionary(array.type):
        return array.indices.nbytes + array.dictionary.nbytes
    return array.nbytes


def _id_lengths(array: pa.Array) -> np.ndarray:
    """Byte length of each (non-null) text id, read from offsets or views, nothing copied."""
    if pa.types.is_dictionary(array.type):
        return _id_lengths(array.dictionary)
    if pa.types.is_string_view(array.type) or pa.types.is_binary_view(array.type):
        views = np.frombuffer(array.buffers()[1], dtype=np.int32)
        lengths = views[::4][array.offset : array.offset + len(array)]
    else:
        lengths = pc.binary_length(array).to_numpy(zero_copy_only=False)
        lengths = np.nan_to_num(lengths.astype(float), nan=0)
    if array.null_count and not pa.types.is_dictionary(array.type):
        lengths = np.where(array.is_null().to_numpy(zero_copy_only=False), 0, lengths)
    return np.asarray(lengths)


def _check_id_sizes(table: pa.Table | pa.RecordBatch) -> None:
    """No text id longer than MAX_ID_BYTES: checked on the validated buffers, before any cast."""
    if "id" not in table.schema.names:
        return
    column = table.column("id")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    before = 0
    for chunk in chunks:
        kind = chunk.type.value_type if pa.types.is_dictionary(chunk.type) else chunk.type
        if pa.types.is_integer(kind):
            return
        lengths = _id_lengths(chunk)
        long = np.flatnonzero(lengths > MAX_ID_BYTES)
        if len(long):
            where = (
                "body.id" if pa.types.is_dictionary(chunk.type) else f"body.id[{before + long[0]}]"
            )
            raise id_too_long(where)
        before += len(chunk)


def _check_schema(schema: pa.Schema) -> None:
    for name in ("lon", "lat"):
        if schema.get_all_field_indices(name) == []:
            raise InvalidInput(f"缺少 {name} 列", code="invalid_schema", where=f"body.{name}")
    for name in ("lon", "lat", "id"):
        found = schema.get_all_field_indices(name)
        if len(found) > 1:
            raise InvalidInput(f"{name} 列出现了多次", code="invalid_schema", where=f"body.{name}")
        if not found:
            continue
        kind = schema.field(name).type
        numeric = (  # decimals too: DuckDB's `SELECT 120.7395 AS lon` is a decimal128
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        )
        if name == "id" and pa.types.is_dictionary(kind):  # categorical ids
            kind = kind.value_type
        text = (
            pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_string_view(kind)
        )
        if not (numeric if name != "id" else pa.types.is_integer(kind) or text):
            expected = "数字" if name != "id" else "整数或字符串"
            raise InvalidInput(
                f"{name} 列须为{expected}（收到 {kind}）",
                code="invalid_schema",
                where=f"body.{name}",
            )


def _batch_from_table(
    table: pa.Table, query: QueryOptions, crs: str, max_unpacked_bytes: int
) -> Batch:
    """Numbers and ids out of a validated table (called inside the readers' error mapping)."""
    coordinates = []
    for name in ("lon", "lat"):
        column = table.column(name)
        if column.null_count:
            first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InvalidInput(
                "坐标不能为空（null）", code="null_coordinate", where=f"body.{name}[{first}]"
            )
        array = np.asarray(column.cast(pa.float64(), safe=False).to_numpy())
        check_finite(array, f"body.{name}")
        coordinates.append(array)
    ids = None
    if "id" in table.column_names:  # text ids as plain strings (polars writes string views)
        _check_id_sizes(table)
        ids = table.column("id").combine_chunks()
        if pa.types.is_dictionary(ids.type):  # categorical ids: decoded (sizes checked above)
            ids = ids.dictionary_decode()
        if not pa.types.is_integer(ids.type):
            ids = ids.cast(pa.string())
        if pa.types.is_unsigned_integer(ids.type) and len(ids) and pc.max(ids).as_py() > INT64_MAX:
            raise id_out_of_range("body.id")
        ids.validate(full=True)
    near_m = DEFAULT_NEAR_M if query.near_m is None else query.near_m
    return Batch(coordinates[0], coordinates[1], ids, crs, query.at, near_m)
