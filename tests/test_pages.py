"""Map pages as HTTP: hostile text stays text, every script carries the response's CSP nonce,
no inline handlers, security headers, local-only login redirects, personal data by the one rule
(api/privacy.py), and ETag revalidation.

The hostile data is planted the way it would arrive: grid, building, camera and staff names as
an import would write them (SQL here), an event description through the 12345 intake API, a
draft name and a token name through the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

import folium
import pytest
from fastapi.testclient import TestClient
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import escape
from sqlalchemy import Engine, text

from api.app import create_app
from api.auth import Role, create_token
from api.settings import MapSettings, Settings
from tests.conftest import bearer
from web.maps import MapFactory, UnsafeFoliumOutput, render_map
from web.security import tile_sources

GRID_NAME = "<svg onload=window.__pwned=1>"
DESCRIPTION = '<img src=x onerror="window.__pwned=1">'
ADDRESS = "<img src=x onerror=window.__pwned=1>锦玉苑1幢"
CAMERA_NAME = "<img src=x onerror=window.__pwned=1>监控点"
STAFF_NAME = "<svg onload=window.__pwned=1>姚桂建"
TOKEN_NAME = "<svg onload=window.__pwned=1>规划员"
DRAFT_NAME = "<svg onload=window.__pwned=1>草稿"
HOSTILE = (GRID_NAME, DESCRIPTION, ADDRESS, CAMERA_NAME, STAFF_NAME, TOKEN_NAME, DRAFT_NAME)

COMMUNITY = "320571005001"
COMMUNITY_STAFF = "社区监督员王某"
GRID = "320571005001001"
MICRO_GRID = "320571005001001001"
OTHER_GRID = "320571005002001"
SHIFTED_MICRO_GRID = "320571005003001001"
# Inside building 320571005001001001B01, so inside GRID and MICRO_GRID.
EVENT_LON, EVENT_LAT = 120.72193, 31.31856


@dataclass
class Hostile:
    tokens: dict[str, str]
    event_id: int
    draft_id: int
    check_id: int


def plant_hostile_data(engine: Engine, settings: Settings, tokens: dict[str, str]) -> Hostile:
    """Hostile names everywhere a page shows data; start the app afterwards (its index caches
    names)."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE grid SET name = :payload || name"), {"payload": GRID_NAME})
        connection.execute(
            text("UPDATE building SET address = :a WHERE code = :c"),
            {"a": ADDRESS, "c": f"{MICRO_GRID}B01"},
        )
        connection.execute(text("UPDATE monitoring_point SET name = :n"), {"n": CAMERA_NAME})
        connection.execute(
            text(
                "UPDATE staff SET name = :n WHERE id IN (SELECT staff_id FROM staff_assignment "
                "WHERE grid_code = :g AND role = 'grid_head')"
            ),
            {"n": STAFF_NAME, "g": GRID},
        )
        # One micro-grid moved a few metres, so the coverage report has findings to list.
        connection.execute(
            text("UPDATE grid SET geom = ST_Translate(geom, 0.00005, 0) WHERE code = :c"),
            {"c": SHIFTED_MICRO_GRID},
        )
        # Someone on duty for the whole community, above the field staff token's grid.
        connection.execute(
            text(
                "WITH s AS (INSERT INTO staff (name, phone) VALUES (:n, '13500000000') RETURNING id) "
                "INSERT INTO staff_assignment (staff_id, grid_code, role) "
                "SELECT id, :g, 'supervisor' FROM s"
            ),
            {"n": COMMUNITY_STAFF, "g": COMMUNITY},
        )
        planner = create_token(connection, name=TOKEN_NAME, role=Role.planner, actor="tests").secret
    with TestClient(create_app(settings)) as client:
        event = client.post(
            "/api/v1/events",
            json={
                "source": "hotline_12345",
                "external_id": "xss-1",
                "description": DESCRIPTION,
                "lon": EVENT_LON,
                "lat": EVENT_LAT,
                "crs": "EPSG:4326",
            },
            headers=bearer(tokens["dispatcher"]),
        )
        assert event.status_code == 201, event.text
        assert event.json()["grid_code"] == MICRO_GRID
        draft = client.post("/api/v1/drafts", json={"name": DRAFT_NAME}, headers=bearer(planner))
        assert draft.status_code == 201, draft.text
        check = client.post("/api/v1/coverage/checks", json={}, headers=bearer(planner))
        assert check.status_code in (200, 201), check.text
    return Hostile(tokens, event.json()["id"], draft.json()["id"], check.json()["id"])


@pytest.fixture
def hostile(engine, settings, tokens) -> Hostile:
    return plant_hostile_data(engine, settings, tokens)


@pytest.fixture
def pages(hostile, settings) -> Iterator[TestClient]:
    """A client whose app started after the hostile data was planted."""
    with TestClient(create_app(settings)) as client:
        yield client


def cookie(secret: str) -> dict[str, str]:
    return {"Cookie": f"wangge_token={secret}"}


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(source)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def nonce_of(policy: str) -> str:
    found = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{16,})'", policy)
    assert found, policy
    return found.group(1)


def assert_safe_page(response) -> Tags:
    """No hostile text as markup, a nonce on every script, no inline handlers, page headers."""
    assert response.status_code == 200, response.text[:500]
    source = response.text
    for payload in HOSTILE:
        assert payload not in source
    assert "<svg" not in source.lower() and "<img" not in source.lower()
    nonce = nonce_of(response.headers["content-security-policy"])
    tags = Tags(source)
    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert all(attrs.get("nonce") == nonce for attrs in scripts), scripts
    handlers = [(tag, name) for tag, attrs in tags.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", source, re.IGNORECASE)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    return tags


def escaped(payload: str) -> tuple[str, str]:
    """The forms a payload may take on a page: HTML-escaped text, or JSON as |tojson writes it
    (every <, >, & and ' escaped)."""
    return str(escape(payload)), str(htmlsafe_json_dumps(payload))[1:-1]


def shows(source: str, payload: str) -> bool:
    return any(form in source for form in escaped(payload))


def test_hostile_text_stays_text_on_every_page(pages, hostile):
    admin = cookie(hostile.tokens["admin"])
    expected = {
        "/map/street": [GRID_NAME],
        f"/map/grids/{GRID}": [GRID_NAME, CAMERA_NAME, STAFF_NAME],
        f"/map/grids/{MICRO_GRID}": [GRID_NAME],
        f"/map/events/{hostile.event_id}": [GRID_NAME, DESCRIPTION],
        f"/map/checks/{hostile.check_id}": [],
        "/map/editor": [DRAFT_NAME, TOKEN_NAME],
        f"/map/drafts/{hostile.draft_id}/edit": [DRAFT_NAME],
        f"/map/drafts/{hostile.draft_id}/diff": [DRAFT_NAME],
        "/map/login?next=" + GRID_NAME: [],
    }
    for path, payloads in expected.items():
        for headers in (admin, {}):
            response = pages.get(path, headers=headers)
            assert_safe_page(response)
            if headers:
                for payload in payloads:
                    assert shows(response.text, payload), (path, payload)
    # The report lists its findings as links that web/assets/map.js makes zoom (no onclick).
    report = Tags(pages.get(f"/map/checks/{hostile.check_id}").text)
    assert any("data-finding" in attrs for tag, attrs in report.tags if tag == "a")


def test_each_response_has_its_own_nonce_and_the_whole_policy(pages):
    first = pages.get("/map/street")
    second = pages.get("/map/street")
    policy = first.headers["content-security-policy"]
    assert nonce_of(policy) != nonce_of(second.headers["content-security-policy"])
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives == {
        "default-src": "'self'",
        "script-src": f"'self' 'nonce-{nonce_of(policy)}'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }
    # The API is not a page: its JSON carries no page policy.
    assert "content-security-policy" not in pages.get("/api/v1/grids?limit=1").headers


TILE_HOSTS = [
    ("none", None, []),
    ("amap", None, ["https://webrd01.is.autonavi.com"]),
    ("tianditu", "k", ["https://t0.tianditu.gov.cn"]),
    ("tianditu", None, []),  # no key: no tiles are drawn
    ("https://{s}.tile.example.org/{z}/{x}/{y}.png", None, ["https://*.tile.example.org"]),
    ("http://tiles.example.org:8080/{z}/{x}/{y}.png", None, ["http://tiles.example.org:8080"]),
    ("/tiles/{z}/{x}/{y}.png", None, []),  # this site: 'self' covers it
    ("https://ev il.example/{z}/{x}/{y}.png", None, []),  # cannot be named: refused
    ("https://a.{s}.example/{z}/{x}/{y}.png", None, []),  # "*." only leftmost: refused
]


@pytest.mark.parametrize(("basemap", "token", "sources"), TILE_HOSTS)
def test_image_sources_name_the_configured_tile_host_only(basemap, token, sources):
    factory = MapFactory(MapSettings(basemap=basemap, tianditu_token=token))
    assert tile_sources([tile.url for tile in factory.tiles()]) == sources


def test_pages_allow_images_from_the_basemap(settings):
    maps = MapSettings(basemap="amap")
    with TestClient(create_app(settings.model_copy(update={"maps": maps}))) as client:
        policy = client.get("/map/login").headers["content-security-policy"]
    assert "img-src 'self' data: https://webrd01.is.autonavi.com;" in policy


LEAVING = [
    "/\\evil.example",
    "//evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example",
    "http:/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "javascript:window.__pwned=1",
    "/",
    "",
]
STAYING = ["/map/grids/320571005001001", "/map/editor?x=1#y", "/%5Cevil.example", "/%2F/evil"]


def test_login_sends_the_browser_only_within_the_site(client, tokens):
    for target in LEAVING + STAYING:
        expected = target if target in STAYING else "/map/street"
        form = client.get("/map/login", params={"next": target})
        hidden = [a for t, a in Tags(form.text).tags if t == "input" and a.get("name") == "next"]
        assert hidden[0]["value"] == expected, target
        response = client.post(
            "/map/login",
            data={"token": tokens["viewer"], "next": target},
            follow_redirects=False,
        )
        location = response.headers["location"]
        assert response.status_code == 303 and location == expected, target
        parts = urlsplit(location)
        assert not parts.scheme and not parts.netloc and location[1] not in "/\\", target


def test_a_wrong_token_shows_the_form_again(client):
    response = client.post("/map/login", data={"token": "nope", "next": "//evil.example"})
    assert response.status_code == 401 and "令牌无效" in response.text
    nonce_of(response.headers["content-security-policy"])
    assert 'value="/map/street"' in response.text


def test_staff_on_grid_pages_follow_the_privacy_rule(pages, hostile):
    tokens = hostile.tokens
    # (role, page, sees the grid's staff, sees the community's supervisor)
    cases = [
        ("admin", GRID, True, True),
        ("dispatcher", GRID, True, True),
        ("planner", GRID, True, True),
        ("viewer", GRID, False, False),
        (None, GRID, False, False),
        # Field staff: their own grid and below it, never the grids above it.
        ("field_staff", GRID, True, False),
        ("field_staff", MICRO_GRID, True, False),
        ("field_staff", COMMUNITY, False, False),
        ("field_staff", OTHER_GRID, False, False),
    ]
    for role, code, sees_grid, sees_community in cases:
        headers = cookie(tokens[role]) if role else {}
        source = pages.get(f"/map/grids/{code}", headers=headers).text
        assert shows(source, STAFF_NAME) == sees_grid, (role, code)
        assert (COMMUNITY_STAFF in source) == sees_community, (role, code)
        assert ("后查看人员联系方式" in source) != (sees_grid or sees_community), (role, code)


def test_event_description_follows_the_privacy_rule(pages, hostile, engine):
    tokens = hostile.tokens
    path = f"/map/events/{hostile.event_id}"
    for role, sees in (
        ("admin", True),
        ("dispatcher", True),
        ("field_staff", True),  # the event lies in their grid
        ("viewer", False),
        (None, False),
    ):
        headers = cookie(tokens[role]) if role else {}
        assert shows(pages.get(path, headers=headers).text, DESCRIPTION) == sees, role
    # Outside their grid, field staff do not see it (a demo event in another community).
    with engine.connect() as connection:
        other_id, other_text = connection.execute(
            text(
                "SELECT id, description FROM event WHERE grid_code NOT LIKE '320571005001%' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()
    other = f"/map/events/{other_id}"
    assert other_text not in pages.get(other).text
    assert other_text not in pages.get(other, headers=cookie(tokens["field_staff"])).text
    assert other_text in pages.get(other, headers=cookie(tokens["admin"])).text


def test_draft_list_shows_token_names_only_to_unscoped_roles(pages, hostile):
    admin = pages.get("/map/editor", headers=cookie(hostile.tokens["admin"])).text
    assert shows(admin, TOKEN_NAME)
    for headers in (cookie(hostile.tokens["viewer"]), {}):
        listed = pages.get("/map/editor", headers=headers).text
        assert shows(listed, DRAFT_NAME) and not shows(listed, TOKEN_NAME)
        assert re.search(r"<td data-label=\"创建人\">token:\d+</td>", listed)


def test_pages_revalidate_with_their_etag(pages, hostile):
    first = pages.get("/map/street")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache, private"
    again = pages.get("/map/street", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    # A 304 must not hand the cached page a policy with another nonce.
    assert "content-security-policy" not in again.headers
    assert again.headers["etag"] == etag
    # A new open event changes the counts on the page, so the page.
    created = pages.post(
        "/api/v1/events",
        json={
            "source": "hotline_12345",
            "external_id": "etag-1",
            "lon": EVENT_LON,
            "lat": EVENT_LAT,
            "crs": "EPSG:4326",
        },
        headers=bearer(hostile.tokens["dispatcher"]),
    )
    assert created.status_code == 201
    changed = pages.get("/map/street", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    # Pages that differ by caller differ in ETag.
    grid = f"/map/grids/{GRID}"
    anonymous = pages.get(grid).headers["etag"]
    assert pages.get(grid, headers={"If-None-Match": anonymous}).status_code == 304
    admin = pages.get(grid, headers={**cookie(hostile.tokens["admin"]), "If-None-Match": anonymous})
    assert admin.status_code == 200 and admin.headers["etag"] != anonymous
    for path in (f"/map/events/{hostile.event_id}", f"/map/checks/{hostile.check_id}"):
        tag = pages.get(path).headers["etag"]
        assert pages.get(path, headers={"If-None-Match": tag}).status_code == 304


def page_data(source: str) -> dict:
    holder = re.search(r'<script type="application/json" id="wg-page"[^>]*>(.*?)</script>', source)
    return json.loads(holder.group(1))


def test_street_counts_are_fresh_while_its_map_is_cached(pages, hostile):
    before = pages.get("/map/street").text
    total = int(re.search(r"未结事件 (\d+) 件", before).group(1))
    pages.post(
        "/api/v1/events",
        json={
            "source": "hotline_12345",
            "external_id": "count-1",
            "lon": EVENT_LON,
            "lat": EVENT_LAT,
            "crs": "EPSG:4326",
        },
        headers=bearer(hostile.tokens["dispatcher"]),
    )
    after = pages.get("/map/street").text
    assert f"未结事件 {total + 1} 件" in after
    # The grid, its community and the street each count one more open event.
    counts_before, counts_after = page_data(before)["open"], page_data(after)["open"]
    for code in (GRID, "320571005001", "320571005"):
        assert counts_after[code] == counts_before[code] + 1


def test_folium_output_that_could_end_a_script_is_refused():
    """folium's plain tooltips write their text raw into the script; render_map refuses to put
    the page's nonce on such a script."""
    fmap = folium.Map(tiles=None)
    folium.Marker([31.3, 120.7], tooltip="</script><script>window.__pwned=1</script>").add_to(fmap)
    with pytest.raises(UnsafeFoliumOutput):
        render_map(fmap)


EDITOR_TOOLS = [
    "wg-tool-select",
    "wg-split",
    "wg-merge",
    "wg-create",
    "wg-delete",
    "wg-attributes",
    "wg-parent",
    "wg-reassign",
    "wg-undo",
    "wg-check-now",
    "wg-publish",
    "wg-diff",
]


def test_draft_list_is_a_styled_chinese_page(pages, hostile):
    tokens = hostile.tokens
    planner = pages.get("/map/editor", headers=cookie(tokens["planner"]))
    tags = assert_safe_page(planner)
    source = planner.text
    sheets = [a["href"] for t, a in tags.tags if t == "link" and a.get("rel") == "stylesheet"]
    assert sheets == ["/static/wangge/editor.css"]
    css = pages.get("/static/wangge/editor.css")
    assert (
        css.status_code == 200 and ".wg-draft-table" in css.text and "max-width: 899px" in css.text
    )
    assert '<html lang="zh-CN">' in source and 'name="viewport"' in source
    headers = re.findall(r"<th>([^<]*)</th>", source)
    assert headers == ["草稿", "基于", "版本", "创建人", "更新时间", "操作"]
    rows = [a for t, a in tags.tags if t == "tr" and "data-draft" in a]
    assert [r["data-draft"] for r in rows] == [str(hostile.draft_id)]
    name = re.search(r'<span class="wg-name">(.*?)</span>', source).group(1)
    assert name == str(escape(DRAFT_NAME))  # escaped text, never markup
    assert '<td data-label="基于">第 1 版</td>' in source
    assert re.search(r'<time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d</time>', source)
    links = {a["href"] for t, a in tags.tags if t == "a"}
    draft = hostile.draft_id
    assert {f"/map/drafts/{draft}/edit", f"/map/drafts/{draft}/diff"} <= links
    discard = [a for t, a in tags.tags if t == "button" and "data-discard" in a]
    assert discard == [
        {"type": "button", "class": "wg-danger", "data-discard": str(draft), "data-version": "0"}
    ]
    for label in (
        "新建草稿",
        "自动划分建议",
        "生成建议草稿",
        "最少户数",
        "最多户数",
        "现行版本：第 1 版",
    ):
        assert label in source, label
    assert "wg-readonly" not in source
    # Readers see the list, without the discard buttons, and are told what a write needs.
    viewer = pages.get("/map/editor", headers=cookie(tokens["viewer"]))
    assert "data-discard" not in viewer.text and 'id="wg-readonly"' in viewer.text


def test_editor_page_offers_every_tool_and_loads_only_the_view(pages, hostile):
    path = f"/map/drafts/{hostile.draft_id}/edit"
    response = pages.get(path, headers=cookie(hostile.tokens["planner"]))
    tags = assert_safe_page(response)
    ids = {a.get("id") for t, a in tags.tags if t in ("button", "a")}
    assert set(EDITOR_TOOLS) <= ids
    data = page_data(response.text)
    assert data["canEdit"] and data["open"] and data["level"] == "grid"
    assert data["parentLevel"] == "community" and data["childLevel"] == "micro_grid"
    assert [k["name"] for k in data["kinds"]] == ["commercial", "office", "other", "residential"]
    assert [lv["name"] for lv in data["levels"]] == ["street", "community", "grid", "micro_grid"]
    (south, west), (north, east) = data["bounds"]  # the first community, not the street
    assert 0 < north - south < 0.02 and 0 < east - west < 0.02
    scripts = [a["src"] for t, a in tags.tags if t == "script" and a.get("src")]
    tools = ["editor.js", "editor_tools.js", "editor_publish.js"]
    assert scripts[-3:] == [f"/static/wangge/{name}" for name in tools]
    for script in scripts[-3:]:
        code = pages.get(script).text
        assert "limit=5000" not in code and "innerHTML" not in code  # by view; text only
    assert "bbox" in pages.get("/static/wangge/editor.js").text
    # focus= opens at a grid; an unknown one falls back to the first community.
    focused = page_data(pages.get(path + f"?focus={MICRO_GRID}").text)["bounds"]
    assert focused[1][0] - focused[0][0] < north - south
    assert page_data(pages.get(path + "?focus=nope").text)["bounds"] == data["bounds"]
    assert pages.get(path + "?focus=" + "9" * 65).status_code == 422
    # A reader gets the page read-only.
    reader = page_data(pages.get(path, headers=cookie(hostile.tokens["viewer"])).text)
    assert reader["canEdit"] is False


def test_diff_page_says_when_its_grid_list_is_cut_and_where_to_fit(pages, hostile, monkeypatch):
    import web.draft_pages

    planner = cookie(hostile.tokens["planner"]) | {"X-Wangge-Page": "1"}
    draft = hostile.draft_id
    deleted = pages.delete(
        f"/api/v1/drafts/{draft}/grids/{GRID}",
        params={"version": 0, "with_children": "true"},
        headers=planner,
    )
    assert deleted.status_code == 200, deleted.text
    removed = deleted.json()["removed"]
    assert GRID in removed and len(removed) >= 2
    monkeypatch.setattr(web.draft_pages, "GRIDS_LISTED", 1)
    response = pages.get(f"/map/drafts/{draft}/diff", headers=planner)
    assert_safe_page(response)
    assert f"变化的网格（{len(removed)}）" in response.text
    assert f"显示前 1 个，共 {len(removed)} 个。" in response.text
    table = response.text.split('class="wg-diff"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr><td>") == 1  # one row listed
    (south, west), (north, east) = page_data(response.text)["fit"]
    assert 0 < north - south < 0.02 and 0 < east - west < 0.02
    scripts = [a["src"] for t, a in Tags(response.text).tags if t == "script" and a.get("src")]
    assert scripts[-1] == "/static/wangge/diff.js"
    monkeypatch.setattr(web.draft_pages, "GRIDS_LISTED", 200)
    assert "显示前" not in pages.get(f"/map/drafts/{draft}/diff", headers=planner).text
    # The planner pages reach the API through one wrapper that never rejects.
    for path in ("/map/editor", f"/map/drafts/{draft}/edit"):
        srcs = [a.get("src") for t, a in Tags(pages.get(path).text).tags if t == "script"]
        assert "/static/wangge/planner_net.js" in srcs, path
    net = pages.get("/static/wangge/planner_net.js").text
    assert "网络错误" in net and "innerHTML" not in net
