"""Feature queries for OGC API Features: PostGIS writes each feature's GeoJSON text.

One query per page: PostgreSQL builds every feature (`json_build_object` for the properties,
`ST_AsGeoJSON` for the geometry, already reprojected and axis-flipped for the requested CRS), and
Python only joins the texts — no per-feature Python objects, except for the GCJ-02/BD-09
extension, whose offsets PROJ does not know (shapely, vectorised). Pages are cached by the
collection's revision (a new generation, draft version or edited row changes it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, text

from api.db.generations import generation_at
from api.ogc.collections import GEOMETRY_COLUMN, Collection, columns, id_column, source_sql
from api.ogc.crs import DEFAULT, OgcCrs
from api.ogc.params import Box, Period
from spatial.crs import transform


@dataclass(frozen=True)
class ItemsQuery:
    """A checked items request (every value bound, every identifier from the collection)."""

    limit: int
    offset: int = 0
    bbox: Box | None = None
    period: Period | None = None
    crs: OgcCrs = DEFAULT
    conditions: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # (sql, params) pairs


@dataclass(frozen=True)
class Page:
    features: list[str]  # GeoJSON text of each feature
    number_matched: int


class _Cache:
    """A small LRU of answers keyed by revision + request (thread-safe; bounded in bytes)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            self.entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        if size > self.max_bytes // 4:
            return
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = (size, value)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (old_size, _) = self.entries.popitem(last=False)
                self.bytes -= old_size

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.bytes = 0


CACHE = _Cache()


def _geometry_sql(crs: OgcCrs) -> str:
    expression = GEOMETRY_COLUMN
    if crs.chinese:
        return f"ST_AsBinary({expression})"
    if crs.srid != 4326:
        expression = f"ST_Transform({expression}, {int(crs.srid)})"
    if crs.lat_first:
        expression = f"ST_FlipCoordinates({expression})"
    # Options 0: no legacy "crs" member in the geometry (RFC 7946; Content-Crs says the CRS).
    return f"ST_AsGeoJSON({expression}, {int(crs.digits)}, 0)"


def _head_sql(collection: Collection) -> str:
    """'{"type":"Feature","id":…,"properties":{…},"geometry":' for one row."""
    pairs = ", ".join(f"'{name}', {sql}" for name, sql in columns(collection).items())
    return (
        '\'{"type":"Feature","id":\' || to_json('
        + id_column(collection)
        + ")::text || ',\"properties\":' || json_build_object("
        + pairs
        + ")::text || ',\"geometry\":'"
    )


def _box_sql(box: Box) -> tuple[str, dict[str, Any]]:
    params = {"bx0": box.minx, "by0": box.miny, "bx1": box.maxx, "by1": box.maxy}
    envelope = "ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, 4326)"
    if box.srid != 4326:
        # A projected box is curved in degrees: densify its edges before reprojecting it.
        params["bsrid"] = box.srid
        params["bseg"] = max(box.maxx - box.minx, box.maxy - box.miny, 1.0) / 16
        envelope = (
            "ST_Transform(ST_Segmentize(ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, "
            "CAST(:bsrid AS integer)), CAST(:bseg AS float8)), 4326)"
        )
    column = GEOMETRY_COLUMN
    return f"{column} && {envelope} AND ST_Intersects({column}, {envelope})", params


def _period_sql(collection: Collection, period: Period) -> tuple[str, dict[str, Any]]:
    if collection.kind != "events":
        return "", {}
    # Events show reported_at in whole seconds: an instant or interval selects what is shown
    # (shown ≥ start ⇔ reported_at ≥ start rounded up; shown ≤ end ⇔ reported_at < end's second
    # + 1 s), so `datetime=<a feature's reported_at>` finds that feature. Range bounds keep the
    # reported_at index usable.
    clauses, params = [], {}
    if period.start is not None:
        start = period.start.replace(microsecond=0)
        if start < period.start:
            start += timedelta(seconds=1)
        clauses.append("t.reported_at >= :dt_start")
        params["dt_start"] = start
    if period.end is not None:
        try:
            params["dt_end"] = period.end.replace(microsecond=0) + timedelta(seconds=1)
            clauses.append("t.reported_at < :dt_end")
        except OverflowError:  # the last second of year 9999: no upper bound
            pass
    return " AND ".join(clauses), params


def generation_for(connection: Connection, collection: Collection, period: Period | None) -> Any:
    """The generation a grid collection answers for `datetime`: the one active at the instant,
    or at the end of an interval (an open end means now). None: no generation was active then."""
    if collection.kind != "grids" or period is None:
        return collection.generation
    moment = period.end if period.end is not None else datetime.now(UTC)
    try:
        return generation_at(connection, moment)
    except LookupError:
        return None


def _where(
    connection: Connection, collection: Collection, query: ItemsQuery
) -> tuple[str, dict[str, Any]] | None:
    generation = generation_for(connection, collection, query.period)
    if generation is None and collection.kind == "grids":
        return None  # no generation was active at that time: nothing matches
    source, params = source_sql(collection, generation)
    clauses = [source]
    if query.bbox is not None:
        clause, values = _box_sql(query.bbox)
        clauses.append(clause)
        params.update(values)
    if query.period is not None:
        clause, values = _period_sql(collection, query.period)
        if clause:
            clauses.append(clause)
            params.update(values)
    for condition, bound in query.conditions:
        clauses.append(condition)
        params.update(dict(bound))
    return " AND ".join(clauses), params


def items(connection: Connection, collection: Collection, query: ItemsQuery, revision: str) -> Page:
    """One page of features (GeoJSON texts) and how many match in all."""
    key = ("items", collection.id, revision, query)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    where = _where(connection, collection, query)
    if where is None:
        return Page([], 0)
    source, params = where
    order = id_column(collection)
    # The page's rows are chosen first (by row address) and only they are turned into JSON:
    # PostgreSQL would otherwise build the JSON of every row OFFSET skips (4.6× slower at 19,000).
    # Events are partitioned by month, and a row address is unique only within its partition:
    # they are chosen by id (the leading column of their key) instead.
    pick = order if collection.kind == "events" else "t.ctid"
    rows = connection.execute(
        text(
            f"SELECT {_head_sql(collection)} AS head, {_geometry_sql(query.crs)} AS geometry "
            f"FROM {source} AND {pick} = ANY(ARRAY(SELECT {pick} FROM {source} "
            f"ORDER BY {order} LIMIT :lim OFFSET :off)) ORDER BY {order}"
        ),
        {**params, "lim": query.limit, "off": query.offset},
    ).all()
    features = _join(rows, query.crs)
    if len(features) < query.limit and (features or query.offset == 0):
        matched = query.offset + len(features)  # the last page: no count needed
    else:
        matched = int(
            connection.execute(text(f"SELECT count(*) FROM {source}"), params).scalar_one()
        )
    page = Page(features, matched)
    CACHE.put(key, page, sum(len(f) for f in features) + 200)
    return page


def _join(rows: Sequence[Any], crs: OgcCrs) -> list[str]:
    if not crs.chinese:
        return [f"{head}{geometry or 'null'}}}" for head, geometry in rows]
    wkb = [bytes(r.geometry) if r.geometry is not None else None for r in rows]
    shapes = shapely.from_wkb(np.array(wkb, dtype=object))
    present = ~shapely.is_missing(shapes)
    if present.any():
        shapes[present] = transform(shapes[present], "EPSG:4326", crs.chinese)
    texts = shapely.to_geojson(shapes)
    return [f"{head}{texts[i] if present[i] else 'null'}}}" for i, (head, _) in enumerate(rows)]


def item(
    connection: Connection, collection: Collection, feature_id: str, crs: OgcCrs
) -> str | None:
    """One feature's GeoJSON text, or None when there is no such feature."""
    key_value: Any = feature_id
    if collection.kind == "events":
        if not (feature_id.isascii() and feature_id.isdigit()) or len(feature_id) > 18:
            return None
        key_value = int(feature_id)
    source, params = source_sql(collection)
    rows = connection.execute(
        text(
            f"SELECT {_head_sql(collection)} AS head, {_geometry_sql(crs)} AS geometry "
            f"FROM {source} AND {id_column(collection)} = :fid LIMIT 1"
        ),
        {**params, "fid": key_value},
    ).all()
    return _join(rows, crs)[0] if rows else None


def extent(connection: Connection, collection: Collection, revision: str) -> dict[str, Any]:
    """Spatial (CRS84) and temporal extent of a collection, cached by its revision."""
    key = ("extent", collection.id, revision)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    source, params = source_sql(collection)
    box = connection.execute(
        text(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            f"FROM (SELECT ST_Extent({GEOMETRY_COLUMN}) AS e FROM {source}) s"
        ),
        params,
    ).one()
    answer: dict[str, Any] = {}
    if box[0] is not None:
        answer["spatial"] = {
            "bbox": [[round(float(v), 7) for v in box]],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        }
    interval = _temporal(connection, collection, source, params)
    if interval is not None:
        answer["temporal"] = {
            "interval": [interval],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    CACHE.put(key, answer, 500)
    return answer


def item_count(connection: Connection, collection: Collection, revision: str) -> int:
    """How many features a collection holds (GDAL reads it as `itemCount`), cached by revision."""
    key = ("count", collection.id, revision)
    cached = CACHE.get(key)
    if cached is not None:
        return int(cached)
    source, params = source_sql(collection)
    count = int(connection.execute(text(f"SELECT count(*) FROM {source}"), params).scalar_one())
    CACHE.put(key, count, 100)
    return count


def _temporal(
    connection: Connection, collection: Collection, source: str, params: dict[str, Any]
) -> list[str | None] | None:
    if collection.kind == "events":
        row = connection.execute(
            text(f"SELECT min(t.reported_at), max(t.reported_at) FROM {source}"), params
        ).one()
    elif collection.kind == "grids":
        # The active generation: valid from its (last) activation, open-ended.
        row = connection.execute(
            text(
                "SELECT max(activated_at), NULL FROM generation_activation WHERE generation_id = :g"
            ),
            {"g": collection.generation},
        ).one()
    else:
        return None
    if row[0] is None:
        return None
    return [_stamp(row[0]), _stamp(row[1]) if row[1] is not None else None]


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
