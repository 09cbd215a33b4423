"""GCJ-02 ("Mars coordinates": AMap, Tencent, WeChat maps) and BD-09 (Baidu), vectorised.

Neither is in PROJ. The forward WGS84 → GCJ-02 formula is public (Krasovsky ellipsoid, applied
inside a box around China); BD-09 adds a further rotation and shift on top of GCJ-02.

The usual one-step inverse (subtract the offset computed at the GCJ-02 point) errs by up to
~4 m because the offset varies across the map, which is enough to put an event in the
neighbouring grid. So the inverse iterates: guess = target − (forward(guess) − guess) until the
forward image of the guess is within 1e-10° (~0.01 mm) of the target; 3–6 rounds suffice.
"""

from __future__ import annotations

import numpy as np

KRASOVSKY_A = 6378245.0
KRASOVSKY_EE = 0.00669342162296594323
BD_X_PI = np.pi * 3000.0 / 180.0
INVERSE_TOLERANCE_DEG = 1e-10
MAX_ITERATIONS = 30


def out_of_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The coarse box inside which GCJ-02 is applied (the same box every implementation uses)."""
    return ~((lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271))


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - KRASOVSKY_EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (KRASOVSKY_A / sqrt_magic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon, lat):
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_bd09(lon, lat):
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * BD_X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def wgs84_to_bd09(lon, lat):
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _invert(forward, lon, lat):
    """Solve forward(x) = target by fixed-point iteration; returns the WGS84 coordinates."""
    target_lon, target_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    guess_lon, guess_lat = target_lon.copy(), target_lat.copy()
    for _ in range(MAX_ITERATIONS):
        image_lon, image_lat = forward(guess_lon, guess_lat)
        error_lon, error_lat = image_lon - target_lon, image_lat - target_lat
        guess_lon, guess_lat = guess_lon - error_lon, guess_lat - error_lat
        if np.all(np.abs(error_lon) < INVERSE_TOLERANCE_DEG) and np.all(
            np.abs(error_lat) < INVERSE_TOLERANCE_DEG
        ):
            break
    return guess_lon, guess_lat


def gcj02_to_wgs84(lon, lat):
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_wgs84(lon, lat):
    return _invert(wgs84_to_bd09, lon, lat)


def one_step_gcj02_to_wgs84(lon, lat):
    """The widespread non-iterative inverse, kept only to measure how wrong it is (tests)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lon, lat)
    return lon - dlon, lat - dlat
