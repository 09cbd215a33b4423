"""Look up a columnar batch and encode the answer as JSON columns, Arrow IPC or Parquet.

Per-grid values (code, level, name, path, staff) live in per-index tables with a trailing null
slot, so a whole column is one fancy-index by the grid index (−1 picks the null). The index
does only the work the fields need: `locate` for codes; `lookup` (edge distance, runner-up,
nearest) only when one of those fields is asked for.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from api.lookup.columnar import ARROW, FULL_LOOKUP, JSON, PARQUET, Batch
from api.lookup.index_store import IndexStore
from api.lookup.service import visible_staff
from api.privacy import Caller
from spatial.crs import coordinate_problems, to_wgs84_xy
from spatial.lookup import GridIndex


@dataclass
class GridTables:
    """Per-grid answer values of one index: one slot per record, then a null for −1."""

    code: np.ndarray
    level: np.ndarray
    name: np.ndarray
    path: np.ndarray  # lists of codes, root → leaf
    arrow: dict[str, pa.Array] = field(default_factory=dict)


_TABLES: dict[int, tuple[weakref.ref[GridIndex], GridTables]] = {}


def grid_tables(index: GridIndex) -> GridTables:
    """Built once per index (generation), kept while the index lives."""
    cached = _TABLES.get(id(index))
    if cached is not None and cached[0]() is index:
        return cached[1]

    def slots(values: list[Any]) -> np.ndarray:
        table = np.empty(len(values) + 1, dtype=object)
        table[:-1] = values
        table[-1] = None
        return table

    records = index.records
    paths = [[r.code for r in index.path(i)] for i in range(len(records))]
    tables = GridTables(
        slots([r.code for r in records]),
        slots([r.level for r in records]),
        slots([r.name for r in records]),
        slots(paths),
    )
    for name in ("code", "level", "name"):
        tables.arrow[name] = pa.array(getattr(tables, name), type=pa.string())
    tables.arrow["path"] = pa.array([*paths, None], type=pa.list_(pa.string()))
    for key, (ref, _) in list(_TABLES.items()):
        if ref() is None:
            _TABLES.pop(key, None)
    _TABLES[id(index)] = (weakref.ref(index), tables)
    return tables


class Column:
    def to_list(self) -> list[Any]:
        raise NotImplementedError

    def to_arrow(self) -> pa.Array:
        raise NotImplementedError


@dataclass
class Picked(Column):
    """Per-grid values picked by grid index (−1: null)."""

    table: np.ndarray
    arrow_table: pa.Array
    index: np.ndarray

    def to_list(self) -> list[Any]:
        return self.table[self.index].tolist()

    def to_arrow(self) -> pa.Array:
        return self.arrow_table.take(np.where(self.index < 0, len(self.table) - 1, self.index))


@dataclass
class Values(Column):
    """Per-point values; NaN (floats) or `null` mark the missing ones."""

    data: np.ndarray
    null: np.ndarray | None = None
    kind: pa.DataType | None = None

    def to_list(self) -> list[Any]:
        if self.null is None or not self.null.any():
            return self.data.tolist()  # orjson writes NaN as null
        values = self.data.astype(object)
        values[self.null] = None
        return values.tolist()

    def to_arrow(self) -> pa.Array:
        if self.data.dtype == object:
            return pa.array(self.data, type=self.kind, from_pandas=True)
        return pa.array(self.data, mask=self.null, type=self.kind, from_pandas=True)


@dataclass
class Ids(Column):
    values: list[Any] | pa.Array

    def to_list(self) -> list[Any]:
        return self.values.to_pylist() if isinstance(self.values, pa.Array) else self.values

    def to_arrow(self) -> pa.Array:
        if isinstance(self.values, pa.Array):
            return self.values
        try:
            return pa.array(self.values)
        except (pa.ArrowException, OverflowError):  # ids mixing strings and numbers: as text
            return pa.array([None if v is None else str(v) for v in self.values], pa.string())


@dataclass
class Answer:
    generation: int
    count: int
    columns: dict[str, Column]


def wgs84_points(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lon, lat, per-point problem or None); invalid points get NaN, which match nothing."""
    problems = np.empty(len(batch), dtype=object)
    problems[:] = coordinate_problems(batch.x, batch.y, batch.crs)
    valid = np.equal(problems, np.array(None))
    if valid.all():
        lon, lat = to_wgs84_xy(batch.x, batch.y, batch.crs)
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), problems
    lon, lat = np.full(len(batch), np.nan), np.full(len(batch), np.nan)
    if valid.any():
        lon[valid], lat[valid] = to_wgs84_xy(batch.x[valid], batch.y[valid], batch.crs)
    return lon, lat, problems


def lookup_columns(
    store: IndexStore, batch: Batch, fields: tuple[str, ...], caller: Caller
) -> Answer:
    index = store.at(batch.at)
    tables = grid_tables(index)
    lon, lat, problems = wgs84_points(batch)
    result = index.lookup(lon, lat, near_m=batch.near_m) if FULL_LOOKUP & set(fields) else None
    grid = result.grid if result is not None else index.locate(lon, lat)
    unmatched = grid < 0
    columns: dict[str, Column] = {}
    if batch.ids is not None:
        columns["id"] = Ids(batch.ids)
    for name in fields:
        if name in ("code", "level", "name", "path"):
            columns[name] = Picked(getattr(tables, name), tables.arrow[name], grid)
        elif name == "matched":
            columns[name] = Values(~unmatched)
        elif name in ("lon", "lat"):
            columns[name] = Values(np.round(lon if name == "lon" else lat, 9))
        elif name == "staff":
            staff = staff_table(store, index, tables, grid, caller)
            columns[name] = Picked(staff, pa.array(staff.tolist()), grid)
        else:
            assert result is not None
            if name == "distance_to_edge_m":
                columns[name] = Values(np.round(result.edge_distance_m, 2))
            elif name == "on_boundary":
                columns[name] = Values(result.on_boundary, unmatched)
            else:
                picked = result.runner_up if name == "runner_up" else result.nearest
                distance = (
                    result.runner_up_distance_m
                    if name == "runner_up"
                    else result.nearest_distance_m
                )
                columns[name] = Picked(tables.code, tables.arrow["code"], picked)
                columns[f"{name}_distance_m"] = Values(np.round(distance, 2))
    invalid = ~np.equal(problems, np.array(None))
    codes = np.full(len(batch), None, dtype=object)
    codes[invalid] = "invalid_coordinates"
    columns["error"] = Values(codes, kind=pa.string())
    columns["error_message"] = Values(problems, kind=pa.string())
    return Answer(index.generation, len(batch), columns)


def staff_table(
    store: IndexStore, index: GridIndex, tables: GridTables, grid: np.ndarray, caller: Caller
) -> np.ndarray:
    """Staff per grid the points fell in, shown to this caller as the single lookup shows them."""
    table = np.full(len(tables.code), None, dtype=object)
    for position in np.unique(grid[grid >= 0]):
        table[position] = visible_staff(store, index, tables.path[position], caller)
    return table


def encode(answer: Answer, form: str) -> tuple[bytes, str]:
    """(body, media type) of a columnar answer: 'json', 'arrow' or 'parquet'."""
    if form == "json":
        body: dict[str, Any] = {"generation": answer.generation, "count": answer.count}
        for name, column in answer.columns.items():
            body["ids" if name == "id" else name] = column.to_list()
        return orjson.dumps(body), JSON
    arrays = {name: column.to_arrow() for name, column in answer.columns.items()}
    table = pa.table(arrays).replace_schema_metadata(
        {"generation": str(answer.generation), "count": str(answer.count)}
    )
    sink = pa.BufferOutputStream()
    if form == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes(), ARROW
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes(), PARQUET
