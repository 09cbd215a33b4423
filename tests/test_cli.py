"""The `wangge` command as a user runs it: real process, real database, messages and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from alembic.script import ScriptDirectory

from api.db.migrate import alembic_config
from api.settings import PROJECT_ROOT

WANGGE = str(Path(sys.executable).with_name("wangge"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WANGGE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


@pytest.fixture
def db_env(database_url: str) -> dict[str, str]:
    return {"WANGGE_DATABASE_URL": database_url}


def test_export_then_import_dry_run(db_env, tmp_path):
    out = tmp_path / "grids.gpkg"
    exported = run("export", "grids", str(out), "--level", "grid", "--crs", "EPSG:4490", env=db_env)
    assert exported.returncode == 0, exported.stderr
    assert "已导出 60 个要素" in exported.stdout
    report = run("import", "grids", str(out), "--level", "grid", "--dry-run", "--json", env=db_env)
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert (body["unchanged"], body["crs"], body["dry_run"]) == (60, "EPSG:4490", True)


def test_bad_file_message_names_file_row_and_field(db_env, tmp_path):
    path = tmp_path / "网格.csv"
    path.write_text(
        'code,name,wkt\n320571005001099,坏网格,"POLYGON((120.73 31.30,120.74 31.31,120.74 31.30,120.73 31.31,120.73 31.30))"\n',
        encoding="utf-8",
    )
    result = run("import", "grids", str(path), "--level", "grid", "--crs", "EPSG:4326", env=db_env)
    assert result.returncode == 1
    assert (
        "网格.csv，第 1 个要素，编码 320571005001099，字段 geometry：几何无效：Self-intersection"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    generations = run("generations", env=db_env)
    assert generations.stdout.count("演示街道") == 1 and "导入" not in generations.stdout


def test_usage_and_unknown_things(db_env, tmp_path):
    missing = run("import", "grids", str(tmp_path / "nope.geojson"), "--level", "grid", env=db_env)
    assert missing.returncode == 1 and "文件不存在" in missing.stderr
    level = run("import", "grids", str(tmp_path / "x.geojson"), env=db_env)
    assert level.returncode == 2 and "--level" in level.stderr
    crs = run("export", "grids", str(tmp_path / "g.gpkg"), "--crs", "EPSG:99999", env=db_env)
    assert crs.returncode == 1 and "EPSG:99999" in crs.stderr and "Traceback" not in crs.stderr


def test_token_lifecycle(db_env):
    created = run(
        "token",
        "create",
        "--role",
        "field_staff",
        "--grid",
        "320571005001001",
        "--name",
        "张三",
        env=db_env,
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("wg_") and len(secret) > 40
    listed = run("token", "list", env=db_env)
    assert "张三" in listed.stdout and secret not in listed.stdout
    assert run("token", "create", "--role", "field_staff", env=db_env).returncode == 1
    unknown = run("token", "create", "--role", "field_staff", "--grid", "999", env=db_env)
    assert unknown.returncode == 1 and "999" in unknown.stderr


def test_unreachable_database_is_a_clear_message():
    result = run(
        "generations", env={"WANGGE_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none"}
    )
    assert (
        result.returncode == 1
        and "无法连接数据库" in result.stderr
        and "wangge db start" in result.stderr
    )


def test_local_cluster_start_stop_status_are_idempotent():
    """A throwaway cluster on its own port (the data dir must be reachable by `postgres`)."""
    data = PROJECT_ROOT / ".cache" / "cluster-test" / "pg"
    shutil.rmtree(data.parent, ignore_errors=True)
    env = {
        "WANGGE_CLUSTER__DATA_DIR": str(data),
        "WANGGE_CLUSTER__PORT": "54399",
        "WANGGE_DATABASE_URL": "",
    }
    try:
        assert run("db", "status", env=env).returncode == 3
        for _ in range(2):
            started = run("db", "start", env=env)
            assert started.returncode == 0 and "运行中" in started.stdout, started.stderr
        assert run("db", "status", env=env).returncode == 0
        migrated = run("migrate", env=env)
        head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
        assert migrated.returncode == 0 and f"版本 {head}" in migrated.stdout, migrated.stderr
        for _ in range(2):
            assert run("db", "stop", env=env).returncode == 0
        assert run("db", "status", env=env).returncode == 3
    finally:
        run("db", "stop", env=env)
        shutil.rmtree(data.parent, ignore_errors=True)


def test_busy_ports_are_named_with_the_way_out():
    """Two checkouts on one machine: the second one's cluster or server port is taken."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = PROJECT_ROOT / ".cache" / "cluster-busy" / "pg"
        env = {
            "WANGGE_CLUSTER__DATA_DIR": str(data),
            "WANGGE_CLUSTER__PORT": str(port),
            "WANGGE_DATABASE_URL": "",
        }
        try:
            started = run("db", "start", env=env)
        finally:
            shutil.rmtree(data.parent, ignore_errors=True)
        assert started.returncode == 1
        assert f"端口 {port} 已被占用" in started.stderr
        assert f"WANGGE_CLUSTER__PORT={port + 1} make demo" in started.stderr
        served = run("serve", "--port", str(port))
        assert served.returncode == 1 and f"make demo PORT={port + 1}" in served.stderr


def test_geocode_file(db_env, engine, tmp_path):
    """A CSV with good, outside and broken rows: every row comes out, each with a grid or a reason."""
    import csv

    import pyarrow.parquet as pq
    from sqlalchemy import text

    from spatial.crs import from_wgs84_xy

    with engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE code = '320571005005003002') s"
            )
        ).one()
    gx, gy = from_wgs84_xy(np.array([lon, 121.5]), np.array([lat, 31.2]), "GCJ02")
    source = tmp_path / "工单.csv"
    source.write_text(
        f'工单号,经度,纬度,诉求\n0001,{gx[0]},{gy[0]},"=HYPERLINK(""http://evil"",""x"")"\n'
        f"0002,{gx[1]},{gy[1]},占道\n0003,,31.3,\n0004,31.3,120.7,\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    result = run("geocode", str(source), "--crs", "gcj02", "-o", str(out), env=db_env)
    assert result.returncode == 0, result.stderr
    assert "4 行，已落格 1 行" in result.stdout and "3 行未能落格" in result.stdout
    with out.open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["工单号"] for r in table] == [
        "0001",
        "0002",
        "0003",
        "0004",
    ]  # order and leading zeros kept
    assert (
        table[0]["wg_micro_grid_code"] == "320571005005003002"
        and table[0]["wg_grid_code"] == "320571005005003"
    )
    assert "不在任何网格内" in table[1]["wg_problem"] and "最近" in table[1]["wg_problem"]
    # A spreadsheet must not run a caller's text as a formula.
    assert table[0]["诉求"] == '\'=HYPERLINK("http://evil","x")' and table[1]["诉求"] == "占道"
    assert "有效数字" in table[2]["wg_problem"] and "颠倒" in table[3]["wg_problem"]
    parquet = tmp_path / "out.parquet"
    assert (
        run(
            "geocode",
            str(out),
            "--crs",
            "gcj02",
            "--lon-field",
            "经度",
            "--lat-field",
            "纬度",
            "-o",
            str(parquet),
            env=db_env,
        ).returncode
        == 0
    )
    assert pq.read_table(parquet).num_rows == 4


def test_calendar_seed_keeps_what_admins_set(db_env, engine):
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM work_calendar WHERE extract(year FROM day) = 2026"))
        connection.execute(
            text("INSERT INTO work_calendar VALUES ('2026-10-01', true, '抢险值班')")
        )
    seeded = run("calendar", "seed", env=db_env)
    assert seeded.returncode == 0, seeded.stderr
    assert "到 2026 年为止" in seeded.stdout
    with engine.connect() as connection:
        days = dict(
            connection.execute(
                text(
                    "SELECT day::text, name FROM work_calendar WHERE extract(year FROM day) = 2026"
                )
            ).all()
        )
    assert len(days) == 25  # 2026's holidays on weekdays and 调休 weekend days
    assert days["2026-10-01"] == "抢险值班" and days["2026-10-10"] == "国庆节调休上班"
    listed = run("calendar", "list", "--year", "2026", env=db_env)
    assert listed.returncode == 0 and "共 25 天" in listed.stdout
