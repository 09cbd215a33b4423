"""The `wangge` command as a user runs it: real process, real database, messages and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        assert migrated.returncode == 0 and "0001" in migrated.stdout, migrated.stderr
        for _ in range(2):
            assert run("db", "stop", env=env).returncode == 0
        assert run("db", "status", env=env).returncode == 3
    finally:
        run("db", "stop", env=env)
        shutil.rmtree(data.parent, ignore_errors=True)
