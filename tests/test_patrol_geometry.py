"""spatial/patrol.py on hand-made tracks and grids whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from spatial.crs import WGS84, transform
from spatial.patrol import (
    clean_fixes,
    clip_by_time,
    fix_problems,
    metric_xy,
    patrol_coverage,
    simplify_track,
    street_pieces,
    track_wkt,
)

ZONE = "EPSG:4549"  # CGCS2000 Gauss-Kruger CM 120°E: Suzhou
ORIGIN = transform(shapely.Point(120.738, 31.305), WGS84, ZONE)
T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z


def to_wgs84(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres east/north of ORIGIN → lon, lat."""
    points = transform(
        shapely.points(ORIGIN.x + np.asarray(x), ORIGIN.y + np.asarray(y)), ZONE, WGS84
    )
    return shapely.get_x(points), shapely.get_y(points)


def square(x0: float, y0: float, size: float) -> shapely.Polygon:
    box = shapely.box(ORIGIN.x + x0, ORIGIN.y + y0, ORIGIN.x + x0 + size, ORIGIN.y + y0 + size)
    return transform(box, ZONE, WGS84)


def walk(xy: list[tuple[float, float]], step_m: float = 7.0) -> np.ndarray:
    """A walker's fixes along a polyline (metres from ORIGIN), one every `step_m`: lon, lat."""
    line = shapely.LineString(xy)
    distances = np.unique(np.append(np.arange(0.0, line.length, step_m), line.length))
    points = shapely.line_interpolate_point(line, distances)
    lon, lat = to_wgs84(shapely.get_x(points), shapely.get_y(points))
    return np.column_stack([lon, lat])


# ---- checking a batch ---------------------------------------------------------------------------


def test_fix_problems_name_each_bad_fix_and_its_reason():
    lon = np.array([120.73, 31.30, 139.69, np.nan, 120.74, 120.75])
    lat = np.array([31.30, 120.73, 35.69, 31.3, 31.31, 31.32])
    times = np.array([T0, T0 + 5, T0 + 10, T0 + 15, T0 + 20, T0 + 12])
    problems = fix_problems(times, lon, lat)
    assert [(p.index, p.code) for p in problems] == [
        (1, "swapped_coordinates"),
        (2, "outside_china"),
        (3, "invalid_coordinates"),
        (5, "time_backwards"),
    ]
    assert "2024-05-01T00:00:12Z" in problems[3].message
    assert "2024-05-01T00:00:20Z" in problems[3].message
    assert fix_problems(times[:1], lon[:1], lat[:1]) == []


def test_equal_times_in_a_batch_are_not_backwards():
    assert fix_problems(np.array([T0, T0]), np.array([120.7, 120.7]), np.array([31.3, 31.3])) == []


# ---- cleaning -----------------------------------------------------------------------------------


def test_a_gps_jump_is_dropped_and_the_walk_around_it_kept():
    fixes = walk([(0, 0), (700, 0)])  # 1.4 m/s, a fix every 5 s
    times = T0 + 5.0 * np.arange(len(fixes))
    lon, lat = fixes[:, 0].copy(), fixes[:, 1].copy()
    jump_lon, jump_lat = to_wgs84(np.array([350.0, 420.0]), np.array([400.0, 380.0]))
    lon[[40, 41]], lat[[40, 41]] = jump_lon, jump_lat  # 400 m off the road for two fixes
    accuracy = np.full(len(fixes), 8.0)
    accuracy[70] = 150.0
    cleaning = clean_fixes(times, lon, lat, accuracy, max_speed_mps=15, max_accuracy_m=100)
    assert np.flatnonzero(~cleaning.kept).tolist() == [40, 41, 70]
    assert (cleaning.jumps, cleaning.inaccurate) == (2, 1)


def test_a_wrong_first_fix_does_not_drop_the_walk():
    fixes = walk([(0, 0), (300, 0)])
    times = T0 + 5.0 * np.arange(len(fixes))
    lon, lat = fixes[:, 0].copy(), fixes[:, 1].copy()
    lon[0], lat[0] = (v[0] for v in to_wgs84(np.array([2000.0]), np.array([0.0])))
    unknown = np.full(len(fixes), np.nan)  # phones that report no accuracy are believed
    cleaning = clean_fixes(times, lon, lat, unknown, max_speed_mps=15, max_accuracy_m=100)
    assert np.flatnonzero(~cleaning.kept).tolist() == [0]


def test_slow_fixes_far_apart_in_time_are_not_jumps():
    lon, lat = to_wgs84(np.array([0.0, 900.0]), np.array([0.0, 0.0]))
    cleaning = clean_fixes(
        np.array([T0, T0 + 600]), lon, lat, np.full(2, np.nan), max_speed_mps=15, max_accuracy_m=100
    )
    assert cleaning.kept.tolist() == [True, True]


# ---- simplifying and storing --------------------------------------------------------------------


def test_douglas_peucker_in_metres_keeps_the_corners_and_the_length():
    fixes = walk([(0, 0), (200, 0), (200, 150)], step_m=5.0)
    indices, length = simplify_track(fixes[:, 0], fixes[:, 1], tolerance_m=1.0)
    x, y = metric_xy(fixes[indices, 0], fixes[indices, 1])
    corners = np.column_stack([x - x[0], y - y[0]])
    assert len(indices) == 3
    assert np.allclose(corners, [(0, 0), (200, 0), (200, 150)], atol=0.05)
    assert length == pytest.approx(350.0, abs=0.1)
    assert simplify_track(fixes[:1, 0], fixes[:1, 1], 1.0)[0].tolist() == [0]


def test_track_wkt_carries_time_as_m():
    wkt = track_wkt(np.array([120.7, 120.8]), np.array([31.3, 31.4]), np.array([T0, T0 + 5]))
    assert (
        wkt
        == f"LINESTRING M (120.7000000 31.3000000 {T0:.3f}, 120.8000000 31.4000000 {T0 + 5:.3f})"
    )
    single = shapely.from_wkt(track_wkt(np.array([120.7]), np.array([31.3]), np.array([T0])))
    assert shapely.get_num_coordinates(single) == 2 and shapely.has_m(single)
    assert track_wkt(np.array([]), np.array([]), np.array([])) is None


def test_clip_by_time_keeps_segments_overlapping_the_period():
    coords = np.array([[0, 0, 0], [1, 0, 10], [2, 0, 20], [3, 0, 30], [4, 0, 40.0]])
    parts = clip_by_time(coords, 15, 25)
    assert [p.tolist() for p in parts] == [[[1, 0], [2, 0], [3, 0]]]
    assert clip_by_time(coords, 50, 60) == []
    assert [p.tolist() for p in clip_by_time(coords[:1], 0, 1)] == [[[0, 0]]]
    # A box keeps the stretches near a grid: segments meeting x ≤ 1.5 and x ≥ 3.5, in two parts.
    near = clip_by_time(coords, 0, 100, (-1, -1, 1.5, 1))
    assert [p.tolist() for p in near] == [[[0, 0], [1, 0], [2, 0]]]
    both = clip_by_time(np.vstack([coords, [[0, 0, 50]]]), 0, 100, (-1, -1, 0.5, 1))
    assert [p.tolist() for p in both] == [[[0, 0], [1, 0]], [[4, 0], [0, 0]]]
    assert clip_by_time(coords[:1], 0, 1, (5, 5, 6, 6)) == []


# ---- coverage -----------------------------------------------------------------------------------

# A grid of 2 × 2 micro-grids, each 100 m square: its streets are the outer square (800 m) and
# the inner cross (2 × 200 m), 1,200 m in all.
MICRO = np.array(
    [square(0, 0, 100), square(100, 0, 100), square(0, 100, 100), square(100, 100, 100)]
)
BUILDINGS = np.array(
    [
        square(40, 35, 10),  # 25 m north of the south track: passed
        square(150, 55, 10),  # 45 m: not passed at 30 m, passed at 50 m
        square(40, 170, 10),  # 15 m from the north track only
        square(150, 150, 10),  # far from both
    ]
)


def test_street_network_is_the_union_of_micro_grid_edges():
    pieces = street_pieces(transform(MICRO, WGS84, ZONE))
    assert shapely.length(pieces).sum() == pytest.approx(1200.0, abs=0.01)
    assert shapely.length(pieces).max() <= 5.0 + 1e-6


def test_coverage_of_a_hand_made_grid():
    south = walk(
        [(0, 10), (200, 10)]
    )  # along the south street, 10 m inside: both lower micro-grids
    north = walk([(0, 195), (60, 195)])  # the north street's west end: one upper micro-grid
    result = patrol_coverage(
        MICRO,
        BUILDINGS,
        [south, north],
        np.array([0, 1]),
        2,
        buffer_m=30,
        street_buffer_m=20,
    )
    assert result.micro_visited.tolist() == [
        [True, True, False, False],
        [False, False, True, False],
    ]
    assert result.micro_visits.tolist() == [1, 1, 1, 0]
    assert result.buildings_passed.tolist() == [
        [True, False, False, False],
        [False, False, True, False],
    ]
    walked = result.street_lengths_m @ result.street_walked.T
    # South: the whole south street (200 m) and 30 m up each of the three north-south streets
    # (their pieces whose middle is within 20 m of a track 10 m inside). North (5 m inside):
    # 60 m of the north street, 20 m more of it east of the track's end (a piece's middle up to
    # 20 m past the end), and 25 m down the west street. One piece (5 m) either way is the
    # resolution.
    assert walked[0] == pytest.approx(200 + 3 * 30, abs=5)
    assert walked[1] == pytest.approx(60 + 20 + 25, abs=5)
    unwalked = result.street_lengths_m[~result.street_walked.any(axis=0)].sum()
    assert unwalked == pytest.approx(1200 - walked.sum(), abs=5)
    assert shapely.length(transform(result.streets_not_walked, WGS84, ZONE)) == pytest.approx(
        unwalked, abs=0.5
    )

    wider = patrol_coverage(
        MICRO, BUILDINGS, [south], np.array([0]), 1, buffer_m=50, street_buffer_m=20
    )
    assert wider.buildings_passed.tolist() == [[True, True, False, False]]


def test_coverage_without_tracks_is_all_unvisited():
    result = patrol_coverage(
        MICRO, BUILDINGS, [], np.array([], dtype=np.int64), 0, buffer_m=30, street_buffer_m=20
    )
    assert result.micro_visited.shape == (0, 4) and result.micro_visits.tolist() == [0, 0, 0, 0]
    assert result.street_lengths_m.sum() == pytest.approx(1200.0, abs=0.01)
    assert shapely.length(transform(result.streets_not_walked, WGS84, ZONE)) == pytest.approx(
        1200.0, abs=0.5
    )


def test_a_single_fix_counts_as_a_point():
    point = np.column_stack(to_wgs84(np.array([45.0]), np.array([20.0])))
    result = patrol_coverage(
        MICRO, BUILDINGS, [point], np.array([0]), 1, buffer_m=30, street_buffer_m=20
    )
    assert result.micro_visited.tolist() == [[True, False, False, False]]
    assert result.buildings_passed.tolist() == [[True, False, False, False]]
