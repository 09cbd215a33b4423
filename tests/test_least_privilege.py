"""The service runs with least privilege: a role that reads and writes rows but cannot change
the schema, secrets in files only its owner reads, bound values kept out of error text, and
only its own host names answered."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from api.db.engine import make_engine
from api.settings import Settings


def test_service_role_reads_and_writes_rows_but_not_the_schema(settings):
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            role = connection.execute(
                text(
                    "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
                )
            ).one()
            assert role.rolname == "wangge_app"
            assert (role.rolsuper, role.rolcreaterole, role.rolcreatedb) == (False, False, False)
            assert connection.execute(text("SELECT count(*) FROM grid")).scalar() > 1000
        for statement in (
            "DROP TABLE event_history",
            "CREATE TABLE stolen (x int)",
            "ALTER TABLE api_token ADD COLUMN x int",
            "TRUNCATE grid",
            "UPDATE alembic_version SET version_num = 'x'",
            # Review: the audit trail was erasable and the code rules editable by the service.
            "DELETE FROM audit_log",
            "UPDATE event_history SET note = 'x'",
            "DELETE FROM generation_activation",
            "UPDATE grid_level SET code_pattern = '.*'",
            "INSERT INTO event_category (code, kind, name_zh) VALUES ('Z9', 'event', 'x')",
            "CREATE EXTENSION IF NOT EXISTS file_fdw",
        ):
            with engine.begin() as connection, pytest.raises(DBAPIError) as refused:
                connection.execute(text(statement))
            assert "permission denied" in str(refused.value) or "must be" in str(refused.value), (
                statement
            )
    finally:
        engine.dispose()


def test_bound_values_stay_out_of_error_messages(settings):
    engine = make_engine(settings)
    try:
        with engine.connect() as connection, pytest.raises(DBAPIError) as failed:
            connection.execute(text("SELECT CAST(:phone AS text), 1 / 0"), {"phone": "13900001111"})
        assert "division by zero" in str(failed.value)
        assert "13900001111" not in str(failed.value)  # SQLAlchemy would append the parameters
    finally:
        engine.dispose()


def test_cluster_password_files_are_private():
    cluster = Settings(database_url=None).cluster
    files = [
        cluster.password_file_of(r) for r in (cluster.user, cluster.owner_user, cluster.app_user)
    ]
    assert len(files) == 3 and all(f.exists() for f in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_owner_is_not_a_superuser_either(database_url):
    cluster = Settings(database_url=None).cluster
    from tests.conftest import as_role

    engine = create_engine(as_role(database_url, cluster.owner_user))
    try:
        with engine.connect() as connection:
            assert (
                connection.execute(
                    text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                ).scalar()
                is False
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io"])
def test_foreign_host_headers_are_refused(client, host):
    """DNS rebinding: a page on another site that points its name at 127.0.0.1."""
    response = client.get("/api/v1/levels", headers={"Host": host})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_host",
        "message": response.json()["error"]["message"],
        "where": "header.Host",
    }


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "[::1]:8000"])
def test_own_host_names_are_served(client, host):
    assert client.get("/api/v1/levels", headers={"Host": host}).status_code == 200


OWNER_FUNCTIONS = {
    "event_partition_ensure": "SELECT event_partition_ensure(now())",
    "event_partitions_maintain": "SELECT * FROM event_partitions_maintain(0)",
    "level_admin_save": (
        "SELECT level_admin_save('forged', 'level.change', 'grid', 'grid', 3, '网格', "
        "'(a+)+$', true, NULL, NULL, NULL, '{}')"
    ),
    "level_admin_remove": "SELECT level_admin_remove('forged', 'micro_grid', '{}')",
}


def test_owner_functions_are_executable_by_the_service_role_only(engine, settings):
    """Review F6: the owner's SECURITY DEFINER functions were executable by PUBLIC."""
    from tests.conftest import _roles

    if _roles() is None:
        pytest.skip("needs the project's cluster roles")
    with engine.connect() as connection:
        signatures = dict(
            connection.execute(
                text(
                    "SELECT p.proname, p.oid::regprocedure::text FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'public' AND p.proname = ANY(:names)"
                ),
                {"names": list(OWNER_FUNCTIONS)},
            ).all()
        )
        assert sorted(signatures) == sorted(OWNER_FUNCTIONS)  # 4 functions
        for signature in signatures.values():
            allowed = connection.execute(
                text("SELECT has_function_privilege('public', :f, 'EXECUTE')"), {"f": signature}
            ).scalar()
            assert allowed is False, signature
    # A role that can connect but was granted nothing may not call them.
    stranger = f"wangge_test_stranger_{os.getpid()}"
    with engine.begin() as connection:
        connection.execute(text(f'DROP ROLE IF EXISTS "{stranger}"'))
        connection.execute(text(f'CREATE ROLE "{stranger}" NOLOGIN'))
    try:
        refused = 0
        for name, call in OWNER_FUNCTIONS.items():
            with engine.begin() as connection, pytest.raises(DBAPIError) as denied:
                connection.execute(text(f'SET LOCAL ROLE "{stranger}"'))
                connection.execute(text(call))
            assert "permission denied for function " + name in str(denied.value), name
            refused += 1
        assert refused == 4
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{stranger}"'))
    service = make_engine(settings)
    try:
        with service.connect() as connection:
            role = connection.execute(text("SELECT current_user")).scalar()
            for signature in signatures.values():
                assert connection.execute(
                    text("SELECT has_function_privilege(current_user, :f, 'EXECUTE')"),
                    {"f": signature},
                ).scalar(), signature
            months = connection.execute(text(OWNER_FUNCTIONS["event_partitions_maintain"])).all()
            assert all(name.startswith("event_") for (name,) in months)
            connection.rollback()
        # The function itself refuses what api/code_patterns.py refuses cheaply (review F6:
        # the service role stored '(a+)+$'), and a band or name no API call could give.
        for bad in (
            OWNER_FUNCTIONS["level_admin_save"],
            OWNER_FUNCTIONS["level_admin_save"].replace("(a+)+$", "^(\\d)\\1$"),
            OWNER_FUNCTIONS["level_admin_save"].replace("(a+)+$", "\\d" * 101),
            OWNER_FUNCTIONS["level_admin_save"].replace("'grid', 3", "'Grid Level', 3"),
            OWNER_FUNCTIONS["level_admin_save"].replace("NULL, NULL, NULL", "5, 4, NULL"),
        ):
            with service.begin() as connection, pytest.raises(DBAPIError) as refused_call:
                connection.execute(text(bad))
            assert refused_call.value.orig.pgcode == "23514", bad  # check_violation
        # What it accepts is audited with the database role that called, whatever the actor.
        with service.begin() as connection:
            connection.execute(
                text(OWNER_FUNCTIONS["level_admin_save"].replace("(a+)+$", "^\\d{15}$"))
            )
            audit = connection.execute(
                text(
                    "SELECT actor, details FROM audit_log WHERE entity = 'grid_level' "
                    "ORDER BY id DESC LIMIT 1"
                )
            ).one()
            assert audit.actor == "forged" and audit.details["db_role"] == role
            connection.rollback()
    finally:
        service.dispose()
