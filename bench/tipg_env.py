"""The anchor for the OGC benchmarks: tipg (developmentseed's OGC API Features/Tiles server over
PostGIS) in a virtualenv of its own under `.cache/tipg-venv` (its pins differ from ours: never
install it into .venv), started as a uvicorn subprocess against the benchmark's database.

tipg serves the tables and views of a schema. `create_views` makes schema `tipg_bench` with one
view per grid level, `tipg_bench.grids_{level}` ≙ wangge's `grids-{level}` (street, community,
grid, micro_grid): every grid of that level in the active generation (its id written into the
view as a constant, so tipg's queries use the (generation_low, generation_high) index as ours
do), with the same properties — code (the feature id), name, level, level_label, kind,
parent_code, households, population, generation — and the same geometry column `geom`
(MultiPolygon, EPSG:4326). Never `attributes`. And `tipg_bench.buildings` ≙ `buildings`:
every building with its public properties code, name, address, floors, households, use.

Both servers run one uvicorn worker without access logs, pinned to the same core with taskset
(the client and PostgreSQL share the machine's other core), with the same database role.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from api.settings import PROJECT_ROOT

TIPG_VERSION = "1.6.1"
VENV = PROJECT_ROOT / ".cache" / "tipg-venv"
SCHEMA = "tipg_bench"
SERVER_CPU = "1"  # the core both servers are pinned to (taskset), when the machine has two

_COLUMNS = (
    "g.code, g.name, g.level, l.label_zh AS level_label, g.kind, g.parent_code, "
    "g.households, g.population, {generation} AS generation, g.geom"
)


def ensure_venv() -> Path:
    """tipg's interpreter, installing tipg and uvicorn into `.cache/tipg-venv` the first time."""
    python = VENV / "bin" / "python"
    marker = VENV / f".tipg-{TIPG_VERSION}"
    if marker.exists() and python.exists():
        return python
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"tipg=={TIPG_VERSION}", "uvicorn"],
        check=True,
    )
    marker.touch()
    return python


def create_views(engine: Engine) -> list[str]:
    """Schema tipg_bench with a view per grid level (see above); the levels."""
    with engine.begin() as connection:
        generation = int(
            connection.execute(
                text(
                    "SELECT generation_id FROM generation_activation "
                    "WHERE activated_at <= now() ORDER BY activated_at DESC, id DESC LIMIT 1"
                )
            ).scalar_one()
        )
        levels = list(connection.execute(text("SELECT name FROM grid_level")).scalars())
        # DDL takes no bound parameters: the generation is an int we just read, the levels are
        # checked to be plain identifiers and also bound where they are values.
        columns = _COLUMNS.format(generation=generation)
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        for level in levels:
            if not re.fullmatch(r"[a-z_]{1,40}", level):
                raise ValueError(f"grid level {level!r} is not a plain identifier")
            connection.execute(
                text(
                    f"CREATE VIEW {SCHEMA}.grids_{level} AS SELECT {columns} FROM grid g "
                    f"JOIN grid_level l ON l.name = g.level WHERE g.level = '{level}' "
                    f"AND {generation} BETWEEN g.generation_low AND g.generation_high"
                )
            )
        connection.execute(
            text(
                f"CREATE VIEW {SCHEMA}.buildings AS SELECT code, name, address, floors, "
                "households, use, geom FROM building"
            )
        )
    return levels


def tipg_id(collection: str) -> str:
    """tipg's collection id of one of wangge's `grids-{level}` collections."""
    return f"{SCHEMA}.{collection.replace('-', '_')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str]) -> list[str]:
    """`command` pinned to SERVER_CPU when taskset exists and the machine has two cores."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", SERVER_CPU, *command]
    return command


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def serve(command: list[str], env: dict[str, str], probe: str) -> Iterator[Server]:
    """Start `command` (a uvicorn listening on {port}), wait until `probe` answers 200."""
    port = free_port()
    argv = pinned([part.replace("{port}", str(port)) for part in command])
    process = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
            try:
                if httpx.get(base + probe, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{base}{probe} never answered")
        yield Server(base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tipg_env(database_url: str, levels: list[str]) -> dict[str, str]:
    """tipg's settings (tipg.settings): the schema's views, `code` as their key, pages up to
    5,000 features like ours, the catalogue kept for the whole run."""
    url = database_url.replace("postgresql+psycopg2://", "postgresql://")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPG_", "WANGGE_"))}
    views = [f"grids_{level}" for level in levels] + ["buildings"]
    env.update(
        {
            "DATABASE_URL": url,
            "TIPG_DB_SCHEMAS": f'["{SCHEMA}"]',
            "TIPG_DB_TABLES": "[" + ", ".join(f'"{SCHEMA}.{v}"' for v in views) + "]",
            "TIPG_DB_FUNCTIONS": "[]",
            **{f"TIPG_TABLE_CONFIG__{SCHEMA}_{v}__PK": "code" for v in views},
            "TIPG_DEFAULT_FEATURES_LIMIT": "1000",
            "TIPG_MAX_FEATURES_PER_QUERY": "5000",
            "TIPG_CATALOG_TTL": "86400",
            "TIPG_DEBUG": "FALSE",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }
    )
    return env


@contextmanager
def tipg_server(database_url: str, levels: list[str]) -> Iterator[Server]:
    """tipg on a free port, one worker, pinned like our server; yields its base URL and pid."""
    python = ensure_venv()
    command = [
        str(python),
        "-m",
        "uvicorn",
        "tipg.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with serve(command, tipg_env(database_url, levels), "/collections") as server:
        yield server
