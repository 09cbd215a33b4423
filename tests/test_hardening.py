"""What an outside attack review found after the first round of fixes, each pinned by a test:
split codes, grid free columns, CSV cells in every column type, cross-site login, vendor HTML,
and inputs that used to end in a 500."""

from __future__ import annotations

import pyarrow as pa
import pytest
import shapely

from api.transfer.cells import quoted_table
from tests.conftest import bearer

GRID = "320571005001002"


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


def test_split_codes_follow_the_level_rule(client, planner):
    draft = client.post("/api/v1/drafts", json={"name": "拆分"}, headers=planner).json()
    grid = client.get(f"/api/v1/grids/{GRID}").json()
    box = shapely.geometry.shape(grid["geometry"]).bounds
    middle = (box[0] + box[2]) / 2
    line = {"type": "LineString", "coordinates": [[middle, box[1] - 0.01], [middle, box[3] + 0.01]]}
    for codes in (["<img src=x onerror=alert(7)>", "../../x"], [GRID + "X", GRID + "Y"]):
        refused = client.post(
            f"/api/v1/drafts/{draft['id']}/split",
            headers=planner,
            json={"code": GRID, "line": line, "version": 0, "new_codes": codes},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] | {"message": ""} == {
            "code": "invalid_code",
            "message": "",
            "where": "body.new_codes",
        }
    assert client.get(f"/api/v1/drafts/{draft['id']}").json()["version"] == 0


def test_grid_free_columns_are_personal_like_the_others(client, planner, tokens):
    draft = client.post("/api/v1/drafts", json={"name": "属性"}, headers=planner).json()
    patched = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{GRID}",
        headers=planner,
        json={"attributes": {"owner": "张三", "phone": "13900000000"}, "version": 0},
    )
    assert patched.status_code == 200, patched.text
    params = {"generation": draft["generation_id"]}
    seen = {}
    for who, headers in (
        ("anonymous", {}),
        ("viewer", bearer(tokens["viewer"])),
        ("field_staff", bearer(tokens["field_staff"])),
        ("planner", planner),
    ):
        one = client.get(f"/api/v1/grids/{GRID}", params=params, headers=headers).json()
        listed = client.get(
            "/api/v1/grids", params={**params, "level": "grid"}, headers=headers
        ).json()
        [feature] = [f for f in listed["features"] if f["properties"]["code"] == GRID]
        seen[who] = ("attributes" in one["properties"], "attributes" in feature["properties"])
    assert seen == {
        "anonymous": (False, False),
        "viewer": (False, False),
        "field_staff": (False, False),
        "planner": (True, True),
    }
    # The list's ETag depends on what the caller may see: an anonymous revalidation of the
    # planner's copy is not a 304.
    planner_copy = client.get("/api/v1/grids", params={**params, "level": "grid"}, headers=planner)
    again = client.get(
        "/api/v1/grids",
        params={**params, "level": "grid"},
        headers={"If-None-Match": planner_copy.headers["etag"]},
    )
    assert again.status_code == 200


def test_csv_cells_of_every_type_and_the_header_are_quoted():
    table = pa.table(
        {
            "=HYPERLINK(1)": pa.array(["=a", "b"]).dictionary_encode(),
            "n": [1, -2],
            "raw": pa.array([b"@SUM(1)", b"x"]),
            "wide": pa.array(["+1", "x"], pa.large_string()),
        }
    )
    assert quoted_table(table).to_pydict() == {
        "'=HYPERLINK(1)": ["'=a", "b"],
        "n": [1, -2],
        "raw": ["'@SUM(1)", "x"],
        "wide": ["'+1", "x"],
    }


def test_login_from_another_site_is_refused(client, tokens):
    form = {"token": tokens["viewer"], "next": "/map/street"}
    cross = client.post(
        "/map/login", data=form, headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "cross_site_login"
    assert "set-cookie" not in cross.headers
    same = client.post(
        "/map/login", data=form, headers={"Origin": "http://testserver"}, follow_redirects=False
    )
    assert same.status_code == 303 and "wangge_token" in same.headers["set-cookie"]


def test_vendor_packages_serve_assets_not_pages(client):
    assert client.get("/static/vendor/leaflet/dist/leaflet.js").status_code == 200
    for page in (
        "/static/vendor/swagger-ui-dist/index.html",
        "/static/vendor/swagger-ui-dist/oauth2-redirect.html",
        "/static/vendor/leaflet/package.json",
    ):
        assert client.get(page).status_code == 404, page


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("get", "/api/v1/grids?offset=9223372036854775808", None, "query.offset"),
        ("get", "/api/v1/events?offset=9223372036854775808", None, "query.offset"),
        ("post", "/api/v1/coverage/checks", {"level": "planet"}, "body.level"),
    ],
)
def test_inputs_that_ended_in_a_500(client, planner, method, path, body, where):
    response = getattr(client, method)(path, headers=planner, **({"json": body} if body else {}))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["where"] == where


def test_unknown_grid_kind_and_long_codes_are_input_errors(client, planner):
    draft = client.post("/api/v1/drafts", json={"name": "类型"}, headers=planner).json()
    kind = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{GRID}",
        headers=planner,
        json={"kind": "castle", "version": 0},
    )
    assert kind.status_code == 422 and kind.json()["error"]["code"] == "unknown_kind"
    long_code = "P" * 65
    csv = f"code,name,lon,lat\n{long_code},摄像头,120.73,31.30\n".encode()
    imported = client.post(
        "/api/v1/import/points",
        headers=planner,
        data={"crs": "EPSG:4326"},
        files={"file": ("points.csv", csv)},
    )
    assert imported.status_code == 422, imported.text
    [detail] = imported.json()["error"]["details"]
    assert detail["field"] == "code" and "64" in detail["message"]


def test_a_stale_login_cookie_reads_as_anonymous(client):
    """An expired or revoked map cookie must not lock a browser out of the open pages."""
    client.cookies.set("wangge_token", "wg_expired-or-revoked")
    assert client.get("/map/street").status_code == 200
    assert client.get("/api/v1/levels").status_code == 200
    staff = client.get(f"/api/v1/grids/{GRID}/staff")
    assert staff.status_code == 401 and staff.json()["error"]["code"] == "token_required"
    write = client.post("/api/v1/drafts", json={"name": "x"}, headers={"X-Wangge-Page": "1"})
    assert write.status_code == 401 and write.json()["error"]["code"] == "invalid_token"
