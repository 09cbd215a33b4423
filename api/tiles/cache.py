"""An in-process LRU of rendered tiles, bounded in bytes.

Keys carry the collection's revision (the generation for grids, the draft's version for
drafts, a count and last change for the other layers), so a publish or an edit makes new keys
and the old tiles simply age out; nothing has to be invalidated by hand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class TileCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._tiles: OrderedDict[Hashable, bytes] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile

    def put(self, key: Hashable, tile: bytes) -> None:
        # Each entry is charged its bytes plus a little for the key and the dict slot.
        size = len(tile) + 200
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self.bytes -= len(old) + 200
            self._tiles[key] = tile
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, evicted = self._tiles.popitem(last=False)
                self.bytes -= len(evicted) + 200

    def __len__(self) -> int:
        return len(self._tiles)
