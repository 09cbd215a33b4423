"""(g) OGC API Features pages, a bbox query and vector tiles: wangge against tipg, same database,
same run, same client.

The database holds the lead's demo district (`wangge demo load --streets 20`, via
bench.common.district_database: 24,040 micro-grids, 1,200 grids). Both servers serve the
active generation's grids with the same properties (wangge `grids-{level}`, tipg views
`tipg_bench.grids_{level}`, see bench/tipg_env.py), one uvicorn worker each, pinned to the same
core, the same database role.
PostgreSQL's buffers are warmed before anything is timed, and each route is called once (one
feature; a z10 street tile outside the set), so "cold" means the server's own state: the first
request for that page or tile since the server started.

Measured, with httpx (default headers: both may gzip), sequentially and with 4 connections
(each with freshly started servers, so each has a cold pass). Both servers run at the same time
and take turns (see `_measure`), so load from elsewhere on the machine falls on both alike:
- pages of 1,000 features: every page of the collection once in shuffled order (cold), then
  the first page (offset 0) and a deep one (offset 20,000) 30 times each (repeated);
- bbox: 20 community extents (one per street), each once, then 5 more times;
- building tiles: 20 tiles each at z15 and z16 (buildings are drawn from z15), the same way;
- tiles: WebMercatorQuad z12–z16, up to 20 tiles with data per zoom, each once, then 5 more:
  micro-grids at z13–z16 and, at z12, the grids (网格) — wangge's maps draw micro-grids from
  z13 on (api/tiles/matrix.py LEVEL_MIN_ZOOM), so its z12 micro-grid tiles are empty by design.
Pages and bbox answers are checked to hold the same ids on both sides; every tile has data.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import httpx
import numpy as np
from fastapi import FastAPI
from sqlalchemy import Engine, text

from api.settings import get_settings
from bench.common import district_database, district_database_reused, write_result
from bench.tipg_env import Server, create_views, serve, tipg_id, tipg_server

DATABASE = "wangge_bench_district20"  # shared with bench/tiles_pyramid.py
PAGE = 1000
DEEP_OFFSET = 20000
REPEAT_PAGES = 30
REPEAT = 5
TILES_PER_ZOOM = 20
ZOOMS = range(12, 17)
CONCURRENCY = 4
OURS = "grids-micro_grid"
TILE_LAYER = {12: "grids-grid", 13: OURS, 14: OURS, 15: OURS, 16: OURS}
BUILDING_LAYER = {15: "buildings", 16: "buildings"}  # buildings are drawn from z15
# wangge's routes (api/routes/ogc.py, api/routes/tiles.py): OGC API Tiles paths on both sides
# (wangge's in the standard's order, tileMatrix/tileRow/tileCol; tipg's z/x/y).
OUR_ITEMS = f"/ogc/collections/{OURS}/items"
OUR_TILE = "/ogc/collections/{c}/tiles/WebMercatorQuad/{z}/{y}/{x}"
THEIR_ITEMS = f"/collections/{tipg_id(OURS)}/items"
THEIR_TILE = "/collections/{c}/tiles/WebMercatorQuad/{z}/{x}/{y}"
TileKey = tuple[str, int, int, int]  # wangge's collection id, z, x, y


def bench_app() -> FastAPI:
    """wangge's app (`uvicorn --factory bench.ogc_tipg:bench_app`), with the OGC and tile
    routers mounted here if api/app.py does not mount them yet."""
    from api.app import create_app

    app = create_app()
    present = {getattr(route, "path", "") for route in app.routes}
    for name in ("api.routes.ogc", "api.routes.tiles"):
        try:
            router = importlib.import_module(name).router
        except ImportError:
            continue
        if not any(getattr(route, "path", "") in present for route in router.routes):
            app.include_router(router)
    return app


def wangge_server(database_url: str) -> AbstractContextManager[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env.update({"WANGGE_DATABASE_URL": database_url, "NO_PROXY": "127.0.0.1"})
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.ogc_tipg:bench_app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return serve(command, env, OUR_ITEMS + "?limit=1")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    rad = math.radians(lat)
    y = int((1.0 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2.0 * n)
    return x, y


def tiles_with_data(engine: Engine, layers: dict[int, str]) -> list[TileKey]:
    """Up to TILES_PER_ZOOM tiles per zoom (layer per zoom) holding a feature (fixed seed)."""
    rng = np.random.default_rng(7)
    chosen: list[TileKey] = []
    with engine.connect() as connection:
        xmin, ymin, xmax, ymax = connection.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM tipg_bench.grids_micro_grid) s"
            )
        ).one()
        for z, layer in layers.items():
            x0, y0 = tile_of(xmin, ymax, z)
            x1, y1 = tile_of(xmax, ymin, z)
            candidates = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
            order = rng.permutation(len(candidates))
            kept = 0
            for i in order:
                z_, x, y = candidates[i]
                table = "buildings" if layer == "buildings" else layer.replace("-", "_")
                full = connection.execute(
                    text(
                        f"SELECT EXISTS (SELECT 1 FROM tipg_bench.{table} WHERE geom && "
                        "ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326))"
                    ),
                    {"z": z_, "x": x, "y": y},
                ).scalar_one()
                if full:
                    chosen.append((layer, z_, x, y))
                    kept += 1
                    if kept == TILES_PER_ZOOM:
                        break
    return chosen


def community_boxes(engine: Engine) -> list[str]:
    """The extent of the first community of each street, as a CRS84 bbox parameter."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT DISTINCT ON (parent_code) ST_XMin(geom::box2d), ST_YMin(geom::box2d), "
                "ST_XMax(geom::box2d), ST_YMax(geom::box2d) FROM grid "
                "WHERE level = 'community' ORDER BY parent_code, code"
            )
        ).all()
    return [",".join(f"{v:.7f}" for v in row) for row in rows]


@dataclass
class Series:
    """Latencies (ms) of one measure on one server; sizes of the answers (bytes on the wire)."""

    ms: list[float] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        return float(np.percentile(self.ms, q)) if self.ms else float("nan")


async def _run(
    client: httpx.AsyncClient,
    paths: list[str],
    concurrency: int,
    check: Callable[[str, httpx.Response], None],
) -> Series:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    for _ in range(concurrency):
        queue.put_nowait(None)
    series = Series()

    async def worker() -> None:
        while (path := await queue.get()) is not None:
            response = await _one(client, path, series)
            check(path, response)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return series


async def _one(client: httpx.AsyncClient, path: str, series: Series) -> httpx.Response:
    """One timed GET (the whole body read), recorded in `series`."""
    started = time.perf_counter()
    response = await client.get(path)
    await response.aread()
    series.ms.append((time.perf_counter() - started) * 1000)
    series.wire.append(int(response.headers.get("content-length", len(response.content))))
    series.paths.append(path)
    return response


@dataclass
class Workload:
    items: str
    tile: str
    offsets: list[int]
    boxes: list[str]
    tiles: list[TileKey]
    building_tiles: list[TileKey]
    theirs: bool  # tipg's collection ids
    seen: dict[str, object] = field(default_factory=dict)  # path → ids / tile size, to compare

    def page(self, offset: int) -> str:
        return f"{self.items}?limit={PAGE}&offset={offset}"

    def bbox(self, box: str) -> str:
        return f"{self.items}?limit={PAGE}&bbox={box}"

    def tile_path(self, key: TileKey) -> str:
        collection, z, x, y = key
        return self.tile.format(c=tipg_id(collection) if self.theirs else collection, z=z, x=x, y=y)


def _check(side: Workload) -> Callable[[str, httpx.Response], None]:
    def check(path: str, response: httpx.Response) -> None:
        if response.status_code not in (200, 204):  # wangge: 204 for an empty tile
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        if path in side.seen:
            return
        if "/tiles/" in path:
            side.seen[path] = len(response.content)
        else:
            side.seen[path] = [f["id"] for f in response.json()["features"]]

    return check


def _phases(side: Workload) -> dict[str, list[str]]:
    """The measures in the order they run (cold ones first), each a list of paths."""
    tiles = [side.tile_path(key) for key in side.tiles]
    buildings = [side.tile_path(key) for key in side.building_tiles]
    boxes = [side.bbox(b) for b in side.boxes]
    return {
        "pages cold (every page once)": [side.page(o) for o in side.offsets],
        "bbox cold": boxes,
        "tiles cold": tiles,
        "building tiles cold": buildings,
        "first page repeated": [side.page(0)] * REPEAT_PAGES,
        "deep page repeated": [side.page(DEEP_OFFSET)] * REPEAT_PAGES,
        "bbox repeated": boxes * REPEAT,
        "tiles repeated": tiles * REPEAT,
        "building tiles repeated": buildings * REPEAT,
    }


async def _measure(
    bases: dict[str, str], sides: dict[str, Workload], concurrency: int
) -> dict[str, dict[str, Series]]:
    """Every measure on every server. Both servers run at once and take turns, so load from
    elsewhere on the machine falls on both alike: sequentially, request i goes to one server
    and then the other (who goes first alternates); with several connections, each measure
    runs on one server and then on the other (who goes first alternates by measure)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    names = list(bases)
    out: dict[str, dict[str, Series]] = {name: {} for name in names}
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(base_url=bases[name], limits=limits, timeout=120)
            )
            for name in names
        }
        checks = {name: _check(sides[name]) for name in names}
        for name in names:
            # Each route once before timing (its first use pays one-off start-up costs in
            # both servers): an items request of one feature and a tile outside the set.
            side = sides[name]
            await clients[name].get(side.page(0).replace(f"limit={PAGE}", "limit=1"))
            await clients[name].get(side.tile_path(("grids-street", 10, *tile_of(120.7, 31.3, 10))))
        phases = {name: _phases(sides[name]) for name in names}
        for turn, measure in enumerate(phases[names[0]]):
            if concurrency == 1:
                series = {name: Series() for name in names}
                for i in range(len(phases[names[0]][measure])):
                    order = names if (i + turn) % 2 == 0 else names[::-1]
                    for name in order:
                        path = phases[name][measure][i]
                        checks[name](path, await _one(clients[name], path, series[name]))
                for name in names:
                    out[name][measure] = series[name]
            else:
                for name in names if turn % 2 == 0 else names[::-1]:
                    out[name][measure] = await _run(
                        clients[name], phases[name][measure], concurrency, checks[name]
                    )
    return out


def _warm(engine: Engine) -> None:
    """PostgreSQL's buffers: every grid row and both indexes read once before timing."""
    with engine.connect() as connection:
        connection.execute(text("SELECT sum(ST_NPoints(geom)), count(code) FROM grid"))
        connection.execute(
            text("SELECT count(*) FROM grid WHERE geom && ST_MakeEnvelope(0, 0, 180, 90, 4326)")
        )
        connection.execute(text("SELECT count(*) FROM grid WHERE code > '0'"))


def compare(names: tuple[str, ...] = ("tipg", "wangge")) -> list[str]:
    if os.environ.get("BENCH_REUSE_DB") == "1":  # while developing: the last run's district
        engine = district_database_reused(DATABASE)
    else:
        engine = district_database(DATABASE)
    levels = create_views(engine)
    url = get_settings().cluster.url(database=DATABASE)
    with engine.connect() as connection:
        total = connection.execute(
            text("SELECT count(*) FROM tipg_bench.grids_micro_grid")
        ).scalar_one()
        buildings = connection.execute(text("SELECT count(*) FROM building")).scalar_one()
    rng = np.random.default_rng(3)
    offsets = [int(o) for o in rng.permutation(np.arange(0, total, PAGE))]
    boxes = community_boxes(engine)
    tiles = tiles_with_data(engine, TILE_LAYER)
    building_tiles = tiles_with_data(engine, BUILDING_LAYER)
    _warm(engine)
    results: dict[tuple[str, int], dict[str, Series]] = {}
    load = os.getloadavg()[0]
    sides = {
        "tipg": Workload(THEIR_ITEMS, THEIR_TILE, offsets, boxes, tiles, building_tiles, True),
        "wangge": Workload(OUR_ITEMS, OUR_TILE, offsets, boxes, tiles, building_tiles, False),
    }
    for concurrency in (1, CONCURRENCY):
        # Fresh servers for each mode: each has its cold pass.
        with contextlib.ExitStack() as stack:
            bases = {}
            for name in names:
                starter = tipg_server(url, levels) if name == "tipg" else wangge_server(url)
                bases[name] = stack.enter_context(starter).base
            measured = asyncio.run(_measure(bases, {n: sides[n] for n in names}, concurrency))
        for name in names:
            results[(name, concurrency)] = measured[name]
    engine.dispose()
    if len(names) == 1:
        return _table_one(names[0], results, total)
    same = _same(sides["wangge"], sides["tipg"])
    same += f"; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    return _table(results, (total, buildings), len(boxes), tiles, same)


def _same(ours: Workload, theirs: Workload) -> str:
    """How many pages and bbox answers differ in their ids; how many tiles are empty."""
    pairs = [(ours.page(o), theirs.page(o)) for o in [*ours.offsets, DEEP_OFFSET]]
    pairs += [(ours.bbox(b), theirs.bbox(b)) for b in ours.boxes]
    differ = sum(1 for a, b in pairs if ours.seen.get(a) != theirs.seen.get(b))
    empty = sum(1 for side in (ours, theirs) for v in side.seen.values() if v == 0)
    return f"{differ} of {len(pairs)} pages and bbox answers differ in ids, {empty} empty tiles"


def _table(
    results: dict[tuple[str, int], dict[str, Series]],
    counts: tuple[int, int],
    boxes: int,
    tiles: list[TileKey],
    same: str,
) -> list[str]:
    total, buildings = counts
    lines = [
        f"## (g) OGC API Features and vector tiles: wangge vs tipg 1.6.1 ({total:,} micro-grids)",
        "",
        f"Pages of {PAGE:,} features, {boxes} community bboxes, {len(tiles)} tiles z12–z16 "
        "(z12: the 网格 layer, z13–z16: micro-grids) "
        f"and {TILES_PER_ZOOM * len(BUILDING_LAYER)} building tiles z15–z16 "
        f"({buildings:,} buildings) "
        f"({', '.join(f'z{z}: {sum(1 for t in tiles if t[1] == z)}' for z in ZOOMS)}); "
        f"{same}. Milliseconds, p50 / p99; ratio = tipg ÷ wangge (p50, p99).",
        "",
        "| measure | connections | wangge p50 / p99 | tipg p50 / p99 | ratio p50 / p99 "
        "| bytes on the wire wangge / tipg |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for concurrency in (1, CONCURRENCY):
        ours, theirs = results[("wangge", concurrency)], results[("tipg", concurrency)]
        for measure, series in ours.items():
            other = theirs[measure]
            lines.append(
                f"| {measure} | {concurrency} | {series.p(50):.1f} / {series.p(99):.1f} "
                f"| {other.p(50):.1f} / {other.p(99):.1f} "
                f"| {other.p(50) / series.p(50):.1f}× / {other.p(99) / series.p(99):.1f}× "
                f"| {np.mean(series.wire):,.0f} / {np.mean(other.wire):,.0f} |"
            )
    lines += ["", "Tiles, sequential, p50 ms by zoom (wangge / tipg), cold then repeated:", ""]
    for measure in ("tiles cold", "tiles repeated"):
        parts = []
        for z in ZOOMS:
            our_ms = _zoom(results[("wangge", 1)][measure], z)
            their_ms = _zoom(results[("tipg", 1)][measure], z)
            parts.append(f"z{z} {our_ms:.1f} / {their_ms:.1f}")
        lines.append(f"- {measure}: " + "; ".join(parts))
    return lines


def _zoom(series: Series, z: int) -> float:
    """p50 of the tiles of zoom z in a series (the zoom is the path's first number after
    WebMercatorQuad on both sides)."""
    chosen = [
        ms
        for ms, path in zip(series.ms, series.paths, strict=True)
        if path.split("/WebMercatorQuad/")[1].split("/")[0] == str(z)
    ]
    return float(np.median(chosen)) if chosen else float("nan")


def _table_one(
    name: str, results: dict[tuple[str, int], dict[str, Series]], total: int
) -> list[str]:
    lines = [f"## {name} alone ({total:,} micro-grids), ms p50 / p99", ""]
    for (_, concurrency), measures in results.items():
        for measure, series in measures.items():
            lines.append(
                f"- {measure}, {concurrency} connection(s): {series.p(50):.1f} / "
                f"{series.p(99):.1f} ({np.mean(series.wire):,.0f} bytes)"
            )
    return lines


def main() -> None:
    """`python -m bench.ogc_tipg [tipg|wangge]`: both (the benchmark) or one side only."""
    if len(sys.argv) > 1:
        print("\n".join(compare((sys.argv[1],))))
        return
    write_result("ogc_tipg", compare())


if __name__ == "__main__":
    main()
