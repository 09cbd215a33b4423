"""The in-memory lookup index of every worker process, kept current by LISTEN/NOTIFY.

A publish (`api.db.generations.activate`) sends NOTIFY wangge_generation in its transaction;
each worker's listener thread wakes on commit, builds the new index completely, then swaps
one reference, so a request sees either the old generation or the new one, never a mix.
A timed re-check every few seconds covers a lost connection or a missed notification.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, Engine

from api.db import catalogue
from api.db import gazetteer as gazetteer_rows
from api.db import indexes as index_rows
from api.db.generations import NoActiveGeneration
from api.geocode.index import Gazetteer
from api.limits import HeavyWork
from api.lookup import shared
from spatial.lookup import GridIndex, GridRecord

log = logging.getLogger("wangge.lookup")
CHANNEL = "wangge_generation"
RECHECK_SECONDS = 5.0
CACHED_GENERATIONS = 8


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Builds allocate ~10⁶ objects and no garbage cycles: the collector's passes over them
    cost a fifth of a district's build time for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_grid_index(connection: Connection, generation: int) -> GridIndex:
    rows = index_rows.generation_grids(connection, generation)
    records = [GridRecord(r.code, r.name, r.level, r.rank, r.parent_code) for r in rows]
    geometries = (
        shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.array([], dtype=object)
    )
    return GridIndex(generation, records, np.asarray(geometries, dtype=object))


def load_staff(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    staff: dict[str, list[dict[str, Any]]] = {}
    for item in index_rows.staff_on_duty(connection):
        staff.setdefault(item.pop("grid_code"), []).append(item)
    return staff


class IndexStore:
    """Current and recently used generations' indexes, the activation timeline and staff."""

    def __init__(
        self, engine: Engine, heavy: HeavyWork | None = None, cached: int = CACHED_GENERATIONS
    ) -> None:
        self._engine = engine
        self._heavy = heavy or HeavyWork(2)
        self._cached = cached
        self._lock = threading.Lock()
        self._building: dict[int, threading.Event] = {}
        self.builds = 0  # indexes of earlier generations built so far (for tests and metrics)
        self._indexes: OrderedDict[int, GridIndex] = OrderedDict()
        self._timeline: list[tuple[datetime, int]] = []
        self._active: GridIndex | None = None
        self.staff: dict[str, list[dict[str, Any]]] = {}
        self.gazetteer: Gazetteer | None = None
        self._stop = threading.Event()
        self._wake_read, self._wake_write = os.pipe()  # stop() wakes the listener's select()
        self._thread: threading.Thread | None = None
        self.refreshed_at: datetime | None = None
        self._register: tuple[Any, ...] = ()
        self._staff_stamp: str | None = "unread"
        self._pending_since: float | None = None  # managed: when a change was first seen
        adopted = shared.preloaded()  # forked by `wangge serve --workers N`: the master's index
        if adopted is not None:
            self._active, self.gazetteer = adopted.index, adopted.gazetteer
            self._register = adopted.register
            self.staff, self._staff_stamp = adopted.staff, adopted.staff_stamp

    def snapshot(self) -> shared.Snapshot:
        """The active index and register, for the serving master to hand to its workers."""
        if self._active is None or self.gazetteer is None:
            raise NoActiveGeneration("no generation is active yet")
        return shared.Snapshot(
            self._active, self.gazetteer, self._register, self.staff, self._staff_stamp
        )

    # --- reading -----------------------------------------------------------------------------

    def active(self) -> GridIndex:
        index = self._active
        if index is None:
            raise NoActiveGeneration("no generation is active yet")
        return index

    def active_path(self, code: str | None) -> list[str]:
        """Root→leaf codes of a grid in the active generation ([] if it is not there)."""
        index = self._active
        if code is None or index is None or code not in index.by_code:
            return []
        return [record.code for record in index.path(index.by_code[code])]

    def descendants(self, code: str) -> list[str]:
        """A grid of the active generation and every grid below it ([] if it is not there)."""
        index = self._active
        if index is None or code not in index.by_code:
            return []
        children: dict[str | None, list[str]] = {}
        for record in index.records:
            children.setdefault(record.parent_code, []).append(record.code)
        found, stack = [], [code]
        while stack:
            current = stack.pop()
            found.append(current)
            stack.extend(children.get(current, []))
        return found

    def at(self, when: datetime | None) -> GridIndex:
        """The index of the generation active at `when` (now when None)."""
        if when is None:
            return self.active()
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        timeline = self._timeline
        position = bisect_right([t for t, _ in timeline], when)
        if position == 0:
            raise NoActiveGeneration("no generation was active at that time")
        return self.generation(timeline[position - 1][1])

    def generation(self, generation: int) -> GridIndex:
        """The index of any generation; earlier ones are built on demand, once.

        Single flight: concurrent requests for the same generation wait for one build instead
        of each building their own, and builds run in a bounded slot (HeavyWork), so cycling
        `at=` over many generations cannot pile up index builds.
        """
        active = self._active
        if active is not None and active.generation == generation:
            return active
        with self._lock:
            if generation in self._indexes:
                self._indexes.move_to_end(generation)
                return self._indexes[generation]
            building = self._building.get(generation)
            leader = building is None
            if leader:
                building = self._building[generation] = threading.Event()
        assert building is not None
        if not leader:
            building.wait(timeout=120)
            with self._lock:
                if generation in self._indexes:
                    return self._indexes[generation]
            return self.generation(generation)  # the leader failed: try again
        try:
            with self._heavy.slot(), self._engine.connect() as connection, _no_cyclic_gc():
                index = load_grid_index(connection, generation)
                self.builds += 1
            with self._lock:
                self._indexes[generation] = index
                while len(self._indexes) > self._cached:
                    self._indexes.popitem(last=False)
            return index
        finally:
            with self._lock:
                self._building.pop(generation, None)
            building.set()

    # --- refreshing --------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload the timeline; rebuild the index if the active generation changed."""
        with self._engine.connect() as connection:
            timeline = index_rows.activation_timeline(connection)
            active_id = timeline[-1][1] if timeline else None
            changed = active_id is not None and (
                self._active is None or self._active.generation != active_id
            )
            staff_stamp = index_rows.staff_stamp(connection)
            # Unchanged: keep the very object (shared with the master, if forked).
            staff = self.staff if staff_stamp == self._staff_stamp else load_staff(connection)
            # The gazetteer: buildings, compounds, roads, house numbers, POIs, aliases, and the
            # active generation's streets and communities.
            register = gazetteer_rows.gazetteer_stamp(connection)
            reload = self.gazetteer is None or register != self._register
            if not (changed or reload):
                self._pending_since = None
            elif self._left_to_master():
                changed = reload = False  # keep serving the whole old generation meanwhile
                register = self._register
            with _no_cyclic_gc():
                index = (
                    load_grid_index(connection, active_id)
                    if changed and active_id is not None
                    else None
                )
                gazetteer = (
                    Gazetteer.build(gazetteer_rows.load_gazetteer(connection))
                    if reload
                    else self.gazetteer
                )
        self._register = register
        # Swap complete objects only: readers never see a half-built generation.
        self._timeline = timeline
        self.staff, self._staff_stamp = staff, staff_stamp
        reloaded = index is not None or gazetteer is not self.gazetteer
        self.gazetteer = gazetteer
        if index is not None:
            self._active = index
            log.info("lookup index now at generation %s", index.generation)
        if reloaded:
            self._pending_since = None
            # Index and register live until the next publish: take them out of the cyclic GC's
            # scans, whose full passes over ~10⁶ long-lived objects stall requests for 100s of ms.
            gc.collect()
            gc.freeze()
        elif active_id is None:
            self._active = None
        self.refreshed_at = datetime.now(UTC)
        return changed

    def _left_to_master(self) -> bool:
        """A managed worker leaves a rebuild to the master, which replaces it within seconds;
        only if that has not happened after HANDOVER_SECONDS does it build by itself."""
        if not shared.managed() or self._active is None or self.gazetteer is None:
            return False
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
            log.info("generation or register changed: waiting for the master to replace us")
        return now - self._pending_since < shared.HANDOVER_SECONDS

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(
            target=self._listen, name="wangge-index-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_write, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self._engine.raw_connection()
                try:
                    dbapi: Any = raw.dbapi_connection
                    dbapi.autocommit = True
                    with dbapi.cursor() as cursor:
                        # The generation channel last: pg_stat_activity shows a listener by
                        # its last statement, `LISTEN wangge_generation` (tests, operators).
                        cursor.execute(f"LISTEN {catalogue.LEVELS_CHANNEL}")
                        cursor.execute(f"LISTEN {CHANNEL}")
                    self.refresh()  # anything published while we were not listening
                    while not self._stop.is_set():
                        ready, _, _ = select.select(
                            [dbapi, self._wake_read], [], [], RECHECK_SECONDS
                        )
                        if self._stop.is_set():
                            break
                        if ready:
                            dbapi.poll()
                            if any(n.channel == catalogue.LEVELS_CHANNEL for n in dbapi.notifies):
                                catalogue.forget_levels()  # an admin changed the levels
                            dbapi.notifies.clear()
                        self.refresh()
                finally:
                    raw.close()
            except Exception:  # keep serving the last good index; retry the connection
                log.exception("lookup index listener failed; retrying")
                self._stop.wait(1.0)
