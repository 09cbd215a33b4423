"""Patrol tracks (巡查轨迹): checking a phone's fixes, dropping GPS jumps, simplifying the track,
and patrol coverage (巡查覆盖率) of a grid. Pure geometry: numpy and shapely in and out.

Times are epoch seconds (float). Positions are WGS84 longitude/latitude; distances are measured
in the CGCS2000 Gauss-Kruger zone of the data (spatial.crs), never in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import shapely

from spatial.chinacrs import out_of_china
from spatial.crs import WGS84, coordinate_problems, from_wgs84_xy, gauss_kruger_epsg, transform

# Streets are cut into pieces this long: a piece is walked when its middle is near a track.
STREET_PIECE_M = 5.0
# Micro-grid edges closer than this are one street (imported neighbours rarely share vertices).
STREET_SNAP_M = 0.05
SEGMENT_CHUNK = 256  # track segments asked at a time whether they reach a place


@dataclass(frozen=True)
class FixProblem:
    """Why one fix of a batch cannot be stored (`index` is its place in the batch)."""

    index: int
    code: str
    message: str


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def fix_problems(times: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> list[FixProblem]:
    """Positions that cannot be right (not numbers, swapped lon/lat, outside China) and times
    going backwards within the batch, in the batch's order. Empty when all is well."""
    times, lon, lat = (np.asarray(a, dtype=float) for a in (times, lon, lat))
    found: dict[int, FixProblem] = {}
    finite = np.isfinite(lon) & np.isfinite(lat)
    swapped = finite & out_of_china(lon, lat) & ~out_of_china(lat, lon)
    for i, problem in enumerate(coordinate_problems(lon, lat, WGS84)):
        if swapped[i]:
            found[i] = FixProblem(
                i,
                "swapped_coordinates",
                f"经纬度疑似颠倒：lon={lon[i]} 像纬度，lat={lat[i]} 像经度",
            )
        elif problem is not None:
            found[i] = FixProblem(i, "invalid_coordinates", problem)
    outside = finite & out_of_china(lon, lat) & ~swapped
    for position in np.flatnonzero(outside).tolist():
        i = position
        found.setdefault(
            i,
            FixProblem(
                i,
                "outside_china",
                f"位置 ({lon[i]}, {lat[i]}) 不在中国境内（应为 WGS84 经纬度）",
            ),
        )
    for later in (np.flatnonzero(np.diff(times) < 0) + 1).tolist():
        i = later
        found.setdefault(
            i,
            FixProblem(
                i,
                "time_backwards",
                f"第 {i} 个点的时间 {_iso(times[i])} 早于前一个点 {_iso(times[i - 1])}："
                "同一批内的点须按时间先后排列",
            ),
        )
    return [found[i] for i in sorted(found)]


def metric_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 → metres in the Gauss-Kruger zone of the points' mean longitude."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if len(lon) == 0:
        return lon, lat
    zone = f"EPSG:{gauss_kruger_epsg(float(np.mean(lon)))}"
    return from_wgs84_xy(lon, lat, zone)


@dataclass(frozen=True)
class Cleaning:
    """Which fixes are kept; the others are inaccurate or GPS jumps."""

    kept: np.ndarray  # bool per fix
    inaccurate: int
    jumps: int


def clean_fixes(
    times: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    accuracy_m: np.ndarray,
    *,
    max_speed_mps: float,
    max_accuracy_m: float,
) -> Cleaning:
    """Keep fixes in time order (strictly increasing times) that are accurate enough and reachable
    from the last kept fix at `max_speed_mps`; the rest are dropped.

    The first kept fix is the first accurate one from which the next two steps are plausible,
    so a jump at the very start does not make every later fix look unreachable.
    """
    times = np.asarray(times, dtype=float)
    count = len(times)
    kept = np.zeros(count, dtype=bool)
    accuracy = np.asarray(accuracy_m, dtype=float)
    accurate = ~(accuracy > max_accuracy_m)  # an unknown accuracy (NaN) is accepted
    candidates = np.flatnonzero(accurate)
    if len(candidates) == 0:
        return Cleaning(kept, count, 0)
    x, y = metric_xy(np.asarray(lon)[candidates], np.asarray(lat)[candidates])
    t = times[candidates]
    step_ok = np.hypot(np.diff(x), np.diff(y)) <= max_speed_mps * np.diff(t)
    plausible = np.concatenate([step_ok, [True]]) & np.concatenate([step_ok[1:], [True, True]])
    anchor = int(np.argmax(plausible)) if plausible.any() else 0
    chosen = [anchor]
    last = anchor
    for j in range(anchor + 1, len(candidates)):
        if np.hypot(x[j] - x[last], y[j] - y[last]) <= max_speed_mps * (t[j] - t[last]):
            chosen.append(j)
            last = j
    kept[candidates[chosen]] = True
    inaccurate = int(count - len(candidates))
    return Cleaning(kept, inaccurate, int(len(candidates) - len(chosen)))


def simplify_track(
    lon: np.ndarray, lat: np.ndarray, tolerance_m: float
) -> tuple[np.ndarray, float]:
    """Douglas-Peucker in metres: the indices of the fixes the stored track keeps (first and last
    always), and the simplified track's length in metres (GPS noise would inflate the raw one)."""
    count = len(lon)
    if count < 2:
        return np.arange(count), 0.0
    x, y = metric_xy(lon, lat)
    # The fix's index rides along as Z: GEOS keeps the coordinates of the vertices it retains.
    line = shapely.LineString(np.column_stack([x, y, np.arange(count, dtype=float)]))
    simplified = shapely.simplify(line, tolerance_m, preserve_topology=False)
    indices = shapely.get_coordinates(simplified, include_z=True)[:, 2].astype(np.int64)
    if len(indices) < 2:
        indices = np.array([0, count - 1])
    length = float(np.hypot(np.diff(x[indices]), np.diff(y[indices])).sum())
    return indices, length


def track_wkt(lon: np.ndarray, lat: np.ndarray, times: np.ndarray) -> str | None:
    """A LINESTRING M (M = epoch seconds); one fix becomes a line of length zero."""
    if len(lon) == 0:
        return None
    if len(lon) == 1:
        lon, lat, times = (np.repeat(a, 2) for a in (lon, lat, times))
    vertices = ", ".join(
        f"{x:.7f} {y:.7f} {m:.3f}" for x, y, m in zip(lon, lat, times, strict=True)
    )
    return f"LINESTRING M ({vertices})"


def clip_by_time(
    coords: np.ndarray,
    start: float,
    end: float,
    box: tuple[float, float, float, float] | None = None,
) -> list[np.ndarray]:
    """Parts of a track (rows lon, lat, m) whose segments overlap the period [start, end) and,
    if given, the box (xmin, ymin, xmax, ymax): a neighbour's long walk shrinks to the stretches
    near the grid before any geometry is built."""
    if len(coords) == 0:
        return []
    if len(coords) == 1:
        x, y, m = coords[0]
        inside = start <= m < end
        if box is not None:
            inside = inside and box[0] <= x <= box[2] and box[1] <= y <= box[3]
        return [coords[:, :2]] if inside else []
    x, y, m = coords[:, 0], coords[:, 1], coords[:, 2]
    keep = (np.minimum(m[:-1], m[1:]) < end) & (np.maximum(m[:-1], m[1:]) >= start)
    if box is not None:
        keep &= (np.maximum(x[:-1], x[1:]) >= box[0]) & (np.minimum(x[:-1], x[1:]) <= box[2])
        keep &= (np.maximum(y[:-1], y[1:]) >= box[1]) & (np.minimum(y[:-1], y[1:]) <= box[3])
    parts: list[np.ndarray] = []
    edges = np.flatnonzero(np.diff(keep.astype(np.int8))) + 1
    for run in np.split(np.arange(len(keep)), edges):
        if len(run) and keep[run[0]]:
            parts.append(coords[run[0] : run[-1] + 2, :2])
    return parts


@dataclass
class Coverage:
    """Per owner (a staff member, or a token without one) and place: visited or not.

    Rows are owners; `*_visited` matrices are owners × places. A place's total is `any(axis=0)`.
    """

    micro_visited: np.ndarray  # owners × micro-grids: a track touched or crossed it
    micro_visits: np.ndarray  # per micro-grid: how many distinct tracks touched or crossed it
    buildings_passed: np.ndarray  # owners × buildings: a track came within buffer_m
    street_lengths_m: np.ndarray  # per street piece
    street_walked: np.ndarray  # owners × street pieces: a track ran within street_buffer_m
    streets_not_walked: shapely.Geometry  # WGS84 lines of the street network no track walked


def street_pieces(micro_metric: np.ndarray, piece_m: float = STREET_PIECE_M) -> np.ndarray:
    """The grid's street network, cut into pieces of at most `piece_m`: the union of its
    micro-grids' boundaries (outer edge included), so an edge two micro-grids share is one
    street, counted once."""
    if len(micro_metric) == 0:
        return np.array([], dtype=object)
    network = shapely.union_all(shapely.boundary(micro_metric), grid_size=STREET_SNAP_M)
    lines = shapely.segmentize(shapely.get_parts(shapely.line_merge(network)), piece_m)
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    same = owner[1:] == owner[:-1]
    pairs = np.stack([coords[:-1][same], coords[1:][same]], axis=1)
    return shapely.linestrings(pairs) if len(pairs) else np.array([], dtype=object)


def _track_segments(tracks: list[np.ndarray], crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Two-point metric segments of every track (a single fix, or a segment of length zero, as
    a point: GEOS's tree skips zero-length lines in distance queries), and each one's track."""
    if not tracks:
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    parts = [part if len(part) > 1 else np.repeat(part, 2, axis=0) for part in tracks]
    coords = np.concatenate(parts)
    belongs = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    x, y = from_wgs84_xy(coords[:, 0], coords[:, 1], crs)
    same = belongs[1:] == belongs[:-1]
    xy = np.column_stack([x, y])
    starts, ends = xy[:-1][same], xy[1:][same]
    segments = shapely.linestrings(np.stack([starts, ends], axis=1))
    still = (starts == ends).all(axis=1)
    segments[still] = shapely.points(starts[still])
    return segments, belongs[:-1][same]


def _reached(
    places: np.ndarray, segments: np.ndarray, owner_of: np.ndarray, owners: int, reach_m: float
) -> np.ndarray:
    """owners × places: does any of the owner's segments come within `reach_m` of the place?

    A week of walks passes a building hundreds of times; asking every pair would cost all of
    them. The segments go in time order, a chunk at a time, and each chunk is asked only about
    the places no earlier chunk reached, so a place seen once is not asked about again.
    """
    found = np.zeros((owners, len(places)), dtype=bool)
    if len(places) == 0:
        return found
    for owner in range(owners):
        own = np.flatnonzero(owner_of == owner)
        for first in range(0, len(own), SEGMENT_CHUNK):
            todo = np.flatnonzero(~found[owner])
            if len(todo) == 0:
                break
            tree = shapely.STRtree(segments[own[first : first + SEGMENT_CHUNK]])
            hit, _ = tree.query(places[todo], predicate="dwithin", distance=reach_m)
            found[owner, todo[hit]] = True
    return found


def _hits(rows: int, columns: int, owner: np.ndarray, column: np.ndarray) -> np.ndarray:
    matrix = np.zeros((rows, columns), dtype=bool)
    matrix[owner, column] = True
    return matrix


def patrol_coverage(
    micro_grids: np.ndarray,
    buildings: np.ndarray,
    tracks: list[np.ndarray],
    track_owner: np.ndarray,
    owners: int,
    *,
    buffer_m: float,
    street_buffer_m: float,
) -> Coverage:
    """Which micro-grids, buildings and streets of a grid the tracks visited, per owner.

    `micro_grids` and `buildings` are WGS84 polygons; `tracks` are (k, 2) lon/lat arrays (a
    single fix counts as a point), `track_owner` the owner row of each. A micro-grid is entered
    when a track touches or crosses it; a building is passed when a track comes within
    `buffer_m` of its footprint; a street piece is walked when its middle is within
    `street_buffer_m` of a track.
    """
    crs = f"EPSG:{gauss_kruger_epsg(float(np.mean(shapely.total_bounds(micro_grids)[[0, 2]])))}"
    micro = transform(np.asarray(micro_grids, dtype=object), WGS84, crs)
    footprints = (
        transform(np.asarray(buildings, dtype=object), WGS84, crs)
        if len(buildings)
        else np.array([], dtype=object)
    )
    pieces = street_pieces(micro)
    lengths = shapely.length(pieces) if len(pieces) else np.zeros(0)
    segments, segment_track = _track_segments(tracks, crs)
    owner_of = np.asarray(track_owner, dtype=np.int64)[segment_track]
    tree = shapely.STRtree(segments)
    shapely.prepare(micro)
    micro_hit, micro_seg = tree.query(micro, predicate="intersects")
    pairs = np.unique(micro_hit * max(len(tracks), 1) + segment_track[micro_seg])
    visits = np.bincount(pairs // max(len(tracks), 1), minlength=len(micro)).astype(np.int64)
    middles = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    passed = _reached(footprints, segments, owner_of, owners, buffer_m)
    walked = _reached(middles, segments, owner_of, owners, street_buffer_m)
    unwalked = pieces[~walked.any(axis=0)] if len(pieces) else pieces
    lines = shapely.line_merge(shapely.multilinestrings(unwalked)) if len(unwalked) else None
    return Coverage(
        micro_visited=_hits(owners, len(micro), owner_of[micro_seg], micro_hit),
        micro_visits=visits,
        buildings_passed=passed,
        street_lengths_m=lengths,
        street_walked=walked,
        streets_not_walked=(
            transform(lines, crs, WGS84) if lines is not None else shapely.MultiLineString()
        ),
    )
