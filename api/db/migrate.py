"""Run Alembic from code, so no alembic.ini is needed and the URL comes from settings."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text

from api.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # Alembic's ini interpolation treats % specially; passwords may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


CATALOGUES = ("grid_level", "grid_kind", "staff_role_kind", "event_category")
# Bumped only by the schema's own trigger (migrations 0007), never written by the service.
COUNTERS = ("layer_revision",)
APPEND_ONLY = ("audit_log", "event_history", "generation_activation", "grid_lineage")
# The owner's SECURITY DEFINER functions the service calls (migrations 0008: event months,
# 0009: the level catalogue). PostgreSQL lets PUBLIC execute a new function; these run with the
# owner's rights, so only the service role may (a function of a later revision is skipped).
SERVICE_FUNCTIONS = (
    "event_partition_ensure",
    "event_partitions_maintain",
    "level_admin_save",
    "level_admin_remove",
)


def _service_functions(connection: Connection) -> list[str]:
    """The signatures (e.g. `level_admin_remove(text,text,jsonb)`) of SERVICE_FUNCTIONS present,
    from the catalogue."""
    return list(
        connection.execute(
            text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' AND p.proname = ANY(:names) ORDER BY 1"
            ),
            {"names": list(SERVICE_FUNCTIONS)},
        ).scalars()
    )


def grant_service_role(owner_url: str, role: str) -> None:
    """Give the service role what the service needs and no more: rows, not the schema, and
    EXECUTE on the owner's SECURITY DEFINER functions it calls (no other role may call them).

    Run by the schema owner after every upgrade, so new tables are covered. The role is a
    setting, never a request value; it is still quoted as an identifier.
    """
    engine = create_engine(owner_url, hide_parameters=True)
    try:
        with engine.begin() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).first()
            if exists is None:
                raise LookupError(f"PostgreSQL role {role} does not exist")
            quoted = connection.dialect.identifier_preparer.quote(role)
            for statement in (
                f"GRANT USAGE ON SCHEMA public TO {quoted}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
                # The schema's version and the catalogues (levels and their code rules, kinds,
                # roles, event categories) are the owner's business.
                f"REVOKE INSERT, UPDATE, DELETE ON alembic_version, "
                f"{', '.join((*CATALOGUES, *COUNTERS))} "
                f"FROM {quoted}",
                # The audit trail and event histories are append-only for the service: a
                # compromised service cannot erase what it did.
                f"REVOKE UPDATE, DELETE ON {', '.join(APPEND_ONLY)} FROM {quoted}",
            ):
                connection.execute(text(statement))
            for signature in _service_functions(connection):
                connection.execute(text(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC"))
                connection.execute(text(f"GRANT EXECUTE ON FUNCTION {signature} TO {quoted}"))
    finally:
        engine.dispose()
