"""The SQLAlchemy engine, created once per process (app lifespan or CLI command)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from api.settings import Settings


def make_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.resolved_database_url(),
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        connect_args={"application_name": "wangge"},
    )
