"""The SQLAlchemy engine, created once per process (app lifespan or CLI command)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from api.settings import Settings


def make_engine(settings: Settings, *, as_owner: bool = False) -> Engine:
    """The service's engine; `as_owner` for the few commands that change the schema or
    truncate tables (migrate, demo load)."""
    return create_engine(
        settings.resolved_owner_url() if as_owner else settings.resolved_database_url(),
        # Bound values never reach logs or error messages (they may be personal data).
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        # No JIT: the service's queries run in milliseconds, and compiling them cost more than it
        # saved (a building tile at z15: 33 → 25 ms without it; bench/ogc_tipg.py).
        connect_args={"application_name": "wangge", "options": "-c jit=off"},
    )
