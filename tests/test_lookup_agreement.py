"""PostGIS is the authority: the in-memory index must agree with ST_Covers and the tie-break
(finest level, then smallest code) on 100,000 random points and on every vertex of the demo."""

from __future__ import annotations

import numpy as np
import shapely

from api.db.grids import owners_by_postgis
from api.lookup.index_store import load_grid_index


def _postgis_owner(connection, lon: np.ndarray, lat: np.ndarray, generation: int) -> np.ndarray:
    return np.array(owners_by_postgis(connection, lon, lat, generation), dtype=object)


def _index_owner(index, lon, lat) -> np.ndarray:
    found = index.locate(lon, lat)
    codes = np.array([r.code for r in index.records] + [None], dtype=object)
    return codes[found]


def test_random_points_agree(demo_engine):
    with demo_engine.connect() as connection:
        index = load_grid_index(connection, 1)
        xmin, ymin, xmax, ymax = shapely.total_bounds(index.geometries)
        pad_x, pad_y = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05
        rng = np.random.default_rng(2024)
        lon = rng.uniform(xmin - pad_x, xmax + pad_x, 100_000)
        lat = rng.uniform(ymin - pad_y, ymax + pad_y, 100_000)
        expected = _postgis_owner(connection, lon, lat, 1)  # inside the connection's transaction
    got = _index_owner(index, lon, lat)
    assert (got == expected).all(), np.flatnonzero(got != expected)[:10]
    assert 0.7 < np.mean(got != None) < 1.0  # noqa: E711 — some points fall outside the street


def test_every_vertex_of_every_shared_edge_agrees(demo_engine):
    """Vertices sit on 2–4 grids at once: only the tie-break decides, and both sides must agree."""
    with demo_engine.connect() as connection:
        index = load_grid_index(connection, 1)
        micro = index.geometries[
            [i for i, r in enumerate(index.records) if r.level == "micro_grid"]
        ]
        vertices = np.unique(shapely.get_coordinates(shapely.boundary(micro)), axis=0)
        # …and the midpoint of every edge, which lies on the edge up to floating-point rounding.
        rings = shapely.get_parts(shapely.boundary(micro))
        midpoints = np.unique(
            np.concatenate(
                [(c[:-1] + c[1:]) / 2 for c in (shapely.get_coordinates(r) for r in rings)]
            ),
            axis=0,
        )
        probes = np.concatenate([vertices, midpoints])
        lon, lat = probes[:, 0], probes[:, 1]
        expected = _postgis_owner(connection, lon, lat, 1)  # inside the connection's transaction
    got = _index_owner(index, lon, lat)
    assert len(vertices) > 2000 and len(midpoints) > 3000
    assert (got == expected).all(), np.flatnonzero(got != expected)[:10]
    shared = index.lookup(vertices[:, 0], vertices[:, 1])
    assert shared.on_boundary[shared.grid >= 0].all()
