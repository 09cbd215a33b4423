"""Read replica (WANGGE_REPLICA_URL): a real hot standby of the test cluster, made by
`pg_basebackup -R` and started on its own port; KPIs, OGC items and tiles read from it, writes
and read-your-write go to the primary, and a stopped standby sends reads to the primary."""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.replica import read_source
from api.settings import Settings
from tests.conftest import bearer

CLUSTER = Settings(database_url=None).cluster
EVENT = {
    "source": "hotline_12345",
    "external_id": "replica-0001",
    "category_code": "E04",
    "description": "占道经营",
    "lon": 120.7395,
    "lat": 31.3025,
    "crs": "gcj02",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*command: str, env: dict[str, str] | None = None) -> None:
    """A PostgreSQL tool as the `postgres` system user when run as root (as the cluster is)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    result = subprocess.run(
        [*prefix, *command], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr or result.stdout


@dataclass
class Standby:
    """A hot standby of the test cluster on `port`, its data in `data_dir`."""

    port: int
    data_dir: Path
    log_file: Path

    def url(self, database: str, role: str | None = None) -> str:
        role = role or CLUSTER.user
        password = CLUSTER.password_file_of(role).read_text().strip()
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data_dir.parent} -c hot_standby=on "
            "-c shared_buffers=64MB -c listen_addresses=127.0.0.1"
        )
        pg_ctl = str(CLUSTER.pg_bin / "pg_ctl")
        _as_postgres(
            pg_ctl,
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "120",
            "start",
        )

    def stop(self) -> None:
        pg_ctl = str(CLUSTER.pg_bin / "pg_ctl")
        if (self.data_dir / "postmaster.pid").exists():
            _as_postgres(pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def sql(self, database: str, statement: str) -> object:
        connection = psycopg2.connect(self.url(database))
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchone()[0] if cursor.description else None
        finally:
            connection.close()

    def wait_for_database(self, database: str) -> None:
        """Until the standby has replayed the database's creation."""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.sql(database, "SELECT 1")
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def catch_up(self, primary_url: str, database: str) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        dsn = make_url(primary_url).set(drivername="postgresql")
        primary = psycopg2.connect(dsn.render_as_string(hide_password=False))
        primary.autocommit = True
        with primary.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            target = cursor.fetchone()[0]
        primary.close()
        deadline = time.monotonic() + 60
        while not self.sql(database, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def standby(admin_url: str) -> Iterator[Standby]:
    """`pg_basebackup -R` of the test cluster into a temp directory, started as a hot standby
    on a free port; stopped and removed at the end of the module."""
    parent = Path(tempfile.mkdtemp(prefix="wangge-standby-"))
    if os.geteuid() == 0:
        shutil.chown(parent, "postgres", "postgres")
    node = Standby(_free_port(), parent / "data", parent / "standby.log")
    env = {**os.environ, "PGPASSWORD": CLUSTER.password_file.read_text().strip()}
    try:
        _as_postgres(
            str(CLUSTER.pg_bin / "pg_basebackup"),
            "-D", str(node.data_dir), "-h", "127.0.0.1", "-p", str(CLUSTER.port),
            "-U", CLUSTER.user, "-R", "-X", "stream", "-c", "fast",
            env=env,
        )  # fmt: skip
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def replica_settings(settings: Settings, standby: Standby, service_url: str) -> Settings:
    database = make_url(service_url).database or ""
    standby.wait_for_database(database)
    replica = make_url(service_url).set(port=standby.port).render_as_string(hide_password=False)
    return settings.model_copy(update={"replica_url": replica})


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _reads(client: TestClient) -> tuple[int, int, str]:
    """What the replica-backed endpoints say about events: KPIs received this month, the OGC
    events collection's numberMatched, and the ETag of the events tile under the new event."""
    kpis = client.get("/api/v1/kpis")
    assert kpis.status_code == 200, kpis.text
    items = client.get("/ogc/collections/events/items", params={"limit": 1})
    assert items.status_code == 200, items.text
    x, y = _tile_xy(EVENT["lon"], EVENT["lat"], 14)
    tile = client.get(f"/tiles/events/14/{x}/{y}.mvt")
    assert tile.status_code in (200, 204), tile.text
    return kpis.json()["totals"]["received"], items.json()["numberMatched"], tile.headers["etag"]


def test_reads_come_from_the_standby_and_writes_from_the_primary(
    replica_settings, standby, tokens, service_url, database_url
):
    database = make_url(service_url).database or ""
    app = create_app(replica_settings)
    with TestClient(app) as client:
        source = read_source(app)
        with source.connect() as connection:
            assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
            name = connection.execute(text("SHOW application_name")).scalar()
            assert name == "wangge-replica"
        with app.state.engine.connect() as connection:
            assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
        before = _reads(client)
        replica = client.get("/api/v1/ready").json()["checks"]["replica"]
        assert (replica["status"], replica["reads_from"]) == ("ok", "replica")

        # Replay paused: the standby stops at what it has; a report goes to the primary.
        standby.sql(database, "SELECT pg_wal_replay_pause()")
        try:
            created = client.post(
                "/api/v1/events", json=EVENT, headers=bearer(tokens["dispatcher"])
            )
            assert created.status_code == 201, created.text
            event_id = created.json()["id"]
            # Read-your-write on the primary: the event itself, and a draft's collection.
            assert client.get(f"/api/v1/events/{event_id}").status_code == 200
            draft = client.post(
                "/api/v1/drafts", json={"name": "副本延迟"}, headers=bearer(tokens["planner"])
            )
            assert draft.status_code in (200, 201), draft.text
            draft_items = client.get(
                f"/ogc/collections/drafts-{draft.json()['id']}-grids/items", params={"limit": 1}
            )
            assert draft_items.status_code == 200, draft_items.text
            assert draft_items.json()["numberMatched"] > 0
            # The replica-backed reads still see the standby's state: the event is not there.
            assert _reads(client) == before
            activity = standby.sql(
                database,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wangge-replica'",
            )
            assert isinstance(activity, int) and activity >= 1
        finally:
            standby.sql(database, "SELECT pg_wal_replay_resume()")

        standby.catch_up(database_url, database)
        received, matched, etag = _reads(client)
        assert (received, matched) == (before[0] + 1, before[1] + 1)
        assert etag != before[2]  # the tile's revision moved with the replayed event


def test_a_stopped_standby_sends_reads_to_the_primary(replica_settings, standby, tokens, caplog):
    app = create_app(replica_settings)
    with TestClient(app) as client:
        before = _reads(client)
        standby.stop()
        try:
            with caplog.at_level(logging.WARNING, logger="api.replica"):
                after = _reads(client)
                export = client.get("/api/v1/export/grids", params={"format": "csv"})
            assert after == before  # the same data, now from the primary
            assert export.status_code == 200, export.text
            warnings = [r for r in caplog.records if r.name == "api.replica"]
            assert len(warnings) == 1 and "reading from the primary" in warnings[0].getMessage()
            with read_source(app).connect() as connection:
                assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
            ready = client.get("/api/v1/ready")
            replica = ready.json()["checks"]["replica"]
            assert ready.status_code == 200 and replica["reads_from"] == "primary"
            assert replica["status"] == "unreachable: OperationalError"
        finally:
            standby.start()
