"""Fixtures: a real PostGIS for every test.

Once per session the project's cluster is started, a template database is migrated and the
demo street loaded into it. Tests that write get their own copy (CREATE DATABASE … TEMPLATE,
well under a second), so they never see each other's changes. WANGGE_TEST_ADMIN_URL points the
suite at another server instead (its user must be allowed to create databases).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from psycopg2 import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from api.app import create_app
from api.auth import Role, create_token
from api.cli import cluster
from api.db import migrate
from api.demo import load_demo
from api.settings import Settings, WorkflowSettings

# Parallel runs (two checkouts, or helpers) each set their own template name.
TEMPLATE = os.environ.get("WANGGE_TEST_TEMPLATE", "wangge_test_template")
DEMO_SEED = 20240920
FIXTURES = Path(__file__).parent / "fixtures"


def _admin_url() -> str:
    explicit = os.environ.get("WANGGE_TEST_ADMIN_URL")
    if explicit:
        return explicit
    settings = Settings(database_url=None)
    cluster.start(settings.cluster)
    return settings.cluster.url("postgres")


def _roles() -> tuple[str, str] | None:
    """(owner, service) roles of the project's cluster; None on another server, where tests
    run as the admin user."""
    if os.environ.get("WANGGE_TEST_ADMIN_URL"):
        return None
    local = Settings(database_url=None).cluster
    return local.owner_user, local.app_user


def as_role(url: str, role: str) -> str:
    """The same database as another role of the project's cluster."""
    local = Settings(database_url=None).cluster
    return (
        make_url(url)
        .set(username=role, password=local.password_file_of(role).read_text().strip())
        .render_as_string(hide_password=False)
    )


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin(url: str, statement: sql.Composable) -> None:
    connection = psycopg2.connect(_dsn(url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    _admin(
        admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    roles = _roles()
    if roles is not None:  # owned by the schema owner, as `wangge db start` makes it
        statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(roles[0]))
    _admin(admin_url, statement)
    return _with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    _admin(
        admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


@pytest.fixture(scope="session")
def template_url(admin_url: str) -> str:
    """A migrated database holding the demo street, used as the template for every test DB."""
    url = create_database(admin_url, TEMPLATE)
    roles = _roles()
    if roles is not None:
        # As deployed: PostGIS by the superuser, migrations and the demo by the owner, and the
        # service role granted rows only (the `service_url` fixture connects as it).
        _admin(url, sql.SQL("CREATE EXTENSION IF NOT EXISTS postgis"))
        _admin(url, sql.SQL("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        owner_url = as_role(url, roles[0])
        migrate.upgrade(owner_url)
        migrate.grant_service_role(owner_url, roles[1])
    else:
        owner_url = url
        migrate.upgrade(url)
    engine = create_engine(owner_url)
    load_demo(engine, DEMO_SEED, actor="tests")
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def demo_engine(template_url: str) -> Iterator[Engine]:
    """Read-only access to the demo street (tests must not write through it).

    NullPool: no idle connection may stay open, or the template cannot be copied.
    """
    engine = create_engine(template_url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def database_url(admin_url: str, template_url: str) -> Iterator[str]:
    """A private copy of the demo database for one test."""
    name = f"wangge_test_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=TEMPLATE)
    yield url
    drop_database(admin_url, name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def service_url(database_url: str) -> str:
    """The test database as the service connects to it: the least-privileged role."""
    roles = _roles()
    return as_role(database_url, roles[1]) if roles is not None else database_url


@pytest.fixture
def settings(service_url: str, database_url: str) -> Settings:
    # The app's own sweeper stays off: tests that want warnings pushed run a sweep themselves.
    return Settings(
        database_url=service_url,
        owner_database_url=database_url,
        workflow=WorkflowSettings(sweep_seconds=0),
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    """One token per role; the field_staff token covers the first grid of the demo street, the
    handler token works for the community units (社区工作站, tier 3)."""
    secrets = {}
    with engine.begin() as connection:
        for role in Role:
            grids = ("320571005001001",) if role == Role.field_staff else ()
            unit = "community" if role == Role.handler else None
            secrets[role.value] = create_token(
                connection,
                name=f"test-{role.value}",
                role=role,
                grid_codes=grids,
                unit_code=unit,
                actor="tests",
            ).secret
    return secrets


CHROMIUM = "/usr/bin/chromium"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The app under a real uvicorn on a free port of 127.0.0.1, in a thread; its base URL
    (for Chromium, GDAL, OWSLib and the other real clients)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(settings) -> Iterator[str]:
    """The app served for a real browser (see `served`)."""
    with served(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Chromium from apt, headless, one per test module (pages are tested at phone and desktop
    size in their own contexts)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()
