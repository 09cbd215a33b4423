"""Coverage checks: published cases, the clean demo, injected faults, a real flawed layer."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely.geometry import MultiPolygon, Polygon

from spatial.coverage import CheckOptions, GridSet, check
from spatial.crs import transform
from spatial.demo_street import METRIC_CRS, generate
from tests.conftest import DEMO_SEED

ORIGIN = (500_000.0, 3_460_000.0)  # GK zone 120°E, near Suzhou: units of the cases become metres


def _here(wkt: str) -> shapely.Geometry:
    """A published test case's geometry, unchanged: checked as metres (see `check(crs=…)`)."""
    return shapely.affinity.translate(shapely.from_wkt(wkt), *ORIGIN)


def _family(*children_wkt: str) -> GridSet:
    children = [_here(w) for w in children_wkt]
    parent = shapely.union_all(children)
    parent = shapely.multipolygons(
        [shapely.polygons(shapely.get_exterior_ring(p)) for p in shapely.get_parts(parent)]
    )
    codes = [f"C{i}" for i in range(len(children))]
    return GridSet(
        ["P", *codes],
        ["P", *codes],
        ["parent", *["child"] * len(children)],
        [None, *["P"] * len(children)],
        np.array([parent, *children]),
        [None] * (len(children) + 1),
    )


# From shapely's test_coverage.py (ported from JTS CoverageValidatorTest): two boxes sharing x = 10.
BOX_LEFT = "POLYGON ((0 10, 10 10, 10 7, 10 3, 10 0, 0 0, 0 10))"
BOX_RIGHT = "POLYGON ((10 10, 20 10, 20 0, 10 0, 10 3, 10 7, 10 10))"
BOX_RIGHT_EXTRA_VERTEX = "POLYGON ((10 10, 20 10, 20 0, 10 0, 10 3, 10 5, 10 7, 10 10))"
BOX_RIGHT_SHIFTED_VERTEX = "POLYGON ((10 10, 20 10, 20 0, 10 0, 10 3, 11 5, 10 7, 10 10))"
TRIANGLE = "POLYGON ((0 0, 1 1, 1 0, 0 0))"
SQUARE = "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"


def test_published_valid_coverage_is_clean():
    assert (
        check(_family(BOX_LEFT, BOX_RIGHT), CheckOptions(), crs=METRIC_CRS)["summary"]["errors"]
        == 0
    )


def test_published_extra_vertex_is_one_unmatched_edge():
    report = check(_family(BOX_LEFT, BOX_RIGHT_EXTRA_VERTEX), CheckOptions(), crs=METRIC_CRS)
    [edge] = report["invalid_edges"]
    assert edge["codes"] == ["C0", "C1"] and edge["length_m"] == pytest.approx(4.0, abs=0.01)
    assert report["summary"]["errors"] == 1


def test_published_shifted_vertex_is_a_gap_one_unit_wide():
    report = check(_family(BOX_LEFT, BOX_RIGHT_SHIFTED_VERTEX), CheckOptions(), crs=METRIC_CRS)
    [gap] = report["gaps"]
    assert gap["kind"] == "hole" and gap["area_m2"] == pytest.approx(2.0, abs=0.01)
    assert 0.9 < gap["width_m"] < 1.0  # 2 × the inscribed radius of the 4 × 1 triangle
    assert (
        check(
            _family(BOX_LEFT, BOX_RIGHT_SHIFTED_VERTEX),
            CheckOptions(gap_width_m=1.5),
            crs=METRIC_CRS,
        )["gaps"]
        == []
    )


def test_published_overlap():
    report = check(_family(TRIANGLE, SQUARE), CheckOptions(min_gap_area_m2=0.01), crs=METRIC_CRS)
    [overlap] = report["overlaps"]
    assert overlap["area_m2"] == pytest.approx(0.5, abs=0.001) and overlap["codes"] == ["C0", "C1"]


@pytest.fixture(scope="module")
def street():
    return generate(DEMO_SEED)


def _grid_set(street, geoms=None) -> GridSet:
    return GridSet(
        [g.code for g in street.grids],
        [g.name for g in street.grids],
        [g.level for g in street.grids],
        [g.parent_code for g in street.grids],
        np.array(geoms if geoms is not None else [g.geom for g in street.grids]),
        [g.households for g in street.grids],
    )


def test_demo_street_reports_nothing(street):
    buildings = (
        [b["code"] for b in street.buildings],
        np.array([b["geom"] for b in street.buildings]),
    )
    report = check(_grid_set(street), CheckOptions(households_band={"grid": (300, 500)}), buildings)
    assert report["summary"]["errors"] == 0 and report["households_out_of_band"] == []


def test_injected_faults_each_found_once_at_the_right_place(street):
    codes = [g.code for g in street.grids]
    metric = {g.code: transform(g.geom, "EPSG:4326", METRIC_CRS) for g in street.grids}
    micro = [c for c in codes if len(c) == 18]

    def neighbours(code):
        return sorted(
            c
            for c in micro
            if c != code
            and c[:15] == code[:15]
            and shapely.length(shapely.intersection(metric[code].boundary, metric[c].boundary)) > 20
        )

    places = {}
    # 1. a 1 m sliver gap between two micro-grids of grid …001001
    a = "320571005001001001"
    b = neighbours(a)[0]
    metric[a] = MultiPolygon(
        shapely.get_parts(shapely.difference(metric[a], shapely.buffer(metric[b], 1.0)))
    )
    places["gaps"] = shapely.intersection(
        metric[a].envelope.union(metric[b].envelope), shapely.buffer(metric[b], 1.0)
    )
    # 2. a 0.5 m overlap in grid …003002
    c = "320571005003002001"
    d = neighbours(c)[0]
    metric[c] = MultiPolygon(
        shapely.get_parts(
            shapely.union(
                metric[c], shapely.intersection(metric[d], shapely.buffer(metric[c], 0.5))
            )
        )
    )
    places["overlaps"] = shapely.buffer(
        shapely.intersection(metric[c].boundary, metric[d].boundary), 1.0
    )
    # 3. a T-junction: an extra vertex on a shared edge, in grid …005002
    e = "320571005005002003"
    f = neighbours(e)[0]
    shared = shapely.intersection(metric[e].boundary, metric[f].boundary)
    ring = list(metric[e].geoms[0].exterior.coords)
    for k in range(len(ring) - 1):
        segment = shapely.LineString([ring[k], ring[k + 1]])
        if (
            shapely.length(shapely.intersection(segment, shapely.buffer(shared, 1e-6)))
            > 0.99 * segment.length
        ):
            middle = segment.interpolate(0.5, normalized=True)
            ring.insert(k + 1, (middle.x, middle.y))
            places["invalid_edges"] = shapely.buffer(middle, 1.0)
            break
    metric[e] = MultiPolygon([Polygon(ring)])
    # 4. a 2 m strip along the parent's edge missing (grid …008005's micro-grid on the street edge)
    street_edge = transform(street.grids[0].geom, "EPSG:4326", METRIC_CRS).boundary
    h = next(
        m
        for m in micro
        if m.startswith("320571005008")
        and shapely.length(shapely.intersection(metric[m].boundary, street_edge)) > 30
    )
    strip = shapely.intersection(metric[h], shapely.buffer(street_edge, 2.0))
    metric[h] = MultiPolygon(
        shapely.get_parts(shapely.difference(metric[h], shapely.buffer(street_edge, 2.0)))
    )
    # 5. a building straddling two grids
    g, k = "320571005006003004", None
    k = neighbours(g)[0]
    line = shapely.intersection(metric[g].boundary, metric[k].boundary)
    centre = line.interpolate(0.5, normalized=True)
    straddler = shapely.box(centre.x - 6, centre.y - 6, centre.x + 6, centre.y + 6)
    buildings = [
        b
        for b in street.buildings
        if not shapely.intersects(transform(b["geom"], "EPSG:4326", METRIC_CRS), straddler)
    ]
    buildings.append({"code": "STRADDLER", "geom": transform(straddler, METRIC_CRS, "EPSG:4326")})

    geoms = [transform(metric[code], METRIC_CRS, "EPSG:4326") for code in codes]
    report = check(
        _grid_set(street, geoms),
        CheckOptions(),
        ([x["code"] for x in buildings], np.array([x["geom"] for x in buildings])),
    )

    def at(findings, place):
        return [
            f
            for f in findings
            if f["geometry"] is not None and shapely.intersects(f["geometry"], place)
        ]

    assert len(at(report["gaps"], places["gaps"])) == 1
    sliver = at(report["gaps"], places["gaps"])[0]
    assert 0.9 < sliver["width_m"] < 1.1 and {a, b} <= set(sliver["codes"])
    [overlap] = report["overlaps"]
    assert shapely.intersects(overlap["geometry"], places["overlaps"]) and set(
        overlap["codes"]
    ) == {c, d}
    assert len(at(report["invalid_edges"], places["invalid_edges"])) == 1
    assert set(at(report["invalid_edges"], places["invalid_edges"])[0]["codes"]) == {e, f}
    [edge_strip] = at(report["gaps"], strip)
    assert (
        edge_strip["kind"] == "strip" and edge_strip["width_m"] > 1.9 and edge_strip is not sliver
    )
    [split] = report["split_buildings"]
    assert split["codes"][0] == "STRADDLER" and set(split["shares"]) == {g, k}
    assert all(0.4 < share < 0.6 for share in split["shares"].values())
    # Nothing else: two gaps (sliver, strip), one overlap, one split building; unmatched edges
    # only where a fault is (the T-junction, and the cut ends of the sliver and the strip).
    assert (
        len(report["gaps"]) == 2
        and report["outside_parent"] == []
        and report["orphan_buildings"] == []
    )
    faults = shapely.union_all(
        [places["gaps"], places["invalid_edges"], shapely.buffer(strip, 3.0), places["overlaps"]]
    )
    assert all(shapely.intersects(x["geometry"], faults) for x in report["invalid_edges"])


@pytest.mark.realdata
def test_real_layer_with_real_flaws():
    """libpysal's Tokyo municipalities: a real boundary layer with real overlaps and gaps."""
    from api.transfer.read import read_layer
    from tests.realdata import tokyo_municipalities

    source = read_layer(tokyo_municipalities())
    geoms = transform(source.geometries, source.crs, "EPSG:4326")
    union = shapely.union_all(geoms)
    parent = shapely.multipolygons(
        [shapely.polygons(shapely.get_exterior_ring(p)) for p in shapely.get_parts(union)]
    )
    codes = [str(c) for c in source.fields["GEOCODE"]]
    grids = GridSet(
        ["TOKYO", *codes],
        ["東京都", *codes],
        ["metro", *["city"] * len(codes)],
        [None, *["TOKYO"] * len(codes)],
        np.array([parent, *geoms]),
        [None] * (len(codes) + 1),
    )
    report = check(grids, CheckOptions())
    assert (
        len(report["overlaps"]) > 100
        and len(report["invalid_edges"]) > 10
        and len(report["gaps"]) >= 1
    )
    assert all(o["area_m2"] >= 0.01 and len(o["codes"]) == 2 for o in report["overlaps"])
    hole = report["gaps"][0]
    assert hole["area_m2"] > 1 and hole["width_m"] >= 0.2 and hole["codes"]


@pytest.mark.realdata
def test_roots_are_checked_as_siblings():
    """A top-level layer has no parent, yet its members must not overlap: Tokyo's municipalities
    imported as roots report their real overlaps (the check used to skip parentless grids)."""
    from api.transfer.read import read_layer
    from tests.realdata import tokyo_municipalities

    source = read_layer(tokyo_municipalities())
    geoms = transform(source.geometries, source.crs, "EPSG:4326")
    codes = [str(c) for c in source.fields["GEOCODE"]]
    roots = GridSet(
        codes, codes, ["city"] * len(codes), [None] * len(codes), geoms, [None] * len(codes)
    )
    report = check(roots, CheckOptions())
    assert len(report["overlaps"]) > 100 and report["summary"]["errors"] > 100
    assert all(o["parent_code"] is None and len(o["codes"]) == 2 for o in report["overlaps"])
    assert report["gaps"] == []  # no outline given: nothing to measure gaps against


def test_roots_against_a_known_outline():
    """With the outer boundary known, a strip the roots leave uncovered is a gap; the exact
    outline is clean."""
    left, right = _here(BOX_LEFT), _here(BOX_RIGHT)
    roots = GridSet(
        ["A", "B"], ["A", "B"], ["street"] * 2, [None, None], np.array([left, right]), [None, None]
    )
    exact = shapely.union_all([left, right])
    assert check(roots, CheckOptions(outline=exact), crs=METRIC_CRS)["summary"]["errors"] == 0
    wider = shapely.box(*ORIGIN, ORIGIN[0] + 20.0, ORIGIN[1] + 12.0)  # 2 m strip on top
    report = check(roots, CheckOptions(outline=wider), crs=METRIC_CRS)
    [strip] = report["gaps"]
    assert strip["kind"] == "strip" and strip["area_m2"] == pytest.approx(40.0)
    assert strip["width_m"] == pytest.approx(2.0, abs=0.02) and strip["codes"] == ["A", "B"]


def test_grid_whose_parent_is_missing_is_an_orphan():
    left, right = _here(BOX_LEFT), _here(BOX_RIGHT)
    grids = GridSet(
        ["P", "A", "B"],
        ["P", "A", "B"],
        ["community", "grid", "grid"],
        [None, "P", "GONE"],
        np.array([shapely.union_all([left, right]), left, right]),
        [None] * 3,
    )
    report = check(grids, CheckOptions(), crs=METRIC_CRS)
    [orphan] = report["orphan_grids"]
    assert orphan["codes"] == ["B"] and orphan["parent_code"] == "GONE"
    [strip] = report["gaps"]  # and P is no longer covered where B was
    assert strip["parent_code"] == "P" and strip["area_m2"] == pytest.approx(100.0)
