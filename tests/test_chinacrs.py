"""GCJ-02 / BD-09 against published reference values, and the iterative inverse's accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from spatial import chinacrs
from spatial.crs import UnknownCRS, coordinate_problems, normalise_crs, parse_crs, to_wgs84_xy

# eviltransform's published test vectors (wgs lat, wgs lng, gcj lat, gcj lng).
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]
# Beijing railway station as published with Baidu's own converter (5 decimals, ~1 m).
BEIJING_STATION_GCJ = (116.42703, 39.90245)
BEIJING_STATION_BD = (116.43351, 39.90851)


def _metres(lon_a, lat_a, lon_b, lat_b):
    return np.hypot(
        (lon_a - lon_b) * 111_320 * np.cos(np.radians(lat_a)), (lat_a - lat_b) * 110_540
    )


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM)
def test_gcj02_matches_reference(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    lon, lat = chinacrs.wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert abs(lon - gcj_lon) < 1e-9 and abs(lat - gcj_lat) < 1e-9
    back_lon, back_lat = chinacrs.gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert _metres(back_lon, back_lat, wgs_lon, wgs_lat) < 0.01  # 1 cm


def test_bd09_matches_published_pair():
    lon, lat = chinacrs.gcj02_to_bd09(*BEIJING_STATION_GCJ)
    assert _metres(lon, lat, *BEIJING_STATION_BD) < 1.5  # the pair is published to 5 decimals
    wgs = chinacrs.bd09_to_wgs84(*BEIJING_STATION_BD)
    again = chinacrs.wgs84_to_bd09(*wgs)
    assert _metres(*again, *BEIJING_STATION_BD) < 0.01


def test_inverse_is_accurate_to_a_centimetre_everywhere_in_china():
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(74, 134, 100_000), rng.uniform(19, 53, 100_000)
    for forward, inverse in (
        (chinacrs.wgs84_to_gcj02, chinacrs.gcj02_to_wgs84),
        (chinacrs.wgs84_to_bd09, chinacrs.bd09_to_wgs84),
    ):
        back = inverse(*forward(lon, lat))
        assert _metres(back[0], back[1], lon, lat).max() < 0.01
    # The one-step inverse many libraries use is metres off: enough to cross a grid edge.
    one_step = chinacrs.one_step_gcj02_to_wgs84(*chinacrs.wgs84_to_gcj02(lon, lat))
    assert _metres(one_step[0], one_step[1], lon, lat).max() > 1.0


def test_outside_china_is_unchanged():
    lon, lat = chinacrs.gcj02_to_wgs84(np.array([2.35, 139.7]), np.array([48.85, 35.68]))
    assert np.allclose(lon, [2.35, 139.7]) and np.allclose(lat, [48.85, 35.68])


def test_every_system_lands_on_the_same_point():
    """One physical point, given in WGS84, CGCS2000, GK zone 120°E, Web Mercator, GCJ-02, BD-09."""
    from spatial.crs import from_wgs84_xy

    lon, lat = 120.7351, 31.3049
    for name in ("EPSG:4326", "4490", "EPSG:4549", "EPSG:3857", "gcj02", "BD-09"):
        spec = normalise_crs(name)
        x, y = from_wgs84_xy(np.array([lon]), np.array([lat]), spec)
        back = to_wgs84_xy(x, y, spec)
        assert _metres(back[0][0], back[1][0], lon, lat) < 0.01, name


def test_coordinate_problems():
    problems = coordinate_problems(
        np.array([120.7, 31.3, 200.0, np.nan, 530000.0]),
        np.array([31.3, 120.7, 10.0, 1.0, 3465000.0]),
        "EPSG:4326",
    )
    assert problems[0] is None
    assert "颠倒" in problems[1] and "超出范围" in problems[2] and "有效数字" in problems[3]
    assert "超出范围" in problems[4]
    assert coordinate_problems(np.array([530000.0]), np.array([3465000.0]), "EPSG:4549") == [None]


@pytest.mark.parametrize(
    "spec",
    [
        "+init=/etc/passwd:root",
        "+proj=longlat +nadgrids=/etc/hostname",
        "+proj=vgridshift +grids=@/tmp/x.tif",
        'PROJCRS["x",BASEGEOGCRS["y",DATUM["z",ELLIPSOID["GRS 1980",6378137,298.257222101]]],'
        'CONVERSION["c",METHOD["NTv2"],PARAMETERFILE["Latitude and longitude difference file","/etc/passwd"]],'
        'CS[Cartesian,2],AXIS["x",east],AXIS["y",north],LENGTHUNIT["metre",1]]',
    ],
)
def test_crs_definitions_naming_files_are_refused(spec):
    """A CRS arrives from requests and uploaded files: PROJ must never open a path from one."""
    with pytest.raises(UnknownCRS, match="refers to a file"):
        parse_crs(spec)
