"""Serving a tile: resolve the collection, key it by its revision, render or reuse it.

A tile's ETag is derived from what decides its bytes (collection, revision, address, datum,
this module's FORMAT), so a conditional request is answered 304 after one cheap revision query,
without rendering or even looking in the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from api.errors import InvalidInput
from api.ogc.collections import Collection, resolve, revision
from api.privacy import Caller
from api.tiles.cache import TileCache
from api.tiles.matrix import MAX_ZOOM, TileAddress, min_zoom
from api.tiles.query import collection_bbox, render_tile

FORMAT = "mvt-1"  # bump when the tile query changes what a revision's tiles hold
DATUMS = ("gcj02",)  # `crs` values besides the default (WGS84 data on Web Mercator)


@dataclass(frozen=True)
class Tile:
    collection: Collection
    address: TileAddress
    etag: str
    body: bytes | None  # gzipped MVT; b"": empty; None: not rendered (the caller's copy is current)


def datum(crs: str | None, where: str = "query.crs") -> str | None:
    """The extension datum asked for (`gcj02`) or None; anything else is refused."""
    if crs is None or crs == "":
        return None
    if crs.lower() in DATUMS:
        return crs.lower()
    raise InvalidInput(
        f"瓦片只支持 crs=gcj02（高德底图）这一扩展取值，收到 {crs}",
        code="unknown_crs",
        where=where,
    )


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


class TileService:
    """Tiles and collection extents of one app (its in-process caches)."""

    def __init__(self, cache_bytes: int) -> None:
        self.cache = TileCache(cache_bytes)
        self._extents: OrderedDict[tuple[str, str], tuple[float, ...] | None] = OrderedDict()
        self._lock = threading.Lock()
        # Grid collections resolved under a generation: a cached tile of the active generation
        # is answered from memory alone (no connection, no query: `cached`).
        self._grids: dict[tuple[str, int], Collection] = {}

    def cached(
        self,
        collection_id: str,
        address: TileAddress,
        crs: str | None,
        generation: int,
        if_none_match: str | None,
    ) -> Tile | None:
        """A grid tile of the active `generation` answered without the database, when this
        collection was resolved under it before and the tile (or the client's copy) is current;
        None sends the request the long way (`tile`)."""
        collection = self._grids.get((collection_id, generation))
        if collection is None:
            return None
        key, etag = _key(collection, f"g{generation}", address, crs)
        if etag_matches(if_none_match, etag):
            return Tile(collection, address, etag, None)
        body = self.cache.get(key)
        return None if body is None else Tile(collection, address, etag, body)

    def tile(
        self,
        connection: Connection,
        caller: Caller,
        collection_id: str,
        address: TileAddress,
        crs: str | None,
        if_none_match: str | None,
    ) -> Tile:
        collection = resolve(connection, collection_id, caller)
        if collection.kind == "grids" and collection.generation is not None:
            with self._lock:
                if len(self._grids) > 256:
                    self._grids.clear()
                self._grids[(collection.id, collection.generation)] = collection
        key, etag = _key(collection, revision(connection, collection), address, crs)
        if etag_matches(if_none_match, etag):
            return Tile(collection, address, etag, None)
        body = self.cache.get(key)
        if body is None:
            # Below a collection's coarsest zoom a tile is empty by definition (no query).
            visible = address.z >= min_zoom(collection)
            raw = render_tile(connection, collection, address, crs == "gcj02") if visible else b""
            # Kept gzipped: compressed once, served as it is to every client that accepts gzip
            # (all browsers and GDAL), and the cache holds about three times more tiles.
            body = gzip.compress(raw, compresslevel=6, mtime=0) if raw else b""
            self.cache.put(key, body)
        return Tile(collection, address, etag, body)

    def extent(
        self, connection: Connection, collection: Collection
    ) -> tuple[float, float, float, float] | None:
        """The collection's lon/lat bounds, computed once per revision."""
        key = (collection.id, revision(connection, collection))
        with self._lock:
            if key in self._extents:
                found = self._extents[key]
                return None if found is None else (found[0], found[1], found[2], found[3])
        bbox = collection_bbox(connection, collection)
        with self._lock:
            self._extents[key] = bbox
            while len(self._extents) > 256:
                self._extents.popitem(last=False)
        return bbox


def _key(
    collection: Collection, current: str, address: TileAddress, crs: str | None
) -> tuple[tuple[Any, ...], str]:
    """The cache key of a tile and its strong ETag: what decides its bytes."""
    key = (collection.id, current, address, crs, FORMAT)
    return key, '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'


def max_zoom(collection: Collection) -> int:
    """The deepest zoom tiles are generated at (clients over-zoom past it)."""
    return max(MAX_ZOOM, min_zoom(collection))
