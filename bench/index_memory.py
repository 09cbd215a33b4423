"""Index build time, and memory per worker: N spawned workers (one index each) vs
`wangge serve --workers N` (one index built by a master, shared copy-on-write by forked workers).

Per process: USS (pages only it holds) and PSS (its share of every page) from
/proc/<pid>/smaps_rollup, after a warm-up of point lookups and fuzzy address matches in every
worker, and again after a publish (a new generation with the same grids: a whole new index).
"Index memory of one process" = RSS growth of building the index and the register in a fresh
interpreter. The ratio asked by issue 15: an extra worker's USS / that index memory.

    python -m bench.index_memory           # N = 20 streets (a copy of wangge_bench_district20)
    python -m bench.index_memory --quick   # the demo street
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
from psycopg2 import sql
from sqlalchemy import Engine, create_engine, text

from api.db.generations import activate, create_generation
from api.settings import get_settings
from bench.common import demo_database, district_database_reused, write_result

NAME = "wangge_bench_index_memory"
WARM_LOOKUPS = 300
WARM_ADDRESSES = 20
ADDRESSES = ("青丘街1号锦玉苑1幢", "锦玉苑2幢", "江苏省苏州市青丘街3号")

BUILD = """
import json, sys, time, gc
from sqlalchemy import create_engine
from api.db import indexes
from api.db.gazetteer import load_gazetteer
from api.geocode.index import Gazetteer
from api.lookup.index_store import IndexStore, load_grid_index, load_staff

def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('Rss:'))

engine = create_engine({url!r})
out = {{}}
if sys.argv[1] == 'store':  # a fresh interpreter: what one process's index costs
    with engine.connect() as c:
        indexes.activation_timeline(c)
    base = rss(); t = time.perf_counter()
    store = IndexStore(engine); store.refresh(); out['store_s'] = time.perf_counter() - t
    out['store_mb'] = (rss() - base) / 1024
else:
    with engine.connect() as c:
        generation = indexes.activation_timeline(c)[-1][1]
        start = rss(); t = time.perf_counter()
        grid = load_grid_index(c, generation); out['grid_s'] = time.perf_counter() - t
        out['grid_mb'] = (rss() - start) / 1024
        t = time.perf_counter(); grid._build_raster(); out['raster_s'] = time.perf_counter() - t
        t = time.perf_counter(); rows = load_gazetteer(c)
        out['address_sql_s'] = time.perf_counter() - t
        del rows; gc.collect()
        mid = rss(); t = time.perf_counter()
        register = Gazetteer.build(load_gazetteer(c)); out['address_s'] = time.perf_counter() - t
        out['address_mb'] = (rss() - mid) / 1024; out['addresses'] = register.counts['building']
        t = time.perf_counter(); load_staff(c); out['staff_s'] = time.perf_counter() - t
        out['grids'] = len(grid.records); out['raster_mb'] = grid._raster.nbytes / 2**20
print(json.dumps(out))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _memory(pid: int) -> dict[str, float]:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
                values[parts[0][:-1]] = int(parts[1]) / 1024
    return {
        "rss": values["Rss"],
        "pss": values["Pss"],
        "uss": values["Private_Clean"] + values["Private_Dirty"],
    }


def _descendants(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            for child in children.read().split():
                found.append(int(child))
                found.extend(_descendants(int(child)))
    return found


def _workers(pid: int) -> list[int]:
    """The processes that serve: the children (for uvicorn: not its resource tracker)."""
    out = []
    for child in _descendants(pid):
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if b"resource_tracker" not in cmdline.read():
                out.append(child)
    return out


def _serve(url: str, workers: int, shared: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "WANGGE_DATABASE_URL": url}
    if shared or workers == 1:
        wangge = os.path.join(os.path.dirname(sys.executable), "wangge")
        command = [wangge, "serve", "--port", str(port)]
        command += ["--workers", str(workers)]
    else:  # uvicorn's own workers: spawned interpreters, each building its index
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        command += ["--workers", str(workers), "--log-level", "warning"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/lookup", params=_params(0), timeout=5).status_code:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not start")


def _params(i: int, bounds: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
    x0, y0, x1, y1 = bounds or (120.62, 31.30, 120.63, 31.31)
    rng = np.random.default_rng(i)
    return {"lon": rng.uniform(x0, x1), "lat": rng.uniform(y0, y1), "crs": "4326"}


def _warm(base: str, bounds: tuple[float, float, float, float]) -> set[int]:
    """Lookups and fuzzy address matches spread over the workers; the generations seen."""
    seen = set()
    with httpx.Client(base_url=base, timeout=60) as client:
        for i in range(WARM_LOOKUPS):  # new connections: the kernel spreads them
            seen.add(client.get("/api/v1/lookup", params=_params(i, bounds)).json()["generation"])
            client.headers["Connection"] = "close"
        for i in range(WARM_ADDRESSES):
            client.get("/api/v1/geocode/address", params={"q": ADDRESSES[i % len(ADDRESSES)]})
    return seen


def _publish(engine: Engine) -> int:
    """A new generation holding the same grids, made active (NOTIFY): a whole new index."""
    with engine.begin() as connection:
        old = connection.execute(text("SELECT max(generation_id) FROM generation_activation"))
        old_id = int(old.scalar_one())
        new_id = create_generation(connection, "bench index_memory", "bench")
        connection.execute(
            text("UPDATE grid SET generation_high = :new WHERE generation_high = :old"),
            {"new": new_id, "old": old_id},
        )
        activate(connection, new_id, "bench")
    return new_id


def _measure(url: str, engine: Engine, bounds: Any, workers: int, shared: bool) -> dict[str, Any]:
    process, base = _serve(url, workers, shared)
    try:
        _warm(base, bounds)
        before = {pid: _memory(pid) for pid in [process.pid, *_workers(process.pid)]}
        published = _publish(engine)
        started = time.monotonic()
        while time.monotonic() - started < 300:
            if _warm(base, bounds) == {published}:
                break
        switched = time.monotonic() - started
        time.sleep(1.0)
        _warm(base, bounds)
        after = {pid: _memory(pid) for pid in [process.pid, *_workers(process.pid)]}
        return {"before": before, "after": after, "switch_s": switched, "master": process.pid}
    finally:
        process.terminate()
        process.wait(60)


def _database(quick: bool) -> tuple[str, Engine]:
    settings = get_settings()
    if quick:
        engine = demo_database(NAME, 1)
    else:
        district_database_reused("wangge_bench_district20", 20).dispose()
        admin = create_engine(
            settings.cluster.url(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            cursor.execute(drop.format(sql.Identifier(NAME)))
            cursor.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(NAME), sql.Identifier("wangge_bench_district20")
                )
            )
        admin.dispose()
        engine = create_engine(settings.cluster.url(database=NAME))
    return engine.url.render_as_string(hide_password=False), engine


def _drop() -> None:
    admin = create_engine(
        get_settings().cluster.url(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(NAME))
        )
    admin.dispose()


def _row(label: str, sample: dict[str, Any], key: str) -> str:
    master, memory = sample["master"], sample[key]
    workers = [pid for pid in memory if pid != master]
    uss = [memory[pid]["uss"] for pid in workers]
    pss = [memory[pid]["pss"] for pid in workers]
    return (
        f"| {label} | {memory[master]['uss']:.0f} / {memory[master]['pss']:.0f} | "
        f"{', '.join(f'{u:.0f}' for u in uss) or '-'} | {', '.join(f'{p:.0f}' for p in pss) or '-'} | "
        f"{sum(m['pss'] for m in memory.values()):.0f} |"
    )


def main(quick: bool = False) -> None:
    url, engine = _database(quick)
    try:
        build = {}
        for part in ("store", "parts"):
            command = [sys.executable, "-c", BUILD.format(url=url), part]
            build.update(
                json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            )
        with engine.connect() as connection:
            bounds = tuple(
                connection.execute(
                    text(
                        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                        "(SELECT ST_Extent(geom) AS e FROM grid) x"
                    )
                ).one()
            )
        samples = {}
        for workers, shared in ((1, False), (2, False), (4, False), (2, True), (4, True)):
            samples[(workers, shared)] = _measure(url, engine, bounds, workers, shared)
    finally:
        engine.dispose()
        _drop()
    index_mb = build["store_mb"]
    lines = [
        f"## Index build and memory per worker ({'demo street' if quick else 'N = 20 streets'})",
        "",
        f"{build['grids']:,} grids, {build['addresses']:,} addresses. Build (s): grid index "
        f"{build['grid_s']:.2f} (of which raster {build['raster_s']:.2f}), address register "
        f"{build['address_s']:.2f} (SQL {build['address_sql_s']:.2f}), staff "
        f"{build['staff_s']:.2f}; the whole store {build['store_s']:.2f}. Memory: grid index "
        f"+{build['grid_mb']:.0f} MB (raster {build['raster_mb']:.0f} MB), register "
        f"+{build['address_mb']:.0f} MB (each measured after the one before in one process); index "
        f"memory of one process (`IndexStore.refresh` in a fresh interpreter, RSS growth) "
        f"**{index_mb:.0f} MB**.",
        "",
        "| setup | master USS / PSS (MB) | workers USS (MB) | workers PSS (MB) | total PSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for (workers, shared), sample in samples.items():
        mode = (
            "shared (`wangge serve`)"
            if shared
            else ("1 process" if workers == 1 else "spawned (uvicorn)")
        )
        lines.append(_row(f"{workers} × {mode}", sample, "before"))
        lines.append(_row(f"{workers} × {mode}, after a publish", sample, "after"))
    ratios = []
    for (workers, shared), sample in samples.items():
        if shared:
            for key in ("before", "after"):
                memory = sample[key]
                uss = [m["uss"] for pid, m in memory.items() if pid != sample["master"]]
                ratios.append(
                    f"{workers} shared workers {key} publish: extra worker USS "
                    f"{np.mean(uss):.0f} MB = **{np.mean(uss) / index_mb:.0%}** of one index"
                    f" (switch to the new generation {sample['switch_s']:.1f} s)"
                )
    lines += ["", *[f"- {r}" for r in ratios]]
    write_result("index_memory", lines)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
