"""The SQLAlchemy engines, created once per process (app lifespan or CLI command)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from api.settings import Settings

# Seconds a replica that does not answer may hold a request before it is read from the primary.
REPLICA_CONNECT_TIMEOUT = 2


def make_engine(settings: Settings, *, as_owner: bool = False) -> Engine:
    """The service's engine; `as_owner` for the few commands that change the schema or
    truncate tables (migrate, demo load)."""
    return create_engine(
        settings.resolved_owner_url() if as_owner else settings.resolved_database_url(),
        **_options("wangge"),
    )


def make_replica_engine(settings: Settings) -> Engine | None:
    """The read replica's engine (WANGGE_REPLICA_URL), None when none is configured. The same
    options as the primary's, named `wangge-replica` in pg_stat_activity, with a short connect
    timeout so that a replica that is down costs a request two seconds at most (api/replica.py
    then reads from the primary)."""
    if not settings.replica_url:
        return None
    url = make_url(settings.replica_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg2")
    options = _options("wangge-replica")
    options["connect_args"].update(
        connect_timeout=REPLICA_CONNECT_TIMEOUT,
        # A replica cut off mid-query (network partition, host gone) must not hold a request and
        # a pool thread until the kernel gives up minutes later: unacknowledged data fails the
        # connection after 5 s and idle ones are probed. A standby that is frozen but whose
        # kernel still acknowledges (SIGSTOP) is not detected by these: see docs/SCALING.md.
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=2,
        tcp_user_timeout=5000,
    )
    return create_engine(url, **options)


def _options(application_name: str) -> dict[str, Any]:
    return {
        # Bound values never reach logs or error messages (they may be personal data).
        "hide_parameters": True,
        "pool_pre_ping": True,
        "pool_size": 8,
        "max_overflow": 8,
        # No JIT: the service's queries run in milliseconds, and compiling them cost more than
        # it saved (a building tile at z15: 33 → 25 ms without it; bench/ogc_tipg.py).
        "connect_args": {"application_name": application_name, "options": "-c jit=off"},
    }
