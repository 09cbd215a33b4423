"""Migrations: upgrade and downgrade both work, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect, text

from api.db import migrate
from api.db.models import Base
from tests.conftest import create_database, drop_database

TABLES = {
    "grid_level",
    "grid_kind",
    "generation",
    "generation_activation",
    "grid",
    "building",
    "monitoring_point",
    "staff",
    "staff_role_kind",
    "staff_assignment",
    "event_category",
    "event",
    "event_history",
    "api_token",
    "audit_log",
}


def test_upgrade_downgrade_upgrade(admin_url):
    url = create_database(admin_url, "wangge_test_migrations")
    engine = create_engine(url)
    try:
        migrate.upgrade(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert migrate.current_revision(engine) == migrate.head_revision(url)
        with engine.connect() as connection:
            levels = (
                connection.execute(text("SELECT name FROM grid_level ORDER BY rank"))
                .scalars()
                .all()
            )
        assert levels == ["street", "community", "grid", "micro_grid"]

        migrate.downgrade(url, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        assert migrate.current_revision(engine) is None

        migrate.upgrade(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
        drop_database(admin_url, "wangge_test_migrations")


def test_models_match_migrations(demo_engine):
    with demo_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": alembic_helpers.include_object}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_one_code_per_generation_is_enforced(engine):
    """The exclusion constraint refuses a second row for a code in an overlapping generation."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    with (
        pytest.raises(IntegrityError, match="grid_code_generation_excl"),
        engine.begin() as connection,
    ):
        connection.execute(
            text(
                "INSERT INTO grid (code, name, level, geom, generation_low, generation_high) "
                "SELECT code, name, level, geom, 1, 1 FROM grid WHERE code = '320571005001001'"
            )
        )
