"""Coverage check speed: the demo street (1,202 micro-grids, ~20,000 buildings, 137 cameras), and the
growth at 10× the grids (the street tiled ten times side by side), in one run."""

from __future__ import annotations

import time

import numpy as np
import shapely

from api.coverage import load_buildings, load_cameras, load_grids, load_options, run_check
from api.db.generations import generation_at
from bench.common import engine, write_result
from spatial.coverage import Cameras, CheckOptions, GridSet, check


def _tiled(grids: GridSet, buildings, cameras: Cameras, copies: int):  # type: ignore[no-untyped-def]
    width = (
        shapely.total_bounds(grids.geometries)[2]
        - shapely.total_bounds(grids.geometries)[0]
        + 0.001
    )
    codes, names, levels, parents, geoms, households = [], [], [], [], [], []
    b_codes, b_geoms, c_codes, c_points = [], [], [], []
    for k in range(copies):
        dx = k * width
        suffix = f"#{k}"
        codes += [c + suffix for c in grids.codes]
        names += grids.names
        levels += grids.levels
        parents += [p + suffix if p else None for p in grids.parents]
        geoms += list(
            shapely.transform(grids.geometries, lambda xy, dx=dx: xy + np.array([dx, 0.0]))
        )
        households += grids.households
        b_codes += [c + suffix for c in buildings[0]]
        b_geoms += list(shapely.transform(buildings[1], lambda xy, dx=dx: xy + np.array([dx, 0.0])))
        c_codes += [c + suffix for c in cameras.codes]
        c_points += list(
            shapely.transform(cameras.points, lambda xy, dx=dx: xy + np.array([dx, 0.0]))
        )
    tiled = GridSet(codes, names, levels, parents, np.array(geoms), households)
    many_cameras = Cameras(
        c_codes,
        np.array(c_points),
        np.tile(cameras.heading_deg, copies),
        np.tile(cameras.fov_deg, copies),
        np.tile(cameras.range_m, copies),
    )
    return tiled, (b_codes, np.array(b_geoms)), many_cameras


def main() -> None:
    db = engine()
    with db.connect() as connection:
        generation = generation_at(connection)
        started = time.perf_counter()
        report = run_check(connection, generation, CheckOptions())
        end_to_end = time.perf_counter() - started
        grids, buildings, cameras = (
            load_grids(connection, generation),
            load_buildings(connection),
            load_cameras(connection),
        )
        options = load_options(connection, CheckOptions())
    started = time.perf_counter()
    check(grids, options, buildings, cameras)
    one = time.perf_counter() - started
    tiled = _tiled(grids, buildings, cameras, 10)
    started = time.perf_counter()
    big = check(tiled[0], options, tiled[1], tiled[2])
    ten = time.perf_counter() - started
    micro = sum(1 for level in grids.levels if level == "micro_grid")
    write_result(
        "coverage_check",
        [
            "## Coverage check",
            "",
            "| input | grids | buildings | cameras | seconds |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| demo street, end to end (load from PostGIS, check, serialise) | {len(grids.codes):,} | {len(buildings[0]):,} | {len(cameras.codes)} | {end_to_end:.2f} |",
            f"| demo street, check only | {len(grids.codes):,} | {len(buildings[0]):,} | {len(cameras.codes)} | {one:.2f} |",
            f"| 10× the street, check only | {len(tiled[0].codes):,} | {len(tiled[1][0]):,} | {len(tiled[2].codes)} | {ten:.2f} |",
            "",
            f"{micro:,} micro-grids; the demo reports {report['summary']['errors']} errors, the tiled street "
            f"{big['summary']['errors']}. Growth at 10× the grids: {ten / one:.1f}× the time (linear would be 10×).",
        ],
    )


if __name__ == "__main__":
    main()
