"""Reads from a PostgreSQL streaming replica (WANGGE_REPLICA_URL), else from the primary.

The read-heavy endpoints — KPIs, exports, vector tiles, OGC items — take their connection
from here. Everything that writes, and every read that must see the caller's own write (a
draft's grids while it is edited, an event just reported, tokens), stays on the primary
(`api.deps.ConnectionDep`).

What a reader sees: the replica's committed state, behind the primary by the replication lag
(milliseconds on a healthy LAN, longer while the standby replays a large write or pauses for a
conflicting query). Caches keyed by revision stay correct: a tile's or a collection's revision
(`layer_revision`, the generation) is read from the same replica connection as its data, so
old data is never filed under a new revision nor the reverse. The lookup index is not read
here: it follows the primary's LISTEN/NOTIFY (a standby delivers no NOTIFY).

A replica that cannot be reached is not an error for the caller: the read goes to the primary
(one log line), and the replica is tried again after RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from api.db.engine import make_replica_engine
from api.settings import Settings

log = logging.getLogger(__name__)

RETRY_SECONDS = 10.0
# Open drafts are edited through OGC transactions and read back at once: their collections,
# items and tiles are read from the primary (read-your-write).
_DRAFT_COLLECTION = re.compile(r"^drafts-[0-9]{1,9}-grids$")
_lock = threading.Lock()


class ReadSource:
    """Where one app's replica-eligible reads go: the replica while it answers, else the
    primary."""

    def __init__(self, primary: Engine, replica: Engine | None) -> None:
        self.primary = primary
        self.replica = replica
        self._down_until = 0.0

    @property
    def replica_up(self) -> bool:
        return self.replica is not None and time.monotonic() >= self._down_until

    def connect(self, *, primary: bool = False) -> Connection:
        """A connection for reading: the replica's when configured and reachable (a standby
        refuses every write), else the primary's."""
        if primary:
            return self.primary.connect()
        if self.replica is not None and self.replica_up:
            try:
                return self.replica.connect()
            except DBAPIError as error:
                self._mark_down(error)
        # Read-only on the primary too, so a path that wrote would fail here as on a standby.
        return self.primary.connect().execution_options(postgresql_readonly=True)

    def engine(self) -> Engine:
        """The engine to read from, for code that opens its own connections (exports): the
        replica's if a connection to it opens now, else the primary's."""
        if self.replica is not None and self.replica_up:
            try:
                with self.replica.connect():
                    return self.replica
            except DBAPIError as error:
                self._mark_down(error)
        return self.primary

    def dispose(self) -> None:
        if self.replica is not None:
            self.replica.dispose()

    def _mark_down(self, error: Exception) -> None:
        self._down_until = time.monotonic() + RETRY_SECONDS
        log.warning(
            "read replica unavailable (%s): reading from the primary, retrying in %.0f s",
            error.__class__.__name__,
            RETRY_SECONDS,
        )


def open_read_source(settings: Settings, primary: Engine) -> ReadSource:
    return ReadSource(primary, make_replica_engine(settings))


def read_source(app: FastAPI) -> ReadSource:
    """The app's read source, made on first use from its settings and primary engine (or set
    by the lifespan: `app.state.read_source = open_read_source(settings, engine)`)."""
    state = app.state
    source: ReadSource | None = getattr(state, "read_source", None)
    if source is None or source.primary is not state.engine:
        with _lock:
            source = getattr(state, "read_source", None)
            if source is None or source.primary is not state.engine:
                if source is not None:
                    source.dispose()  # an earlier lifespan of the same app
                source = state.read_source = open_read_source(state.settings, state.engine)
    return source


def replica_status(source: ReadSource) -> dict[str, Any]:
    """Whether the replica answers, and how far behind the primary it replays (for /ready)."""
    if source.replica is None:
        return {"status": "not_configured"}
    try:
        with source.replica.connect() as connection:
            row = connection.execute(
                text(
                    # Caught up (all WAL received is replayed): no lag, however long the
                    # primary has been idle since its last transaction.
                    "SELECT pg_is_in_recovery() AS standby, CASE WHEN "
                    "pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 ELSE "
                    "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag"
                )
            ).one()
    except DBAPIError as error:
        return {"status": f"unreachable: {error.__class__.__name__}", "reads_from": "primary"}
    lag = None if row.lag is None else round(max(0.0, row.lag), 3)
    return {
        "status": "ok" if row.standby else "not_a_standby",
        "reads_from": "replica" if source.replica_up else "primary",
        "replay_lag_seconds": lag,
    }


def is_draft_collection(collection_id: str | None) -> bool:
    return collection_id is not None and _DRAFT_COLLECTION.match(collection_id) is not None


def _collection_of(request: Request) -> str | None:
    params = request.path_params
    found = params.get("collectionId", params.get("collection_id"))
    return None if found is None else str(found)


def replica_connection(request: Request) -> Iterator[Connection]:
    """A read connection from the replica when configured (drafts: the primary)."""
    primary = is_draft_collection(_collection_of(request))
    with read_source(request.app).connect(primary=primary) as connection:
        yield connection


def replica_engine(request: Request) -> Engine:
    return read_source(request.app).engine()


ReplicaConnectionDep = Annotated[Connection, Depends(replica_connection)]
ReplicaEngineDep = Annotated[Engine, Depends(replica_engine)]
