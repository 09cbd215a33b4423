"""(a) Bulk lookup: the in-memory index vs a PostGIS batch join (COPY into a temp table + GiST join)."""

from __future__ import annotations

import numpy as np

from api.db.grids import owners_by_postgis
from bench.common import active_index, engine, street_points, timed, write_result

POINTS = 1_000_000


def postgis_join(db, lon: np.ndarray, lat: np.ndarray, generation: int) -> list[str | None]:
    """What a batch job does without wangge: load the points, index them, join with the tie-break."""
    with db.begin() as connection:
        return owners_by_postgis(connection, lon, lat, generation)


def main() -> None:
    db = engine()
    index = active_index(db)
    lon, lat = street_points(index, POINTS)
    locate_s, found = timed(lambda: index.locate(lon, lat))
    full_s, _ = timed(lambda: index.lookup(lon, lat), repeat=1)
    join_s, owners = timed(lambda: postgis_join(db, lon, lat, index.generation), repeat=1)
    codes = np.array([r.code for r in index.records] + [None], dtype=object)[found]
    agree = bool((codes == np.array(owners, dtype=object)).all())
    write_result(
        "bulk_lookup",
        [
            f"## (a) Bulk lookup, {POINTS:,} points on the demo street (generation {index.generation})",
            "",
            "| method | seconds | points/s | vs PostGIS join |",
            "| --- | ---: | ---: | ---: |",
            f"| wangge index: grid assignment (`locate`) | {locate_s:.3f} | {POINTS / locate_s:,.0f} | {join_s / locate_s:.1f}× |",
            f"| wangge index: full answer (edge distance, runner-up, nearest) | {full_s:.3f} | {POINTS / full_s:,.0f} | {join_s / full_s:.1f}× |",
            f"| PostGIS: COPY + GiST index + ST_Covers join (baseline) | {join_s:.3f} | {POINTS / join_s:,.0f} | 1.0× |",
            "",
            f"Answers agree with PostGIS on every point: {agree}. Raster: {index.raster_stats}.",
        ],
    )


if __name__ == "__main__":
    main()
