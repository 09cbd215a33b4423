"""The demo street's cameras: where on the roads (chosen from `camera_sites`) and their invented state."""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString, Polygon

from spatial.demo_street import STREET_CODE, beside, camera_sites

CAMERA_COUNT = 137
KERB_OFFSET_M = 6.0  # mounted at the kerb, not in the carriageway


def cameras(
    rng: np.random.Generator,
    roads: list[LineString],
    outline: Polygon,
    street_code: str = STREET_CODE,
) -> list[dict]:
    """Cameras at road junctions and along roads, each looking along its road (metric geometry)."""
    sites = camera_sites(roads, outline)
    chosen = rng.choice(len(sites), size=CAMERA_COUNT, replace=False)
    statuses = ["online"] * 128 + ["offline"] * 6 + ["fault"] * 3
    result = []
    for number, index in enumerate(sorted(int(i) for i in chosen), start=1):
        point, heading = sites[index]
        if rng.random() < 0.5:
            heading = (heading + 180.0) % 360
        result.append(
            {
                "code": f"{street_code}C{number:03d}",
                "name": f"千里眼监控点{number:03d}",
                "kind": "camera",
                "heading_deg": round(float(heading), 1),
                "fov_deg": float(rng.choice([60.0, 75.0, 90.0, 110.0])),
                "range_m": float(rng.choice([60.0, 80.0, 100.0, 150.0])),
                "status": statuses[number - 1],
                "geom": beside(point, heading, KERB_OFFSET_M),
            }
        )
    return result
