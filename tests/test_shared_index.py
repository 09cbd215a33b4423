"""One lookup index shared by the workers of `wangge serve --workers N` (issue 15 §3).

The master builds the index, forks the workers (copy-on-write) and replaces them on a publish;
the forked workers must answer exactly as the in-process index, never build one themselves,
and all move to a new generation. Also: the vectorised acceleration raster agrees with the
exact rule, and a managed worker leaves a rebuild to its master (unless the master is late).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text

from api.db.generations import activate, create_generation
from api.lookup import index_store as index_store_module
from api.lookup import shared
from api.lookup.index_store import IndexStore
from spatial.lookup import UNRESOLVED

WORKERS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        found |= {int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()}
    return found


def _publish(engine: Engine) -> int:
    """A new generation holding the same grids, made active: a whole new index."""
    with engine.begin() as connection:
        old = int(
            connection.execute(
                text("SELECT max(generation_id) FROM generation_activation")
            ).scalar_one()
        )
        new = create_generation(connection, "test shared index", "test")
        connection.execute(
            text("UPDATE grid SET generation_high = :new WHERE generation_high = :old"),
            {"new": new, "old": old},
        )
        activate(connection, new, "test")
    return new


def _sample_points(engine: Engine) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and edge midpoints of micro-grids (on edges, shared by neighbours), points
    1 mm off them, interior points and uniform points over (and beyond) the street."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT ST_AsBinary(geom) FROM grid WHERE level = 'micro_grid' ORDER BY code LIMIT 60"
            )
        ).scalars()
        geometries = shapely.from_wkb([bytes(r) for r in rows])
    vertices = shapely.get_coordinates(shapely.boundary(geometries))
    midpoints = (vertices[:-1] + vertices[1:]) / 2
    inside = shapely.get_coordinates(shapely.point_on_surface(geometries))
    rng = np.random.default_rng(15)
    xmin, ymin, xmax, ymax = shapely.total_bounds(geometries)
    uniform = np.column_stack(
        [rng.uniform(xmin - 0.002, xmax + 0.002, 400), rng.uniform(ymin - 0.002, ymax + 0.002, 400)]
    )
    off = vertices[:200] + 1e-8  # ≈ 1 mm north-east of a vertex
    points = np.vstack([vertices[:300], midpoints[:300], off, inside, uniform])
    return points[:, 0], points[:, 1]


@pytest.fixture
def master(
    database_url: str, service_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "WANGGE_DATABASE_URL": service_url,
        "WANGGE_OWNER_DATABASE_URL": database_url,
        "WANGGE_WORKFLOW__SWEEP_SECONDS": "0",
    }
    wangge = str(Path(sys.executable).with_name("wangge"))
    process = subprocess.Popen(
        [wangge, "serve", "--port", str(port), "--workers", str(WORKERS)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_children(process.pid)) < WORKERS:
        time.sleep(0.1)
    while time.monotonic() < deadline:
        try:
            httpx.get(
                f"{base}/api/v1/lookup",
                params={"lon": 120.6, "lat": 31.3, "crs": "4326"},
                timeout=5,
            )
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield process, base, log
    finally:
        workers = _children(process.pid) if process.poll() is None else set()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # stopped with the master


def _lookups(base: str, lon: np.ndarray, lat: np.ndarray, chunk: int = 200) -> list[dict]:
    """Batch lookups on fresh connections, so that every worker answers some of them."""
    answers = []
    for start in range(0, len(lon), chunk):
        points = [
            {"lon": float(x), "lat": float(y)}
            for x, y in zip(lon[start : start + chunk], lat[start : start + chunk], strict=True)
        ]
        response = httpx.post(
            f"{base}/api/v1/lookup/batch",
            json={"crs": "EPSG:4326", "points": points},
            headers={"Connection": "close"},
            timeout=60,
        )
        assert response.status_code == 200
        answers.extend(response.json()["results"])
    return answers


def _essence(answer: dict) -> tuple:
    grid = answer.get("grid") or {}
    nearest = answer.get("nearest") or {}
    return (
        answer["matched"],
        grid.get("code"),
        [p["code"] for p in answer.get("path", [])],
        answer.get("on_boundary"),
        answer.get("distance_to_edge_m"),
        (answer.get("runner_up") or {}).get("code"),
        (nearest.get("grid") or nearest).get("code") if nearest else None,
    )


def test_forked_workers_answer_as_the_in_process_index(master, client, engine):
    process, base, _ = master
    workers = _children(process.pid)
    assert len(workers) == WORKERS
    lon, lat = _sample_points(engine)
    served = _lookups(base, lon, lat)
    local = client.post(
        "/api/v1/lookup/batch",
        json={
            "crs": "EPSG:4326",
            "points": [{"lon": x, "lat": y} for x, y in zip(lon, lat, strict=True)],
        },
    ).json()["results"]
    assert len(served) == len(local) == len(lon)
    assert [_essence(a) for a in served] == [_essence(a) for a in local]
    assert sum(a["matched"] for a in served) > len(lon) // 2
    assert any(a.get("on_boundary") for a in served)  # the edge cases are in the sample
    address = httpx.get(f"{base}/api/v1/geocode/address", params={"q": "青丘街1号锦玉苑1幢"})
    assert (
        address.json()
        == client.get("/api/v1/geocode/address", params={"q": "青丘街1号锦玉苑1幢"}).json()
    )


def test_publish_replaces_the_workers_with_one_build(master, engine):
    process, base, log = master
    old = _children(process.pid)
    lon, lat = _sample_points(engine)
    before = _lookups(base, lon[:400], lat[:400])
    generation = _publish(engine)
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while time.monotonic() < deadline:
        seen = {a["generation"] for a in _lookups(base, lon[:400], lat[:400], chunk=20)}
        if seen == {generation} and not (old & _children(process.pid)):
            break
        time.sleep(0.2)
    assert seen == {generation}
    new = _children(process.pid)
    assert len(new) == WORKERS and not (old & new)
    assert not any(Path(f"/proc/{pid}").exists() for pid in old)  # drained and gone
    after = _lookups(base, lon[:400], lat[:400])
    assert [_essence(a) for a in after] == [_essence(a) for a in before]
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    output = log.read_text()
    # One build per generation, in the master; no worker built an index of its own.
    assert output.count("lookup index now at generation") == 2
    assert output.count("master: index of generation") == 2


def test_a_dead_worker_is_replaced(master):
    process, base, _ = master
    victim = sorted(_children(process.pid))[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = _children(process.pid)
        if victim not in workers and len(workers) == WORKERS:
            break
        time.sleep(0.1)
    assert victim not in workers and len(workers) == WORKERS
    answer = httpx.get(
        f"{base}/api/v1/lookup", params={"lon": 120.6, "lat": 31.3, "crs": "4326"}, timeout=10
    )
    assert answer.status_code == 200


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP])
def test_workers_do_not_outlive_their_master(master, signum):
    """A master killed outright (or hung up on) takes its workers with it: orphans would hold
    the port and an old generation, and the next `wangge serve` could not start."""
    process, base, _ = master
    workers = _children(process.pid)
    assert len(workers) == WORKERS
    process.send_signal(signum)
    process.wait(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(_gone(pid) for pid in workers):
        time.sleep(0.1)
    assert [pid for pid in workers if not _gone(pid)] == []
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as sock:  # the port is free for the next start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_raster_agrees_with_the_exact_rule(engine):
    store = IndexStore(engine)
    store.refresh()
    index = store.active()
    lon, lat = _sample_points(engine)
    assert np.array_equal(index.locate(lon, lat), index._locate_exact(lon, lat))
    # Every cell the raster decides (no edge through it) agrees with the exact rule at its centre.
    columns = index._raster.shape[1]
    decided = np.flatnonzero(index._raster.ravel() != UNRESOLVED)
    picked = np.random.default_rng(1).choice(decided, 5000, replace=False)
    cx = index._x0 + (picked % columns + 0.5) * index._cell
    cy = index._y0 + (picked // columns + 0.5) * index._cell
    assert np.array_equal(index._raster.ravel()[picked], index._locate_exact(cx, cy))
    assert index._raster.dtype == np.int32


def test_a_managed_worker_adopts_and_leaves_rebuilds_to_the_master(engine, monkeypatch):
    master = IndexStore(engine)
    master.refresh()
    builds = []
    real = index_store_module.load_grid_index
    monkeypatch.setattr(
        index_store_module,
        "load_grid_index",
        lambda connection, generation: builds.append(generation) or real(connection, generation),
    )
    monkeypatch.setattr(shared, "_preloaded", master.snapshot())
    monkeypatch.setattr(shared, "_managed", True)
    worker = IndexStore(engine)
    worker.refresh()
    assert worker.active() is master.active() and worker.gazetteer is master.gazetteer
    assert builds == []
    generation = _publish(engine)
    worker.refresh()
    assert worker.active().generation == generation - 1 and builds == []  # the master's job
    monkeypatch.setattr(shared, "HANDOVER_SECONDS", 0.0)  # …but the master is late
    worker.refresh()
    assert worker.active().generation == generation and builds == [generation]
