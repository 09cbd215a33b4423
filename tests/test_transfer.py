"""Import and export through the CLI's functions: round trips in every format, bad files rejected."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyogrio import raw
from sqlalchemy import text

from api.db.generations import generation_at
from api.transfer.export import export_layer
from api.transfer.imports import ImportOptions, import_buildings, import_grids, import_points
from api.transfer.read import UnreadableFile, read_layer
from api.transfer.report import ImportRejected
from spatial.crs import UnknownCRS


def _state(engine) -> tuple[int, int, int, int]:
    """Everything an import could change: generations, grid rows, buildings, points."""
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM generation), (SELECT count(*) FROM grid), "
                    "(SELECT count(*) FROM building), (SELECT count(*) FROM monitoring_point)"
                )
            ).one()
        )


def _grids(engine, level: str, generation: int | None = None) -> dict[str, tuple]:
    with engine.connect() as connection:
        generation = generation or generation_at(connection)
        rows = connection.execute(
            text(
                "SELECT code, name, parent_code, households, ST_AsBinary(geom) AS wkb FROM grid "
                "WHERE level = :level AND generation_low <= :g AND generation_high >= :g"
            ),
            {"level": level, "g": generation},
        ).all()
    return {
        r.code: (r.name, r.parent_code, r.households, shapely.from_wkb(bytes(r.wkb))) for r in rows
    }


def _write(
    path: Path, geometries: list, fields: dict[str, list], crs: str = "EPSG:4326", **options
) -> Path:
    raw.write(
        path,
        shapely.to_wkb(np.array(geometries, dtype=object)),
        [np.array(v, dtype=object) for v in fields.values()],
        list(fields),
        geometry_type=options.pop("geometry_type", "Polygon"),
        crs=crs,
        **options,
    )
    return path


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp", ".kml", ".csv"])
def test_grid_round_trip_every_format(engine, tmp_path, suffix):
    """Export the demo's grids, change one, import back: only that one changes; nothing is lost."""
    before = _grids(engine, "grid")
    out = tmp_path / f"grids{suffix}"
    assert export_layer(engine, "grids", out, level="grid", generation=1) == 60
    source = read_layer(out)
    assert len(source) == 60
    crs = "EPSG:4326" if suffix == ".csv" else None
    report = import_grids(engine, source, "grid", ImportOptions(crs=crs, dry_run=True))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 60)

    # Rename one grid in the file and import for real: a new generation with one changed row.
    name_column = "Name" if suffix == ".kml" else "name"
    source.fields[name_column][0] = "改名后的网格"
    changed_code = source.fields["code"][0]
    report = import_grids(engine, source, "grid", ImportOptions(crs=crs))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 59)
    assert report.generation == 2
    after = _grids(engine, "grid")
    assert after.keys() == before.keys()
    for code, (name, parent, households, geom) in before.items():
        new_name, new_parent, new_households, new_geom = after[code]
        assert new_name == ("改名后的网格" if code == changed_code else name)
        assert (new_parent, new_households) == (parent, households)
        assert shapely.equals_exact(geom, new_geom, tolerance=1e-9)
    # History stays answerable: generation 1 still has the old name.
    assert _grids(engine, "grid", generation=1)[changed_code][0] == before[changed_code][0]


def test_unchanged_rows_are_shared_not_copied(engine, tmp_path):
    out = tmp_path / "micro.gpkg"
    export_layer(engine, "grids", out, level="micro_grid", generation=1)
    source = read_layer(out)
    source.fields["households"][5] = 999
    import_grids(engine, source, "micro_grid", ImportOptions())
    with engine.connect() as connection:
        rows = dict(
            connection.execute(
                text(
                    "SELECT generation_low || '-' || generation_high, count(*) FROM grid GROUP BY 1"
                )
            ).all()
        )
    # 1,270 rows carried into generation 2 by extending their range; one new row for the change.
    assert rows == {"1-2": 1270, "1-1": 1, "2-2": 1}


def test_gbk_shapefile_without_cpg(engine, tmp_path):
    out = tmp_path / "grids.shp"
    export_layer(engine, "grids", out, level="community", generation=1, encoding="GBK")
    out.with_suffix(".cpg").unlink()
    source = read_layer(out)
    assert source.encoding == "GBK"
    assert "翠湖社区" in source.fields["name"]
    report = import_grids(engine, source, "community", ImportOptions(dry_run=True))
    assert report.unchanged == 8
    assert any("GBK" in note for note in report.notes)


def test_projected_crs_round_trip(engine, tmp_path):
    """Export in CGCS2000 / GK zone 120°E (EPSG:4549) and import back: the same geometry."""
    out = tmp_path / "grids.gpkg"
    export_layer(engine, "grids", out, level="community", generation=1, crs="EPSG:4549")
    source = read_layer(out)
    assert source.crs == "EPSG:4549"
    assert shapely.bounds(source.geometries[0])[0] > 400_000  # metres, not degrees
    report = import_grids(engine, source, "community", ImportOptions(dry_run=True))
    assert report.crs == "EPSG:4549"
    assert report.unchanged == 8  # the reprojection back agrees to 1e-9 degrees


@pytest.mark.parametrize("suffix", [".gpkg", ".csv", ".kml"])
def test_buildings_and_points_round_trip(engine, tmp_path, suffix):
    for kind, importer, count in (
        ("buildings", import_buildings, 20557),
        ("points", import_points, 137),
    ):
        out = tmp_path / f"{kind}{suffix}"
        assert export_layer(engine, kind, out) == count
        crs = "EPSG:4326" if suffix == ".csv" else None
        report = importer(engine, read_layer(out), ImportOptions(crs=crs, dry_run=True))
        assert (report.created, report.updated, report.unchanged) == (0, 0, count), kind


def test_points_import_creates_and_updates(engine, tmp_path):
    path = tmp_path / "cams.csv"
    path.write_text(
        "编号,名称,经度,纬度,朝向,视角,视距,状态\n"
        "NEW-1,新摄像头,120.73,31.30,90,60,80,在线\n"
        "320571005C001,改名,120.74,31.31,10,90,100,故障\n",
        encoding="utf-8",
    )
    report = import_points(engine, read_layer(path), ImportOptions(crs="EPSG:4326"))
    assert (report.created, report.updated) == (1, 1)
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT name, status, heading_deg, kind FROM monitoring_point WHERE code = '320571005C001'"
            )
        ).one()
    assert tuple(row) == ("改名", "fault", 10.0, "camera")


# --- bad input: a clear error naming file, row, field and reason, and nothing written ----------


def _rejected(engine, source, level="grid", **options) -> ImportRejected:
    before = _state(engine)
    with pytest.raises(ImportRejected) as caught:
        import_grids(engine, source, level, ImportOptions(**options))
    assert _state(engine) == before
    return caught.value


def _square(x: float, y: float, size: float = 0.001):
    return shapely.box(x, y, x + size, y + size)


def test_broken_geojson(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "geom')
    with pytest.raises(UnreadableFile, match=re.escape("broken.geojson")):
        read_layer(path)


def test_unknown_crs(engine, tmp_path):
    path = _write(
        tmp_path / "g.gpkg", [_square(120.73, 31.30)], {"code": ["320571005001099"], "name": ["x"]}
    )
    with pytest.raises(UnknownCRS, match=r"EPSG:99999"):
        import_grids(engine, read_layer(path), "grid", ImportOptions(crs="EPSG:99999"))


def test_self_intersecting_ring_rejected_then_repaired(engine, tmp_path):
    bowtie = shapely.Polygon(
        [(120.730, 31.300), (120.732, 31.302), (120.732, 31.300), (120.730, 31.302)]
    )
    path = _write(
        tmp_path / "g.geojson",
        [_square(120.735, 31.305), bowtie],
        {
            "code": ["320571005001098", "320571005001099"],
            "name": ["好", "坏"],
            "parent_code": ["320571005001", "320571005001"],
        },
    )
    error = _rejected(engine, read_layer(path))
    [issue] = error.report.errors
    assert (issue.row, issue.field, issue.code) == (2, "geometry", "320571005001099")
    assert "Self-intersection" in issue.message and "120.731" in issue.message  # where it is
    assert "g.geojson，第 2 个要素，编码 320571005001099" in issue.describe(error.report.file)

    report = import_grids(engine, read_layer(path), "grid", ImportOptions(repair=True))
    [repaired] = report.repaired
    assert repaired["row"] == 2 and repaired["area_after_m2"] > 0
    assert report.created == 2
    stored = _grids(engine, "grid")["320571005001099"][3]
    assert stored.is_valid and len(stored.geoms) == 2  # the bow-tie became two triangles


def test_missing_fields_named(engine, tmp_path):
    path = _write(tmp_path / "g.gpkg", [_square(120.73, 31.30)], {"编号x": ["1"], "备注": ["无"]})
    error = _rejected(engine, read_layer(path))
    text_ = " ".join(e.message for e in error.report.errors)
    assert "code" in text_ and "name" in text_ and "--code-field" in text_ and "备注" in text_


def test_row_level_errors(engine, tmp_path):
    path = _write(
        tmp_path / "g.gpkg",
        [_square(120.73, 31.30), _square(120.74, 31.30), _square(120.75, 31.30)],
        {
            "code": ["320571005001097", "320571005001097", "12AB"],
            "name": ["a", None, "c"],
            "households": ["12", "many", "3"],
        },
    )
    errors = _rejected(engine, read_layer(path)).report.errors
    found = {(e.row, e.field) for e in errors}
    assert (2, "name") in found  # empty required name
    assert (2, "households") in found  # "many" is not an integer
    assert (2, "code") in found  # duplicate of row 1
    assert (3, "code") in found  # does not match the level's code pattern


def test_projected_coordinates_without_crs_rejected(engine, tmp_path):
    path = tmp_path / "g.csv"
    path.write_text(
        'code,name,wkt\n320571005001099,x,"POLYGON((530000 3465000,530100 3465000,530100 3465100,530000 3465000))"\n'
    )
    error = _rejected(engine, read_layer(path), crs="EPSG:4326")
    assert "EPSG:4549" in error.report.errors[0].message  # it suggests the likely CRS


def test_swapped_lon_lat_rejected(engine, tmp_path):
    path = _write(
        tmp_path / "g.gpkg", [_square(31.30, 120.73)], {"code": ["320571005001099"], "name": ["x"]}
    )
    error = _rejected(engine, read_layer(path))
    assert "颠倒" in error.report.errors[0].message


def test_unknown_parent_rejected(engine, tmp_path):
    path = _write(
        tmp_path / "g.gpkg",
        [_square(121.5, 31.2)],
        {"code": ["320571005009001"], "name": ["x"], "parent_code": ["320571005009"]},
    )
    error = _rejected(engine, read_layer(path))
    assert (
        error.report.errors[0].field == "parent"
        and "320571005009" in error.report.errors[0].message
    )


def test_parent_inferred_from_location(engine, tmp_path):
    """Without a parent column, a grid whose code does not extend a parent finds it by location."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE grid_level SET code_pattern = NULL, code_extends_parent = false "
                "WHERE name = 'grid'"
            )
        )
        centre = connection.execute(
            text(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) c FROM grid "
                "WHERE code = '320571005002003') s"
            )
        ).one()
    path = _write(
        tmp_path / "g.gpkg",
        [_square(centre[0] - 0.0002, centre[1] - 0.0002, 0.0004)],
        {"code": ["G-NEW"], "name": ["新网格"]},
    )
    report = import_grids(engine, read_layer(path), "grid", ImportOptions())
    assert report.created == 1
    assert _grids(engine, "grid")["G-NEW"][1] == "320571005002"


def test_replace_refuses_to_orphan_children(engine, tmp_path):
    out = tmp_path / "communities.gpkg"
    export_layer(engine, "grids", out, level="community", generation=1)
    source = read_layer(out)
    keep = [i for i, c in enumerate(source.fields["code"]) if c != "320571005008"]
    source.geometries = source.geometries[keep]
    source.fields = {k: [v[i] for i in keep] for k, v in source.fields.items()}
    error = _rejected(engine, source, level="community", replace=True)
    assert any(e.field == "parent" and "320571005008" in e.message for e in error.report.errors)


def test_empty_file_rejected(engine, tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    error = _rejected(engine, read_layer(path))
    assert "没有要素" in error.report.errors[0].message
