"""Files from anyone (issue 10): export paths, archive members and bombs, Parquet bombs, what
GDAL is allowed to open, spreadsheet formulas, personal columns, and the bound on heavy work.

Each test here failed before the fix it guards, except the KML and GeoPackage ones, which pin
what GDAL already refused (a NetworkLink, an external entity, a VirtualOGR table).
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import sqlite3
import threading
import uuid
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from fastapi.testclient import TestClient
from pyogrio import raw
from sqlalchemy import text

from api.app import create_app
from api.limits import HeavyWork
from api.settings import LimitSettings, Settings
from api.transfer.read import UnreadableFile, read_layer
from tests.conftest import bearer

FORMATS = ("geojson", "gpkg", "shp", "kml", "csv")


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code and body["message"]
    return body


def _import(client, tokens, kind: str, name: str, content: bytes, **data):
    return client.post(
        f"/api/v1/import/{kind}",
        headers=bearer(tokens["planner"]),
        data={"dry_run": "true", **data},
        files={"file": (name, content)},
    )


def _points_shapefile(folder: Path, stem: str = "cams") -> dict[str, bytes]:
    """A valid one-point Shapefile's parts, by suffix."""
    raw.write(
        folder / f"{stem}.shp",
        shapely.to_wkb(np.array([shapely.Point(120.73, 31.30)], dtype=object)),
        [np.array(["C-1"], dtype=object)],
        ["code"],
        driver="ESRI Shapefile",
        geometry_type="Point",
        crs="EPSG:4326",
    )
    return {
        suffix: (folder / f"{stem}{suffix}").read_bytes()
        for suffix in (".shp", ".shx", ".dbf", ".prj")
    }


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def small_client(database_url):
    """The service with archives capped at 4 MiB unpacked."""
    limits = LimitSettings(max_unpacked_bytes=4 << 20)
    with TestClient(create_app(Settings(database_url=database_url, limits=limits))) as client:
        yield client


# --- 1. no request value reaches a file path ----------------------------------------------------


@pytest.mark.parametrize("kind", ["points", "grids"])
def test_export_level_never_reaches_a_path(client, kind):
    """`level=../../tmp/x` once wrote /tmp/x.<format> (and zipped /tmp/x.* for Shapefiles)."""
    for format_ in FORMATS:
        stem = f"wangge-traversal-{uuid.uuid4().hex[:10]}"
        response = client.get(
            f"/api/v1/export/{kind}",
            params={"format": format_, "level": f"../../../../../../../tmp/{stem}"},
        )
        leaked = sorted(Path("/tmp").glob(stem + "*"))
        for path in leaked:
            path.unlink()
        assert leaked == [], format_
        code = "level_not_applicable" if kind == "points" else "level_not_found"
        assert _error(response, 422, code)["where"] == "query.level"


def test_zip_members_cannot_leave_the_folder(client, tokens, tmp_path):
    parts = _points_shapefile(tmp_path)
    stem = f"wangge-zipslip-{uuid.uuid4().hex[:10]}"
    for prefix in ("../../../../../../tmp/", "/tmp/", "..\\..\\..\\..\\tmp\\"):
        members = {f"{prefix}{stem}{suffix}": content for suffix, content in parts.items()}
        archive = tmp_path / "slip.zip"
        archive.write_bytes(_zip(members))
        first = next(iter(members))
        body = _error(
            _import(client, tokens, "points", "slip.zip", archive.read_bytes()),
            422,
            "unreadable_file",
        )
        assert body["where"] == "body.file" and body["details"] == [{"member": first}]
        with pytest.raises(UnreadableFile) as caught:  # the CLI reads through the same code
            read_layer(archive)
        assert caught.value.member == first
    assert sorted(Path("/tmp").glob(stem + "*")) == []
    # Folders in member names are fine, with either slash (old Windows tools write backslashes).
    windows = _zip({f"data\\cams{suffix}": content for suffix, content in parts.items()})
    report = _import(client, tokens, "points", "cams.zip", windows)
    assert report.status_code == 200 and report.json()["created"] == 1, report.text
    # A broken archive is named as the client named it, not by our temporary folder.
    broken = _import(client, tokens, "points", "cams.zip", _zip({"cams.shp": parts[".shp"]}))
    message = _error(broken, 422, "unreadable_file")["message"]
    assert "cams.zip" in message and "wangge-zip" not in message and "/tmp" not in message


# --- 2. memory bombs ------------------------------------------------------------------------------


def test_zip_bomb_refused_from_its_directory(small_client, tokens, tmp_path):
    """A 32 MiB run of zeros packs into 32 KiB; the cap is 4 MiB unpacked."""
    parts = _points_shapefile(tmp_path)
    bomb = _zip({"cams.shp": parts[".shp"] + bytes(32 << 20), "cams.dbf": parts[".dbf"]})
    assert len(bomb) < 100_000
    body = _error(
        _import(small_client, tokens, "points", "cams.zip", bomb), 413, "payload_too_large"
    )
    assert body["where"] == "body.file" and body["details"] == [{"member": "cams.shp"}]


def test_zip_and_kmz_compression_ratio_capped(client, tokens, tmp_path):
    """Under the size cap but 1000:1: refused all the same (the default cap is 1 GiB)."""
    parts = _points_shapefile(tmp_path)
    shapefile = _zip({"cams.shp": parts[".shp"] + bytes(24 << 20), "cams.dbf": parts[".dbf"]})
    _error(_import(client, tokens, "points", "cams.zip", shapefile), 413, "payload_too_large")
    kml = (
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        "<Document><Placemark><name>P-1</name><Point><coordinates>120.73,31.30</coordinates>"
        "</Point></Placemark>" + " " * (24 << 20) + "</Document></kml>"
    )
    kmz = _zip({"doc.kml": kml.encode()})
    body = _error(_import(client, tokens, "points", "cams.kmz", kmz), 413, "payload_too_large")
    assert body["details"] == [{"member": "doc.kml"}]


def test_zip_member_that_lies_about_its_size(client, tokens, tmp_path):
    """The directory says 1,000 bytes, the data inflates to 24 MiB: stopped while unpacking."""
    parts = _points_shapefile(tmp_path)
    honest = _zip({"cams.shp": parts[".shp"] + bytes(24 << 20), "cams.dbf": parts[".dbf"]})
    size = (len(parts[".shp"]) + (24 << 20)).to_bytes(4, "little")
    lying = honest.replace(size, (1000).to_bytes(4, "little"))
    assert lying != honest
    body = _import(client, tokens, "points", "cams.zip", lying).json()["error"]
    assert body["code"] in ("unreadable_file", "payload_too_large")
    assert body["details"] == [{"member": "cams.shp"}]


def _post_points(client, name: str, content: bytes):
    return client.post(
        "/api/v1/lookup/batch/file", data={"crs": "4326"}, files={"file": (name, content)}
    )


def test_parquet_bomb_counted_from_its_footer(client, tmp_path, monkeypatch):
    """10⁸ dictionary-encoded rows in under 1 MB: refused without reading a single row."""
    path = tmp_path / "bomb.parquet"
    schema = pa.schema([("lon", pa.float64()), ("lat", pa.float64())])
    rows = pa.record_batch(
        [pa.array(np.full(10**6, 120.73)), pa.array(np.full(10**6, 31.30))], schema=schema
    )
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for _ in range(100):
            writer.write_batch(rows)
    assert pq.ParquetFile(path).metadata.num_rows == 10**8
    assert path.stat().st_size < 2 << 20

    def no_rows(*args, **kwargs):
        raise AssertionError("rows read before they were counted")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", no_rows)
    monkeypatch.setattr(pq.ParquetFile, "read", no_rows)
    body = _error(_post_points(client, "bomb.parquet", path.read_bytes()), 422, "too_many_points")
    assert body["where"] == "body.file" and "100000000" in body["message"]


def test_parquet_long_values_not_repeated_on_every_row(client, tmp_path):
    """One 2 MB dictionary value on 100 rows would be 200 MB once read: refused."""
    indices = pa.array(np.zeros(100, dtype=np.int32))
    long_text = pa.DictionaryArray.from_arrays(indices, pa.array(["1" * (2 << 20)]))
    table = pa.table({"lon": long_text, "lat": pa.array(np.full(100, 31.30))})
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 100_000
    body = _error(_post_points(client, "wide.parquet", path.read_bytes()), 413, "payload_too_large")
    assert body["where"] == "body.file"


def test_parquet_long_plain_values_refused_from_the_footer(client, tmp_path, monkeypatch):
    """Found by review: 100,000 rows of 5 KB text coordinates, plain-encoded, pack into a few
    hundred KB and would unpack to 500 MB: refused from the footer, before any row is read."""
    rows = 100_000
    lon = pa.array([f"{i:07d}" + "0" * 5000 for i in range(rows)])
    path = tmp_path / "plain.parquet"
    pq.write_table(
        pa.table({"lon": lon, "lat": pa.array(np.full(rows, 31.30))}),
        path,
        compression="zstd",
        use_dictionary=False,
    )
    assert path.stat().st_size < 2 << 20

    def no_rows(*args, **kwargs):
        raise AssertionError("rows read before their size was checked")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", no_rows)
    body = _error(
        _post_points(client, "plain.parquet", path.read_bytes()), 413, "payload_too_large"
    )
    assert body["where"] == "body.file"


# --- 3. GDAL opens only what the extension says, and never the network ---------------------------


def _zipped(member: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, text)
    return buffer.getvalue()


def test_vrt_and_gdalg_in_an_upload_are_not_followed(client, tokens, tmp_path):
    secret = f"wangge-secret-{uuid.uuid4().hex}"
    local = tmp_path / "secret.csv"
    local.write_text(f'{secret},wkt\nx,"POINT (120.73 31.30)"\n')
    vrt = (
        f"<OGRVRTDataSource><OGRVRTLayer name='x'><SrcDataSource>{local}</SrcDataSource>"
        "<SrcLayer>secret</SrcLayer></OGRVRTLayer></OGRVRTDataSource>"
    )
    pipeline = json.dumps(
        {
            "type": "gdal_streamed_alg",
            "command_line": f"gdal vector pipeline ! read {local} ! write --of stream streamed",
        }
    )
    for name, content, code in (
        ("points.geojson", vrt, "unreadable_file"),
        ("points.json", pipeline, "unreadable_file"),
        ("points.geojson", pipeline, "unreadable_file"),
        ("points.kml", vrt, "unreadable_file"),
        # Found by review: a <kml> root passes a root check, and GDAL's VRT driver still claims it.
        ("points.kml", "<kml></kml>" + vrt, "unreadable_file"),
        ("points.kml", "<kml>" + vrt + "</kml>", "unreadable_file"),
        ("points.kmz", _zipped("doc.kml", "<kml></kml>" + vrt), "unreadable_file"),
        ("points.gpkg", vrt, "unreadable_file"),
        ("points.csv", vrt, "import_rejected"),  # read as what it says: CSV text, no rows
    ):
        body = content if isinstance(content, bytes) else content.encode()
        response = _import(client, tokens, "points", name, body, crs="EPSG:4326")
        assert secret not in response.text, name
        assert _error(response, 422, code)["message"], name


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self):
        _Recorder.seen.append(self.path)
        self.send_error(404)

    def log_message(self, *args):
        pass


def test_geojson_crs_link_is_not_fetched(client, tokens):
    """GDAL fetches a GeoJSON `crs` of type link (on the collection or a geometry) while reading."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    point = {"type": "Point", "coordinates": [120.73, 31.30]}
    link = {"type": "link", "properties": {"href": f"{url}/collection.prj", "type": "proj4"}}
    try:
        for collection in (
            {"crs": link, "features": []},
            {"CRS": {"TYPE": "URL", "properties": {"url": f"{url}/upper.prj"}}, "features": []},
            {"features": [{"geometry": point | {"crs": link | {"href": f"{url}/geom.prj"}}}]},
        ):
            collection["type"] = "FeatureCollection"
            for feature in collection["features"]:
                feature |= {"type": "Feature", "properties": {"code": "P-1"}}
            content = json.dumps(collection).encode()
            escaped = content.replace(b'"type": "link"', b'"type": "\\u006cink"')
            for body in (content, escaped):
                response = _import(client, tokens, "points", "p.geojson", body)
                _error(response, 422, "unreadable_file")
    finally:
        server.shutdown()
    assert _Recorder.seen == []


def test_kml_links_and_entities_stay_inside_the_file(client, tokens, tmp_path):
    secret = f"wangge-secret-{uuid.uuid4().hex}"
    other = tmp_path / "other.kml"
    other.write_text(
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>' + secret + "</name>"
        "<Point><coordinates>120.74,31.31</coordinates></Point></Placemark></kml>"
    )
    linked = (
        '<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        "<Placemark><name>P-1</name><Point><coordinates>120.73,31.30</coordinates></Point>"
        f"</Placemark><NetworkLink><Link><href>{other}</href></Link></NetworkLink></Document></kml>"
    )
    report = _import(client, tokens, "points", "p.kml", linked.encode(), code_field="Name")
    assert report.status_code == 200, report.text
    assert report.json()["features"] == 1  # the linked file's placemark is not read
    entity = linked.replace("<kml", f'<!DOCTYPE kml [<!ENTITY x SYSTEM "file://{other}">]><kml', 1)
    response = _import(client, tokens, "points", "p.kml", entity.replace("P-1", "&x;").encode())
    assert secret not in response.text
    _error(response, 422, "unreadable_file")


def test_gpkg_virtual_table_cannot_read_another_file(client, tokens, tmp_path):
    """A GeoPackage table declared as `VirtualOGR('/some/file')` is not readable by GDAL."""
    secret = f"wangge-secret-{uuid.uuid4().hex}"
    local = tmp_path / "secret.csv"
    local.write_text(f"code,{secret}\nC-9,x\n")
    path = tmp_path / "p.gpkg"
    raw.write(
        path,
        shapely.to_wkb(np.array([shapely.Point(120.73, 31.30)], dtype=object)),
        [np.array(["C-1"], dtype=object)],
        ["code"],
        driver="GPKG",
        geometry_type="Point",
        crs="EPSG:4326",
        layer="cams",
    )
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute(
            "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES "
            "('table', 'leak', 'leak', 0, ?)",
            (f"CREATE VIRTUAL TABLE leak USING VirtualOGR('{local}')",),
        )
        connection.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) "
            "VALUES ('leak', 'attributes', 'leak', 0)"
        )
    response = _import(client, tokens, "points", "p.gpkg", path.read_bytes(), layer="leak")
    assert secret not in response.text
    _error(response, 422, "unreadable_file")


def test_encodings_are_a_short_list(client, tokens):
    community = {"format": "shp", "level": "community"}
    _error(
        client.get("/api/v1/export/grids", params=community | {"encoding": "../../etc/passwd"}),
        422,
        "invalid_encoding",
    )
    gbk = client.get("/api/v1/export/grids", params=community | {"encoding": "gbk"})
    members = zipfile.ZipFile(io.BytesIO(gbk.content))
    assert members.read("grids-community.cpg").strip() == b"GBK"
    upload = _import(
        client, tokens, "grids", "c.zip", gbk.content, level="community", encoding="UTF-7"
    )
    assert _error(upload, 422, "invalid_encoding")["where"] == "body.encoding"


# --- 4. spreadsheet formulas ----------------------------------------------------------------------


def _csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


def test_csv_export_quotes_formulas_and_imports_them_back(client, engine, tokens):
    evil = '=HYPERLINK("http://evil","x")'
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE grid SET name = :name WHERE code = '320571005001'"), {"name": evil}
        )
        connection.execute(
            text(
                "UPDATE monitoring_point SET name = '@SUM(A1)', "
                """attributes = '{"offset": -3, "note": "+1", "-cmd": "x"}' """
                "WHERE code = (SELECT min(code) FROM monitoring_point)"
            )
        )
    exported = client.get("/api/v1/export/grids", params={"format": "csv", "level": "community"})
    [row] = [r for r in _csv_rows(exported) if r["code"] == "320571005001"]
    assert row["name"] == "'" + evil

    points = _csv_rows(
        client.get(
            "/api/v1/export/points", params={"format": "csv"}, headers=bearer(tokens["planner"])
        )
    )
    [camera] = [r for r in points if r["name"].startswith("'")]
    assert camera["name"] == "'@SUM(A1)" and camera["note"] == "'+1" and camera["'-cmd"] == "x"
    assert camera["offset"] == "-3" and float(camera["X"]) > 120  # numbers stay numbers

    # Our own export imports back unchanged: the quote comes off again.
    again = _import(
        client, tokens, "grids", "c.csv", exported.content, level="community", crs="EPSG:4326"
    )
    assert again.status_code == 200, again.text
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 8)


# --- 5. personal columns ----------------------------------------------------------------------------


def test_free_columns_exported_only_to_callers_who_see_personal_data(client, tokens):
    building = shapely.box(120.7301, 31.3001, 120.7303, 31.3003).__geo_interface__
    owners = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "B-OWNER-1", "name": "私宅", "owner_phone": "13800138000"},
                "geometry": building,
            }
        ],
    }
    imported = client.post(
        "/api/v1/import/buildings",
        headers=bearer(tokens["planner"]),
        files={"file": ("../../x/owners.geojson", json.dumps(owners).encode())},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["file"] == "owners.geojson"
    for headers in ({}, bearer(tokens["viewer"]), bearer(tokens["field_staff"])):
        hidden = client.get("/api/v1/export/buildings", params={"format": "csv"}, headers=headers)
        assert hidden.status_code == 200
        assert "owner_phone" not in hidden.text and "13800138000" not in hidden.text
    shown = _csv_rows(
        client.get(
            "/api/v1/export/buildings",
            params={"format": "csv"},
            headers=bearer(tokens["planner"]),
        )
    )
    [row] = [r for r in shown if r["code"] == "B-OWNER-1"]
    assert row["owner_phone"] == "13800138000"


# --- 6. heavy anonymous reads ----------------------------------------------------------------------


def test_exports_and_file_lookups_wait_for_a_heavy_slot(client):
    client.app.state.heavy = HeavyWork(1, wait_seconds=0.05)
    with client.app.state.heavy.slot():
        _error(client.get("/api/v1/export/points"), 503, "busy")
        _error(_post_points(client, "p.csv", b"lon,lat\n120.73,31.30\n"), 503, "busy")
    assert client.get("/api/v1/export/points").status_code == 200
    assert _post_points(client, "p.csv", b"lon,lat\n120.73,31.30\n").json()["count"] == 1
