"""The HTTP API end to end: reads, filters, history, errors, limits (roles: test_roles.py)."""

from __future__ import annotations

import io
import os
import re
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tests.conftest import bearer


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code and body["message"]
    return body


def test_health_and_ready(client):
    health = client.get("/api/v1/health").json()
    assert health == {"status": "ok", "worker": os.getpid(), "generation": 1}
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    assert (
        ready.json()["checks"]["migration"]["current"]
        == ready.json()["checks"]["migration"]["head"]
    )


def test_ready_reports_pending_migrations(client, engine):
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    response = client.get("/api/v1/ready")
    assert response.status_code == 503 and response.json()["status"] == "not_ready"


def test_openapi_is_revalidated_by_etag(client):
    """GIS clients (QGIS) fetch the document the OGC landing page links on every layer load."""
    first = client.get("/api/v1/openapi.json")
    etag = first.headers["etag"]
    again = client.get("/api/v1/openapi.json", headers={"If-None-Match": etag})
    assert first.status_code == 200 and len(first.content) > 100_000
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    stale = client.get("/api/v1/openapi.json", headers={"If-None-Match": '"older"'})
    assert stale.status_code == 200 and stale.json() == first.json()


def test_openapi_lists_the_endpoints(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/grids",
        "/api/v1/grids/{code}",
        "/api/v1/buildings",
        "/api/v1/points",
        "/api/v1/import/{kind}",
        "/api/v1/export/{kind}",
        "/api/v1/ready",
    ):
        assert path in paths


def test_grids_by_level_bbox_and_parent(client):
    communities = client.get("/api/v1/grids", params={"level": "community"}).json()
    assert communities["numberReturned"] == 8 and communities["hasMore"] is False
    assert {f["properties"]["level_label"] for f in communities["features"]} == {"社区"}
    children = client.get("/api/v1/grids", params={"parent": "320571005001"}).json()
    assert children["numberReturned"] >= 7
    assert all(f["properties"]["code"].startswith("320571005001") for f in children["features"])
    # A small box around one micro-grid finds it and its neighbours, not the whole street.
    box = client.get(
        "/api/v1/grids", params={"level": "micro_grid", "bbox": "120.7300,31.3000,120.7305,31.3005"}
    ).json()
    assert 1 <= box["numberReturned"] < 20
    page = client.get(
        "/api/v1/grids", params={"level": "micro_grid", "limit": 100, "offset": 1100}
    ).json()
    assert page["numberReturned"] == 100 and page["hasMore"] is True


def test_grid_detail_has_path(client):
    body = client.get("/api/v1/grids/320571005001001").json()
    assert [p["level"] for p in body["properties"]["path"]] == ["street", "community", "grid"]
    assert body["geometry"]["type"] == "MultiPolygon"
    assert 50_000 < body["properties"]["area_m2"] < 300_000


def test_bad_parameters_are_422_json(client):
    assert (
        _error(client.get("/api/v1/grids", params={"bbox": "1,2,3"}), 422, "invalid_bbox")["where"]
        == "query.bbox"
    )
    _error(client.get("/api/v1/grids", params={"bbox": "10,0,5,1"}), 422, "invalid_bbox")
    _error(client.get("/api/v1/grids", params={"limit": 10**6}), 422, "limit_too_large")
    body = _error(client.get("/api/v1/grids", params={"at": "yesterday"}), 422, "validation_error")
    assert body["where"] == "query.at"
    _error(client.get("/api/v1/grids/nope"), 404, "grid_not_found")
    _error(client.get("/api/v1/grids", params={"generation": 99}), 404, "generation_not_found")
    _error(client.get("/api/v1/grids", params={"level": "planet"}), 422, "level_not_found")
    _error(client.get("/api/v1/nowhere"), 404, "not_found")


def test_history_by_generation_and_time(client, tokens):
    """After an import, `at` before it answers with the old generation."""
    before_import = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    gpkg = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "community"}
    ).content
    edited = gpkg.replace("翠湖社区".encode(), "翠湖新社区".encode())
    response = client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "community"},
        files={"file": ("c.geojson", edited)},
    )
    assert response.status_code == 200, response.text
    assert response.json()["generation"] == 2 and response.json()["updated"] == 1
    now = client.get("/api/v1/grids/320571005001").json()["properties"]
    then = client.get("/api/v1/grids/320571005001", params={"at": before_import}).json()[
        "properties"
    ]
    assert (now["name"], now["generation"]) == ("翠湖新社区", 2)
    assert (then["name"], then["generation"]) == ("翠湖社区", 1)
    generations = client.get("/api/v1/generations").json()
    assert generations["active"] == 2 and len(generations["generations"]) == 2
    _error(
        client.get("/api/v1/grids", params={"at": "2000-01-01T00:00:00Z"}),
        404,
        "no_active_generation",
    )


def test_staff_contacts_need_a_token_and_field_staff_are_scoped(client, tokens):
    _error(client.get("/api/v1/grids/320571005001001/staff"), 401, "token_required")
    _error(
        client.get("/api/v1/grids/320571005001001/staff", headers=bearer(tokens["viewer"])),
        403,
        "insufficient_role",
    )
    own = client.get("/api/v1/grids/320571005001001/staff", headers=bearer(tokens["field_staff"]))
    assert own.status_code == 200
    roles = {s["role_label"] for s in own.json()["staff"]}
    assert {"网格长", "网格指导员", "专职网格员", "职能网格员"} <= roles
    assert all(s["phone"] for s in own.json()["staff"])
    # A micro-grid inside their grid is in scope; a neighbouring grid is not.
    assert (
        client.get(
            "/api/v1/grids/320571005001001001/staff", headers=bearer(tokens["field_staff"])
        ).status_code
        == 200
    )
    _error(
        client.get("/api/v1/grids/320571005001002/staff", headers=bearer(tokens["field_staff"])),
        403,
        "outside_token_scope",
    )
    assert (
        client.get(
            "/api/v1/grids/320571005001002/staff", headers=bearer(tokens["dispatcher"])
        ).status_code
        == 200
    )


def test_tokens_created_by_admin_work_and_can_be_revoked(client, tokens):
    created = client.post(
        "/api/v1/tokens",
        headers=bearer(tokens["admin"]),
        json={"name": "新网格员", "role": "planner"},
    )
    assert created.status_code == 201
    secret, token_id = created.json()["token"], created.json()["id"]
    listed = client.get("/api/v1/tokens", headers=bearer(tokens["admin"])).json()
    assert all("token_sha256" not in t and secret not in str(t) for t in listed)
    assert (
        client.get("/api/v1/grids/320571005001001/staff", headers=bearer(secret)).status_code == 200
    )
    assert (
        client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(tokens["admin"])).status_code
        == 204
    )
    _error(
        client.get("/api/v1/grids/320571005001001/staff", headers=bearer(secret)),
        401,
        "invalid_token",
    )
    bad = client.post(
        "/api/v1/tokens", headers=bearer(tokens["admin"]), json={"name": "x", "role": "field_staff"}
    )
    _error(bad, 422, "invalid_token_request")


def test_import_rejection_names_row_and_field(client, tokens, engine):
    csv = "code,name,lon,lat\nCAM-1,好,120.73,31.30\nCAM-2,坏,120.73,north\n"
    response = client.post(
        "/api/v1/import/points",
        headers=bearer(tokens["planner"]),
        data={"crs": "EPSG:4326"},
        files={"file": ("cams.csv", csv.encode())},
    )
    body = _error(response, 422, "import_rejected")
    assert body["where"] == "cams.csv"
    assert any(d["row"] == 2 for d in body["details"])
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM monitoring_point WHERE code LIKE 'CAM-%'")
            ).scalar()
            == 0
        )


def test_unsupported_and_unreadable_uploads(client, tokens):
    headers = bearer(tokens["planner"])
    _error(
        client.post(
            "/api/v1/import/grids",
            headers=headers,
            data={"level": "grid"},
            files={"file": ("grids.xlsx", b"xx")},
        ),
        422,
        "unsupported_format",
    )
    _error(
        client.post(
            "/api/v1/import/grids",
            headers=headers,
            data={"level": "grid"},
            files={"file": ("grids.geojson", b"{not json")},
        ),
        422,
        "unreadable_file",
    )
    _error(
        client.post("/api/v1/import/grids", headers=headers, files={"file": ("g.geojson", b"{}")}),
        422,
        "level_required",
    )
    _error(
        client.post(
            "/api/v1/import/grids",
            headers=headers,
            data={"level": "grid", "crs": "EPSG:99999"},
            files={
                "file": (
                    "g.geojson",
                    b'{"type":"FeatureCollection","features":[{"type":"Feature",'
                    b'"properties":{"code":"1","name":"a"},"geometry":{"type":"Point","coordinates":[1,2]}}]}',
                )
            },
        ),
        422,
        "unknown_crs",
    )


def test_request_size_limits(client, tokens):
    limit = client.app.state.settings.limits.max_request_bytes
    response = client.post(
        "/api/v1/tokens",
        headers=bearer(tokens["admin"]) | {"content-type": "application/json"},
        content=b" " * (limit + 1),
    )
    _error(response, 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = client.post(
        "/api/v1/tokens",
        headers=bearer(tokens["admin"]) | {"content-type": "application/json"},
        content=chunks(),
    )
    _error(response, 413, "payload_too_large")


def test_export_downloads(client):
    shp = client.get(
        "/api/v1/export/grids", params={"format": "shp", "level": "community", "crs": "EPSG:4490"}
    )
    assert shp.status_code == 200 and shp.headers["content-type"] == "application/zip"
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(shp.content)).namelist()
    assert {
        "grids-community.shp",
        "grids-community.dbf",
        "grids-community.prj",
        "grids-community.cpg",
    } <= set(names)
    _error(client.get("/api/v1/export/grids", params={"level": "planet"}), 422, "level_not_found")
    _error(
        client.get("/api/v1/export/grids", params={"format": "kml", "crs": "EPSG:4549"}),
        422,
        "invalid_export",
    )


def test_buildings_and_points(client):
    in_grid = client.get("/api/v1/buildings", params={"grid": "320571005001001001"}).json()
    assert in_grid["numberReturned"] > 5
    assert all(
        f["properties"]["code"].startswith("320571005001001001") for f in in_grid["features"]
    )
    cameras = client.get("/api/v1/points", params={"status": "fault"}).json()
    assert cameras["numberReturned"] == 3
    _error(client.get("/api/v1/points", params={"status": "burning"}), 422, "validation_error")


def test_home_page_uses_only_local_assets(client):
    page = client.get("/").text
    assert "湖东示范街道" in page and "/static/vendor/leaflet/dist/leaflet.js" in page
    import re

    external = [
        u
        for u in re.findall(r'(?:src|href)=["\']([^"\']+)', page)
        if u.startswith(("http:", "https:", "//"))
    ]
    assert external == []
    assert client.get("/static/vendor/leaflet/dist/leaflet.js").status_code == 200


@pytest.mark.parametrize("format_", ["shp", "gpkg", "kml", "geojson"])
def test_download_and_upload_round_trip(client, tokens, format_):
    """What a planner does in QGIS: download a layer, upload it back; nothing changes."""
    crs = "EPSG:4326" if format_ == "kml" else "EPSG:4490"  # KML is WGS84 by specification
    download = client.get(
        "/api/v1/export/grids", params={"format": format_, "level": "community", "crs": crs}
    )
    assert download.status_code == 200
    name = {"shp": "c.zip"}.get(format_, f"c.{format_}")
    upload = client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "community", "dry_run": "true"},
        files={"file": (name, download.content)},
    )
    assert upload.status_code == 200, upload.text
    body = upload.json()
    assert (body["created"], body["updated"], body["unchanged"], body["dry_run"]) == (0, 0, 8, True)
    assert body["crs"] == crs


def test_map_pages_listed_local_and_small(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {
        "/map/street",
        "/map/grids/{code}",
        "/map/events/{event_id}",
        "/map/checks/{check_id}",
    } <= set(paths)
    import re

    for path in ("/map/street", "/map/grids/320571005001001", "/map/events/2990"):
        page = client.get(path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'name="viewport"' in page.text or "name='viewport'" in page.text
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
        assert refs and not [r for r in refs if r.startswith(("http:", "https:", "//"))], path
        assert "cdn" not in page.text.lower()
    assert len(client.get("/map/street").content) <= 1_500_000  # all 1,202 micro-grids included
    assert client.get("/map/grids/nope").status_code == 404


def test_map_login_shows_staff_only_to_entitled_users(client, tokens):
    assert "登录</a>后查看人员联系方式" in client.get("/map/grids/320571005001001").text
    bad = client.post("/map/login", data={"token": "wg_wrong", "next": "/map/street"})
    assert bad.status_code == 401 and "令牌无效" in bad.text
    login = client.post(
        "/map/login",
        data={"token": tokens["field_staff"], "next": "/map/grids/320571005001001"},
        follow_redirects=False,
    )
    assert login.status_code == 303 and login.headers["location"] == "/map/grids/320571005001001"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    own = client.get("/map/grids/320571005001001")  # the client keeps the cookie
    assert "网格长：" in own.text and "tel:" in own.text
    assert "网格长：" not in client.get("/map/grids/320571005002001").text  # not their grid
    # The cookie never authorises a write: no CSRF through a map page.
    assert client.post("/api/v1/tokens", json={"name": "x", "role": "viewer"}).status_code == 401
    offsite = client.post(
        "/map/login",
        data={"token": tokens["admin"], "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert offsite.headers["location"] == "/map/street"


def test_grids_etag_changes_with_the_generation(client, tokens):
    first = client.get("/api/v1/grids", params={"level": "community"})
    etag = first.headers["etag"]
    assert etag.startswith('W/"g1-')
    again = client.get(
        "/api/v1/grids", params={"level": "community"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    other = client.get("/api/v1/grids", params={"level": "grid"}, headers={"If-None-Match": etag})
    assert other.status_code == 200  # another query, another answer
    layer = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "community"}
    ).content
    client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "community"},
        files={"file": ("c.geojson", layer.replace("翠湖社区".encode(), "翠湖东社区".encode()))},
    )
    after = client.get(
        "/api/v1/grids", params={"level": "community"}, headers={"If-None-Match": etag}
    )
    assert after.status_code == 200 and after.headers["etag"].startswith('W/"g2-')


def test_buildings_in_gcj02_for_amap_tiles(client):
    params = {"grid": "320571005001001001", "limit": 1}
    wgs = client.get("/api/v1/buildings", params=params).json()["features"][0]["geometry"][
        "coordinates"
    ][0][0][0]
    gcj = client.get("/api/v1/buildings", params=params | {"out_crs": "gcj02"}).json()["features"][
        0
    ]
    shifted = gcj["geometry"]["coordinates"][0][0][0]
    from spatial.chinacrs import wgs84_to_gcj02

    expected = wgs84_to_gcj02(*wgs)
    assert abs(shifted[0] - expected[0]) < 1e-9 and abs(shifted[1] - expected[1]) < 1e-9
    assert (
        client.get("/api/v1/buildings", params=params | {"out_crs": "EPSG:3857"}).status_code == 422
    )


def test_amap_basemap_shifts_every_overlay_to_gcj02(settings, engine):
    """AMap tiles are GCJ-02: the page's boundary and its building requests are shifted to match."""
    import re

    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from api.app import create_app
    from api.settings import MapSettings
    from spatial.chinacrs import wgs84_to_gcj02

    amap = settings.model_copy(update={"maps": MapSettings(basemap="amap")})
    with TestClient(create_app(amap)) as amap_client:
        page = amap_client.get("/map/grids/320571005001001001").text
    with engine.connect() as connection:
        xmin, ymin = connection.execute(
            text("SELECT ST_XMin(geom), ST_YMin(geom) FROM grid WHERE code = '320571005001001001'")
        ).one()
    coordinates = [(float(x), float(y)) for x, y in re.findall(r"\[(120\.\d+), (31\.\d+)\]", page)]
    assert coordinates
    gx, gy = wgs84_to_gcj02(xmin, ymin)
    assert (
        abs(min(x for x, _ in coordinates) - gx) < 2e-5
        and abs(min(y for _, y in coordinates) - gy) < 2e-5
    )
    assert "out_crs=gcj02" in page and "autonavi.com" in page


def test_api_docs_load_nothing_from_other_hosts(client):
    """Swagger UI comes from /static/vendor like every other page asset: it works offline."""
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(sources) == 3 and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert client.get(source).status_code == 200, source


def test_pages_layers_and_tiles_are_gzipped_bulk_lookups_are_not(client):
    """What browsers and GIS clients fetch travels gzipped when they accept it; a bulk lookup
    answers uncompressed (its callers pay in CPU, not network)."""
    gzip = {"Accept-Encoding": "gzip"}
    page = client.get("/ogc/collections/buildings/items?limit=1000", headers=gzip)
    plain = client.get(
        "/ogc/collections/buildings/items?limit=1000", headers={"Accept-Encoding": "identity"}
    )
    assert page.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert page.json() == plain.json() and page.num_bytes_downloaded * 4 < len(plain.content)
    assert "Accept-Encoding" in page.headers["vary"] and "Accept" in page.headers["vary"]
    script = client.get("/static/vendor/leaflet/dist/leaflet.js", headers=gzip)
    assert script.status_code == 200 and script.headers["content-encoding"] == "gzip"
    points = [{"id": str(i), "lon": 120.73 + i * 1e-5, "lat": 31.30} for i in range(500)]
    lookups = client.post(
        "/api/v1/lookup/batch", json={"crs": "EPSG:4326", "points": points}, headers=gzip
    )
    assert lookups.status_code == 200 and "content-encoding" not in lookups.headers
    assert len(lookups.json()["results"]) == 500


def test_a_draft_generations_grids_are_revalidated_after_each_edit(client, tokens):
    """A draft's generation keeps its id while it is edited: its ETag follows the draft version,
    so a page revalidating with If-None-Match never keeps the outline before an edit."""
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", headers=planner, json={"name": "etag"}).json()
    generation = draft["generation_id"]
    query = {"level": "community", "generation": generation}
    first = client.get("/api/v1/grids", params=query)
    etag = first.headers["etag"]
    assert etag.startswith(f'W/"g{generation}v0-')
    same = client.get("/api/v1/grids", params=query, headers={"If-None-Match": etag})
    assert same.status_code == 304
    code = first.json()["features"][0]["properties"]["code"]
    renamed = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{code}",
        headers=planner,
        json={"version": 0, "name": "改名后的社区"},
    )
    assert renamed.status_code == 200, renamed.text
    after = client.get("/api/v1/grids", params=query, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"].startswith(f'W/"g{generation}v1-')
    names = {f["properties"]["code"]: f["properties"]["name"] for f in after.json()["features"]}
    assert names[code] == "改名后的社区"
