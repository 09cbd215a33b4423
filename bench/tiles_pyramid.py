"""(h) A full vector-tile pyramid z10–z16 of a district: time and the server's peak memory.

The database holds the lead's demo district (`wangge demo load --streets 20`, via
bench.common.district_database: 24,040 micro-grids), the one bench/ogc_tipg.py made (reused
when it holds that district, else made afresh). Every WebMercatorQuad tile z10–z16 that
touches the district's extent is requested once for each grid layer at the zooms wangge's maps
draw it (api/tiles/matrix.py LEVEL_MIN_ZOOM: 街道 and 社区 z10–z16, 网格 z11–z16, 微网格
z13–z16) from a freshly started server (one uvicorn worker, pinned to one core), with 2
connections, then the whole pyramid once more (answered from the tile cache). Measured: wall time of each pass, tiles per second, bytes, and the
server's resident memory — at start, its peak (VmHWM of the process) and at the end. tipg
renders the same pyramid from the same database in the same run, as the anchor.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from api.settings import get_settings
from api.tiles.matrix import LEVEL_MIN_ZOOM
from bench.common import district_database_reused, write_result
from bench.ogc_tipg import DATABASE, OUR_TILE, THEIR_TILE, tile_of, wangge_server
from bench.tipg_env import Server, create_views, tipg_id, tipg_server

ZOOMS = range(10, 17)
CONNECTIONS = 2
ROUNDS = 2


def _memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def pyramid(
    extent: tuple[float, float, float, float], levels: list[str]
) -> list[tuple[str, int, int, int]]:
    """(level, z, x, y) of every tile over the extent, each level from its first zoom."""
    xmin, ymin, xmax, ymax = extent
    tiles = []
    for level in levels:
        for z in ZOOMS:
            if z < LEVEL_MIN_ZOOM.get(level, 12):
                continue
            x0, y0 = tile_of(xmin, ymax, z)
            x1, y1 = tile_of(xmax, ymin, z)
            tiles += [(level, z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return tiles


async def _pass(base: str, paths: list[str]) -> tuple[float, int, int]:
    """Seconds, bytes (decoded) and tiles with data for one pass over `paths`."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    for _ in range(CONNECTIONS):
        queue.put_nowait(None)
    sizes: list[int] = []
    limits = httpx.Limits(max_connections=CONNECTIONS)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as client:

        async def worker() -> None:
            while (path := await queue.get()) is not None:
                response = await client.get(path)
                if response.status_code not in (200, 204):
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
                sizes.append(len(response.content))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        seconds = time.perf_counter() - started
    return seconds, sum(sizes), sum(1 for s in sizes if s)


def _render(
    server: Server, template: str, tiles: list[tuple[str, int, int, int]], theirs: bool
) -> dict[str, float]:
    paths = [
        template.format(c=tipg_id(f"grids-{lv}") if theirs else f"grids-{lv}", z=z, x=x, y=y)
        for lv, z, x, y in tiles
    ]
    start = _memory_kb(server.pid)
    cold, size, full = asyncio.run(_pass(server.base, paths))
    after_cold = _memory_kb(server.pid)
    warm, _, _ = asyncio.run(_pass(server.base, paths))
    end = _memory_kb(server.pid)
    return {
        "cold_s": cold,
        "warm_s": warm,
        "bytes": size,
        "with_data": full,
        "rss_start_mb": start["VmRSS"] / 1024,
        "rss_after_cold_mb": after_cold["VmRSS"] / 1024,
        "peak_mb": end["VmHWM"] / 1024,
        "rss_end_mb": end["VmRSS"] / 1024,
    }


def measure(names: tuple[str, ...] = ("wangge", "tipg")) -> list[str]:
    url = get_settings().cluster.url(database=DATABASE)
    engine = district_database_reused(DATABASE)  # made by bench/ogc_tipg.py in `make bench`
    levels = create_views(engine)
    with engine.connect() as connection:
        total = connection.execute(
            text("SELECT count(*) FROM tipg_bench.grids_micro_grid")
        ).scalar_one()
        extent = connection.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM tipg_bench.grids_micro_grid) s"
            )
        ).one()
        connection.execute(text("SELECT sum(ST_NPoints(geom)), count(code) FROM grid"))
    engine.dispose()
    tiles = pyramid(tuple(extent), levels)
    figures: dict[str, dict[str, float]] = {}
    load = os.getloadavg()[0]
    for round_ in range(ROUNDS):
        # Rounds alternate who goes first; each server's faster round counts (the machine is
        # shared), its memory is the larger of the rounds'.
        for name in names if round_ % 2 == 0 else names[::-1]:
            starter = tipg_server(url, levels) if name == "tipg" else wangge_server(url)
            with starter as server:
                template = THEIR_TILE if name == "tipg" else OUR_TILE
                got = _render(server, template, tiles, name == "tipg")
            best = figures.get(name)
            if best is None or got["cold_s"] < best["cold_s"]:
                if best is not None:
                    got["peak_mb"] = max(got["peak_mb"], best["peak_mb"])
                figures[name] = got
            else:
                best["peak_mb"] = max(got["peak_mb"], best["peak_mb"])
                best["warm_s"] = min(got["warm_s"], best["warm_s"])
    per_layer = ", ".join(f"{lv}: {sum(1 for t in tiles if t[0] == lv):,}" for lv in levels)
    per_zoom = ", ".join(f"z{z}: {sum(1 for t in tiles if t[1] == z)}" for z in ZOOMS)
    lines = [
        f"## (h) Tile pyramid z10–z16 of a district ({total:,} micro-grids, {len(tiles):,} tiles)",
        "",
        f"Tiles per layer: {per_layer}; per zoom: {per_zoom}. One server process, "
        f"{CONNECTIONS} connections, the faster of {ROUNDS} rounds (fresh servers); memory is "
        "the server process's resident set (VmRSS; peak = VmHWM, the larger of the rounds). "
        f"Load average when it began: {load:.1f}.",
        "",
        "| server | first pass (render) | second pass | tiles/s first | tiles with data "
        "| MB of tiles "
        "| RSS at start | RSS peak | RSS at end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['cold_s']:.1f} s | {f['warm_s']:.1f} s "
            f"| {len(tiles) / f['cold_s']:.0f} | {f['with_data']:,.0f} | {f['bytes'] / 1e6:.1f} "
            f"| {f['rss_start_mb']:.0f} MB | {f['peak_mb']:.0f} MB | {f['rss_end_mb']:.0f} MB |"
        )
    if "wangge" in figures and "tipg" in figures:
        ratio = figures["tipg"]["cold_s"] / figures["wangge"]["cold_s"]
        lines += ["", f"First pass: tipg takes {ratio:.1f}× wangge's time."]
    return lines


def main() -> None:
    """`python -m bench.tiles_pyramid [wangge|tipg]`: both (the benchmark) or one side only."""
    if len(sys.argv) > 1:
        print("\n".join(measure((sys.argv[1],))))
        return
    write_result("tiles_pyramid", measure())


if __name__ == "__main__":
    main()
