"""A whole district in one service (issue 15 §3): the demo district of N = 20 streets
(`wangge demo load --streets 20`: ~24,000 micro-grids, ~400,000 buildings), measured in one run.

- load: `wangge demo load --streets N` into a fresh database (create + migrate + load), timed
  when the benchmark builds its database; with `--load` also when it reuses one (the real CLI in
  a scratch database of its own, dropped afterwards);
- index build, in-process: the grid index (`GridIndex`, SQL + build) and the address register
  (`Gazetteer`) apart, and a worker's whole `IndexStore.refresh()`;
- lookup throughput, in-process: 1,000,000 event-like points (on grid edges ± 8 m, where events
  are reported: roads) and uniform points; `locate` (grid only) and `lookup` (full answer);
- coverage check at 1, 2, 5, 10 and 20 streets (the first k streets of the same district, check
  only) — time per street against 1 street, linear growth keeps the ratio near 1 — and the
  whole district end to end (load from PostGIS, check, serialise);
- one server process (bench/district_pages.py): start-up time, memory (RSS, PSS, USS from
  /proc/<pid>/smaps_rollup) after start-up and its peak after the page and KPI work; several
  workers sharing one index are measured by bench/index_memory.py;
- the district overview `/map/street` in Chromium (bytes transferred with its vector tiles, time
  to network idle, then with the micro-grid layer switched on), the size of every page the
  district serves (goal: none over 1.5 MB), the KPI queries over HTTP, an HTTP lookup batch.

`--quick`: N = 2 (database wangge_bench_district2) while developing. `BENCH_REUSE_DB=1` reuses
the district database another benchmark made (bench.common.district_database_reused).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import shapely
from sqlalchemy import Engine, create_engine, text

from api.coverage import load_buildings, load_cameras, load_grids, load_options, run_check
from api.db.gazetteer import load_gazetteer
from api.db.generations import generation_at
from api.geocode.index import Gazetteer
from api.lookup.index_store import IndexStore, load_grid_index
from api.settings import PROJECT_ROOT, get_settings
from bench.common import district_database, district_database_reused, event_points, write_result
from spatial.coverage import Cameras, CheckOptions, GridSet, check
from spatial.lookup import GridIndex

FULL_STREETS = 20
STEPS = (1, 2, 5, 10, 20)
POINTS = 1_000_000


def database_name(streets: int) -> str:
    # N = 20: the one bench/ogc_tipg.py and bench/tiles_pyramid.py use.
    return f"wangge_bench_district{streets}"


@dataclass
class Figures:
    """Everything measured, as Markdown lines per section."""

    streets: int
    sections: dict[str, list[str]] = field(default_factory=dict)
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # what, figure, goal

    def add(self, what: str, figure: str, goal: str = "") -> None:
        self.summary.append((what, figure, goal))
        print(f"  {what}: {figure} {goal}", flush=True)


# --- the database ------------------------------------------------------------------------------


def _holds_district(name: str, streets: int) -> bool:
    """Whether `name` exists and holds the district (what district_database_reused reuses)."""
    from sqlalchemy.exc import OperationalError

    engine = create_engine(get_settings().cluster.url(database=name))
    try:
        with engine.connect() as connection:
            return (
                connection.execute(
                    text(
                        "SELECT count(*) FROM audit_log WHERE action = 'demo.load' "
                        "AND actor = 'bench' AND CAST(details ->> 'streets' AS int) = :n"
                    ),
                    {"n": streets},
                ).scalar_one()
                == 1
            )
    except OperationalError:
        return False
    finally:
        engine.dispose()


def district(streets: int, figures: Figures) -> Engine:
    name = database_name(streets)
    reuse = os.environ.get("BENCH_REUSE_DB") == "1" and _holds_district(name, streets)
    started = time.perf_counter()
    engine = district_database_reused(name, streets) if reuse else district_database(name, streets)
    seconds = time.perf_counter() - started
    if reuse:
        figures.add("load", f"reused {name} (not timed; `--load` times a fresh one)")
    else:
        figures.add(
            f"load: create + migrate + `wangge demo load --streets {streets}` (in-process)",
            f"{seconds:.0f} s",
        )
    return engine


def cli_load(streets: int, figures: Figures) -> None:
    """`wangge demo load --streets N` (the real CLI) into a scratch database, then dropped."""
    from psycopg2 import sql

    from api.db import migrate

    settings = get_settings()
    name = f"wangge_bench_district_load{streets}"
    admin = create_engine(settings.cluster.url(database="postgres"), isolation_level="AUTOCOMMIT")

    def run(statement: sql.Composable) -> None:
        with admin.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            cursor.execute(statement)
            cursor.close()

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    run(drop)
    try:
        started = time.perf_counter()
        run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = settings.cluster.url(database=name)
        scratch = create_engine(url)
        with scratch.begin() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        scratch.dispose()
        migrate.upgrade(url)
        prepared = time.perf_counter() - started
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
        env["WANGGE_DATABASE_URL"] = url
        wangge = str(PROJECT_ROOT / ".venv" / "bin" / "wangge")
        started = time.perf_counter()
        done = subprocess.run(
            [wangge, "demo", "load", "--streets", str(streets)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        loaded = time.perf_counter() - started
        print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "", flush=True)
        figures.add(
            f"`wangge demo load --streets {streets}` (fresh database, CLI)",
            f"{loaded:.0f} s (+ {prepared:.0f} s create and migrate)",
        )
    finally:
        run(drop)
        admin.dispose()


# --- the index ---------------------------------------------------------------------------------


def index_build(engine: Engine, figures: Figures) -> GridIndex:
    with engine.connect() as connection:
        generation = generation_at(connection)
        started = time.perf_counter()
        index = load_grid_index(connection, generation)
        grid_s = time.perf_counter() - started
        started = time.perf_counter()
        gazetteer = Gazetteer.build(load_gazetteer(connection))
        address_s = time.perf_counter() - started
    store = IndexStore(engine)
    started = time.perf_counter()
    store.refresh()
    refresh_s = time.perf_counter() - started
    micro = sum(1 for r in index.records if r.level == "micro_grid")
    figures.add(
        f"grid index (`GridIndex`, {len(index.records):,} grids, {micro:,} micro-grids; SQL + build)",
        f"{grid_s:.2f} s",
        "≤ 10 s",
    )
    figures.add(
        f"gazetteer (`Gazetteer`, {gazetteer.counts['building']:,} buildings, "
        f"{gazetteer.counts['compound']:,} compounds, {gazetteer.counts['road']:,} roads; SQL + build)",
        f"{address_s:.2f} s",
    )
    figures.add("a worker's whole index (`IndexStore.refresh()`)", f"{refresh_s:.2f} s", "≤ 10 s")
    stats = getattr(index, "raster_stats", None)
    if stats:  # the raster answers most points; the rest take the exact (STRtree) path
        figures.add(
            "grid index raster (cells; share resolved without the exact path)",
            ", ".join(f"{k} {v:,.4g}" for k, v in stats.items()),
        )
    return index


def lookup_throughput(
    index: GridIndex, points: int, figures: Figures
) -> tuple[np.ndarray, np.ndarray]:
    """Points per second of the index in this process; returns the event-like points."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(index.geometries)
    rng = np.random.default_rng(1)
    sets = {
        "event-like": event_points(index, points, seed=3),
        "uniform": (rng.uniform(xmin, xmax, points), rng.uniform(ymin, ymax, points)),
    }
    for name, (lon, lat) in sets.items():
        index.locate(lon[:1000], lat[:1000])
        best = min(_seconds(lambda lon=lon, lat=lat: index.locate(lon, lat)) for _ in range(3))
        full = _seconds(lambda lon=lon, lat=lat: index.lookup(lon, lat))
        figures.add(
            f"in-process lookup, {points:,} {name} points: grid only / full answer",
            f"{points / best / 1e6:.2f} M/s / {points / full / 1e6:.2f} M/s",
        )
    return sets["event-like"]


def _seconds(function) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


# --- coverage ----------------------------------------------------------------------------------


def _subset(
    grids: GridSet,
    roots: np.ndarray,
    keep: set[str],
    buildings: tuple[list[str], np.ndarray],
    building_roots: np.ndarray,
    cameras: Cameras,
    camera_roots: np.ndarray,
) -> tuple[GridSet, tuple[list[str], np.ndarray], Cameras]:
    g = np.flatnonzero(np.isin(roots, list(keep)))
    b = np.flatnonzero(np.isin(building_roots, list(keep)))
    c = np.flatnonzero(np.isin(camera_roots, list(keep)))
    subset = GridSet(
        [grids.codes[i] for i in g],
        [grids.names[i] for i in g],
        [grids.levels[i] for i in g],
        [grids.parents[i] for i in g],
        grids.geometries[g],
        [grids.households[i] for i in g],
    )
    return (
        subset,
        ([buildings[0][i] for i in b], buildings[1][b]),
        Cameras(
            [cameras.codes[i] for i in c],
            cameras.points[c],
            cameras.heading_deg[c],
            cameras.fov_deg[c],
            cameras.range_m[c],
        ),
    )


def coverage_growth(engine: Engine, index: GridIndex, streets: int, figures: Figures) -> None:
    with engine.connect() as connection:
        generation = generation_at(connection)
        started = time.perf_counter()
        report = run_check(connection, generation, CheckOptions())
        end_to_end = time.perf_counter() - started
        grids = load_grids(connection, generation)
        buildings, cameras = load_buildings(connection), load_cameras(connection)
        base_options = load_options(connection, CheckOptions())
    parent = dict(zip(grids.codes, grids.parents, strict=True))

    def root(code: str | None) -> str | None:
        while code is not None and parent.get(code) is not None:
            code = parent[code]
        return code

    roots = np.array([root(c) for c in grids.codes], dtype=object)
    record_roots = np.array([root(r.code) for r in index.records] + [None], dtype=object)

    def located(geometries: np.ndarray) -> np.ndarray:
        inside = shapely.point_on_surface(geometries)
        found = index.locate(shapely.get_x(inside), shapely.get_y(inside))
        return record_roots[np.where(found < 0, len(index.records), found)]

    street_codes = sorted(c for c, p in zip(grids.codes, grids.parents, strict=True) if p is None)
    building_roots, camera_roots = located(buildings[1]), located(cameras.points)
    rows, per_street_one = [], 0.0
    for k in [s for s in STEPS if s <= len(street_codes)]:
        grid_set, b, c = _subset(
            grids,
            roots,
            set(street_codes[:k]),
            buildings,
            building_roots,
            cameras,
            camera_roots,
        )
        options = CheckOptions(
            households_band=dict(base_options.households_band),
            required_roles={k_: list(v) for k_, v in base_options.required_roles.items()},
            roles_present={k_: set(v) for k_, v in base_options.roles_present.items()},
        )
        seconds = _best_check(grid_set, options, b, c, repeat=2)
        per_street = seconds / k
        per_street_one = per_street_one or per_street
        rows.append(
            f"| {k} | {len(grid_set.codes):,} | {len(b[0]):,} | {len(c.codes):,} | "
            f"{seconds:.2f} | {per_street:.3f} | {per_street / per_street_one:.2f}× |"
        )
    figures.sections["Coverage check: growth with the streets checked (check only, same run)"] = [
        "| streets | grids | buildings | cameras | seconds | s per street | per street vs 1 street |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Linear growth keeps the last column near 1.0×. The whole district end to end (load from "
        f"PostGIS, check, serialise): {end_to_end:.1f} s, {report['summary']['errors']} errors, "
        f"{report['summary']['warnings']} warnings.",
    ]
    figures.add(f"coverage check, {streets} streets, end to end", f"{end_to_end:.1f} s", "linear")


def _best_check(
    grids: GridSet,
    options: CheckOptions,
    buildings: tuple[list[str], np.ndarray],
    cameras: Cameras,
    repeat: int,
) -> float:
    return min(_seconds(lambda: check(grids, options, buildings, cameras)) for _ in range(repeat))


# --- the run -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2 streets, fewer points")
    parser.add_argument("--streets", type=int, default=None)
    parser.add_argument("--load", action="store_true", help="time the CLI load in a scratch db")
    parser.add_argument("--load-only", action="store_true", help="--load, and nothing else")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(
        argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else []
    )
    streets = args.streets or (2 if args.quick else FULL_STREETS)
    count = 200_000 if args.quick else POINTS
    figures = Figures(streets)
    load_avg = os.getloadavg()[0]
    print(f"district benchmark, {streets} streets", flush=True)
    if args.load_only:  # a job of its own (the heavy lock: keep each job short)
        cli_load(streets, figures)
        what, figure, _ = figures.summary[-1]
        write_result(f"district_load{streets}", [f"| {what} | {figure} |"])
        return
    engine = district(streets, figures)
    if args.load:
        cli_load(streets, figures)
    index = index_build(engine, figures)
    points = lookup_throughput(index, count, figures)
    coverage_growth(engine, index, streets, figures)
    from bench import district_pages

    district_pages.measure(
        engine, database_name(streets), figures, points, browser=not args.no_browser
    )
    with engine.connect() as connection:
        events = connection.execute(text("SELECT count(*) FROM event")).scalar_one()
        buildings = connection.execute(text("SELECT count(*) FROM building")).scalar_one()
    lines = [
        f"## District in one service: {streets} streets ({len(index.records):,} grids, "
        f"{buildings:,} buildings, {events:,} events)",
        "",
        f"Load average when it began: {load_avg:.1f}; {os.cpu_count()} cores; the server pinned "
        "to one core (bench/tipg_env.py).",
        "",
        "| measure | figure | goal |",
        "| --- | ---: | --- |",
        *[f"| {what} | {figure} | {goal} |" for what, figure, goal in figures.summary],
    ]
    for title, body in figures.sections.items():
        lines += ["", f"### {title}", "", *body]
    write_result("district" if streets == FULL_STREETS else f"district{streets}", lines)


if __name__ == "__main__":
    main()
