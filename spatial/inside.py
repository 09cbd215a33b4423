"""Points put inside a grid: where an event goes when a dispatcher places it on a grid by hand.

A crossing or a road lies on grid edges, and an event point on an edge belongs to whichever grid
the lookup's tie-break picks (finest, then the smaller code). A dispatcher who chooses the other
grid needs the point a little inside it, or the next redraw (which re-places open events by their
points) would quietly undo the choice. Pure geometry: WGS84 in and out, metres measured in the
point's Gauss-Kruger zone.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely import ops

from spatial.crs import WGS84, metric_crs_for, transform

INSIDE_MARGIN_M = 1.0  # how far inside the edge a moved point goes


def point_inside(
    polygon: shapely.Geometry, lon: float, lat: float, margin_m: float = INSIDE_MARGIN_M
) -> tuple[float, float, float]:
    """The point of `polygon` nearest to (lon, lat), `margin_m` inside its edge where the polygon
    is wide enough (else its point on surface): (lon, lat, metres moved). A point already
    `margin_m` inside stays where it is."""
    point = shapely.Point(lon, lat)
    crs = metric_crs_for(point)
    metric_point = transform(point, WGS84, crs)
    metric_polygon = transform(polygon, WGS84, crs)
    core = metric_polygon.buffer(-margin_m)
    if core.is_empty:
        core = shapely.point_on_surface(metric_polygon)
    if core.covers(metric_point):
        return lon, lat, 0.0
    nearest = ops.nearest_points(core, metric_point)[0]
    moved = float(nearest.distance(metric_point))
    back = transform(nearest, crs, WGS84)
    return float(back.x), float(back.y), moved


def surface_point(polygon: shapely.Geometry) -> tuple[float, float]:
    """A WGS84 point guaranteed inside the polygon (not its centroid, which may fall outside)."""
    point = shapely.point_on_surface(polygon)
    return float(point.x), float(point.y)


def nearest_sample(
    samples_lon: np.ndarray, samples_lat: np.ndarray, polygon: shapely.Geometry
) -> tuple[int, float]:
    """The index of the sample point nearest to the polygon and its distance in metres."""
    points = shapely.points(np.column_stack([samples_lon, samples_lat]))
    crs = metric_crs_for(points)
    distances = shapely.distance(transform(points, WGS84, crs), transform(polygon, WGS84, crs))
    best = int(np.argmin(distances))
    return best, float(distances[best])
