"""The project-owned PostgreSQL cluster under .data/: init, start, stop, status, all idempotent.

PostgreSQL refuses to run as root, so when wangge is invoked as root every server command
runs as the `postgres` system user (runuser) and the data directory belongs to that user.
The cluster listens on 127.0.0.1 only. Three roles, each with a random password in its own
file under .data/ (created with mode 0600, never wider): the superuser `wangge` creates roles
and databases; `wangge_owner` owns the schema and runs migrations; the service connects as
`wangge_app`, which may read and write rows but not change the schema (least privilege).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from api.settings import ClusterSettings


class ClusterError(RuntimeError):
    """The local cluster could not be set up or controlled; the message says why."""


@dataclass
class ClusterStatus:
    initialised: bool
    running: bool
    port: int
    data_dir: Path
    detail: str


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_user() -> str:
    return "postgres" if _as_root() else pwd.getpwuid(os.geteuid()).pw_name


def _run(cluster: ClusterSettings, tool: str, *args: str, check: bool = True) -> str:
    binary = cluster.pg_bin / tool
    if not binary.exists():
        raise ClusterError(
            f"{binary} not found: install PostgreSQL 15 (apt install postgresql-15) "
            "or set WANGGE_CLUSTER__PG_BIN"
        )
    command = [str(binary), *args]
    if _as_root():
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if check and result.returncode != 0:
        raise ClusterError(f"{tool} failed: {(result.stderr or result.stdout).strip()}")
    return (result.stdout + result.stderr).strip()


def _prepare_directories(cluster: ClusterSettings) -> None:
    base = cluster.data_dir.parent
    base.mkdir(parents=True, exist_ok=True)
    cluster.socket_dir.mkdir(parents=True, exist_ok=True)
    if _as_root():
        user = pwd.getpwnam("postgres")
        for path in (base, cluster.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        # postgres must be able to walk down to the data directory.
        for parent in base.resolve().parents:
            if not os.stat(parent).st_mode & 0o001:
                raise ClusterError(
                    f"{parent} is not traversable by the postgres user; "
                    "chmod o+x it or set WANGGE_CLUSTER__DATA_DIR elsewhere"
                )


def init(cluster: ClusterSettings) -> bool:
    """Create the cluster if it does not exist. Returns True when it was created now."""
    if (cluster.data_dir / "PG_VERSION").exists():
        return False
    _prepare_directories(cluster)
    password = secrets.token_urlsafe(24)
    with tempfile.NamedTemporaryFile("w", delete=False, dir=cluster.socket_dir) as handle:
        handle.write(password + "\n")
        pwfile = Path(handle.name)
    try:
        if _as_root():
            shutil.chown(pwfile, "postgres", "postgres")
        _run(
            cluster,
            "initdb",
            "-D",
            str(cluster.data_dir),
            "-U",
            cluster.user,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    _write_secret(cluster.password_file, password)
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# wangge development cluster\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {cluster.port}\n"
            f"unix_socket_directories = '{cluster.socket_dir}'\n"
            "shared_buffers = 512MB\n"
            "work_mem = 32MB\n"
            "maintenance_work_mem = 256MB\n"
            "max_connections = 100\n"
        )
    return True


def _write_secret(path: Path, secret: str) -> None:
    """A password file readable by its owner only from the first byte (no chmod window)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")


def status(cluster: ClusterSettings) -> ClusterStatus:
    if not (cluster.data_dir / "PG_VERSION").exists():
        return ClusterStatus(False, False, cluster.port, cluster.data_dir, "not initialised")
    out = _run(cluster, "pg_ctl", "status", "-D", str(cluster.data_dir), check=False)
    running = "server is running" in out
    return ClusterStatus(True, running, cluster.port, cluster.data_dir, out.splitlines()[0])


def start(cluster: ClusterSettings) -> ClusterStatus:
    """Initialise if needed, start if stopped, and make sure the application database exists."""
    if not status(cluster).running:
        _port_is_free(cluster)
    init(cluster)
    current = status(cluster)
    if not current.running:
        _prepare_directories(cluster)
        _run(
            cluster,
            "pg_ctl",
            "start",
            "-D",
            str(cluster.data_dir),
            "-l",
            str(cluster.log_file),
            "-w",
            "-t",
            "60",
        )
    ensure_database(cluster, cluster.database)
    return status(cluster)


def _port_is_free(cluster: ClusterSettings) -> None:
    """Say which port is taken, and how to choose another, before pg_ctl fails obscurely
    (a second checkout on one machine, or a system PostgreSQL, already listening there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As PostgreSQL binds: connections of a stopped server lingering in TIME_WAIT don't
        # count, a listening socket does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", cluster.port))
        except OSError as error:
            raise ClusterError(
                f"端口 {cluster.port} 已被占用（另一个 wangge 检出或其他 PostgreSQL 正在使用）："
                f"请为本检出换一个端口，例如 `WANGGE_CLUSTER__PORT={cluster.port + 1} make demo`"
                "（之后每条 wangge 命令都带上同一个 WANGGE_CLUSTER__PORT）"
            ) from error


def stop(cluster: ClusterSettings) -> ClusterStatus:
    current = status(cluster)
    if current.running:
        _run(cluster, "pg_ctl", "stop", "-D", str(cluster.data_dir), "-m", "fast", "-w")
    return status(cluster)


def _connect_admin(cluster: ClusterSettings):
    password = cluster.password_file.read_text().strip()
    deadline = time.monotonic() + 30
    while True:
        try:
            return psycopg2.connect(
                host="127.0.0.1",
                port=cluster.port,
                user=cluster.user,
                password=password,
                dbname="postgres",
            )
        except psycopg2.OperationalError as error:
            if time.monotonic() > deadline:
                raise ClusterError(f"cannot connect to the local cluster: {error}") from error
            time.sleep(0.3)


def ensure_roles(cluster: ClusterSettings) -> None:
    """The owner and service roles exist and their password files match (idempotent)."""
    connection = _connect_admin(cluster)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for role in (cluster.owner_user, cluster.app_user):
                secret = cluster.password_file_of(role)
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                exists = cursor.fetchone() is not None
                if exists and secret.exists():
                    continue
                password = secrets.token_urlsafe(24)
                verb = "ALTER" if exists else "CREATE"
                try:
                    cursor.execute(
                        sql.SQL(
                            verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s"
                        ).format(sql.Identifier(role)),
                        (password,),
                    )
                except psycopg2.errors.DuplicateObject:
                    continue  # another process made it a moment ago, and writes its file
                _write_secret(secret, password)
    finally:
        connection.close()


def ensure_database(cluster: ClusterSettings, name: str, *, recreate: bool = False) -> None:
    """Create database `name` in the local cluster, owned by the owner role, with PostGIS
    (which only a superuser may install); dropping it first when recreate."""
    ensure_roles(cluster)
    connection = _connect_admin(cluster)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            if recreate:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(name), sql.Identifier(cluster.owner_user)
                    )
                )
    finally:
        connection.close()
    prepare_database(cluster, name)


def prepare_database(cluster: ClusterSettings, name: str) -> None:
    """PostGIS installed, and the database and its tables owned by the owner role (a cluster
    made before the roles existed had everything owned by the superuser)."""
    connection = psycopg2.connect(_dsn(cluster, cluster.user, name))
    connection.autocommit = True
    owner = sql.Identifier(cluster.owner_user)
    try:
        with connection.cursor() as cursor:
            # btree_gist is trusted; PostGIS is not, so a superuser installs both up front.
            cursor.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            cursor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
            cursor.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), owner)
            )
            cursor.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') "
                "AND pg_get_userbyid(c.relowner) <> %s AND NOT EXISTS (SELECT 1 FROM pg_depend d "
                "WHERE d.objid = c.oid AND d.deptype = 'e')",
                (cluster.owner_user,),
            )
            for (table,) in cursor.fetchall():
                cursor.execute(
                    sql.SQL("ALTER TABLE public.{} OWNER TO {}").format(
                        sql.Identifier(table), owner
                    )
                )
    finally:
        connection.close()


def _dsn(cluster: ClusterSettings, role: str, database: str) -> str:
    password = cluster.password_file_of(role).read_text().strip()
    return psycopg2.extensions.make_dsn(
        host="127.0.0.1", port=cluster.port, user=role, password=password, dbname=database
    )
