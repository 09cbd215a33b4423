"""The command centre's pages as HTTP: /map/dashboard (一屏全览) and /map/dispatch (调度台).

They render for dispatchers, supervisors and admins; everyone else gets the login offer. Every
script carries the response's nonce, nothing is loaded from another host (ECharts comes from
/static/vendor like Leaflet), hostile names stay text, and the pages' own scripts never turn data
into markup. What the pages draw from the API is checked in a browser (test_command_browser.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from tests.test_pages import (
    DESCRIPTION,
    GRID_NAME,
    Hostile,
    Tags,
    assert_safe_page,
    cookie,
    page_data,
    plant_hostile_data,
    shows,
)
from web.render import ASSETS

PAGES = ("/map/dashboard", "/map/dispatch")
COMMAND_ROLES = ("dispatcher", "supervisor", "admin")
OTHER_ROLES = ("viewer", "planner", "handler", "field_staff")
CATEGORY_NAME = "<script>window.__pwned=1</script>市容环境"
UNIT_NAME = "<img src=x onerror=window.__pwned=1>社区工作站"
PAGE_SCRIPTS = ("dashboard.js", "dispatch.js")


def plant_hostile_command_data(engine, settings, tokens) -> Hostile:
    """test_pages' hostile names, plus a hostile category (the hostile event's) and unit."""
    hostile = plant_hostile_data(engine, settings, tokens)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE event_category SET name_zh = :n WHERE code = 'E01'"), {"n": CATEGORY_NAME}
        )
        connection.execute(
            text("UPDATE handling_unit SET name = :n WHERE code = 'community'"), {"n": UNIT_NAME}
        )
        connection.execute(
            text("UPDATE event SET category_code = 'E01' WHERE id = :id"), {"id": hostile.event_id}
        )
    return hostile


@pytest.fixture
def hostile(engine, settings, tokens) -> Hostile:
    return plant_hostile_command_data(engine, settings, tokens)


@pytest.fixture
def pages(hostile, settings) -> Iterator[TestClient]:
    """A client whose app started after the hostile data was planted (its index caches names)."""
    with TestClient(create_app(settings)) as client:
        yield client


def _local_only(tags: Tags) -> list[str]:
    """Every script, stylesheet and link target on the page (each must stay on this site)."""
    urls = []
    for tag, attrs in tags.tags:
        for name in ("src", "href"):
            if attrs.get(name):
                urls.append(attrs[name])
                parts = urlsplit(attrs[name])
                assert not parts.scheme and not parts.netloc, (tag, attrs)
    return urls


def test_command_roles_get_the_pages(pages, hostile):
    for role in COMMAND_ROLES:
        for path in PAGES:
            response = pages.get(path, headers=cookie(hostile.tokens[role]))
            tags = assert_safe_page(response)
            urls = _local_only(tags)
            scripts = [
                attrs["src"] for tag, attrs in tags.tags if tag == "script" and "src" in attrs
            ]
            data = page_data(response.text)
            assert data["role"] == role and data["map"] and data["timeZone"] == "Asia/Shanghai"
            assert data["statusLabels"]["reported"] == "待立案"
            assert "/static/vendor/leaflet/dist/leaflet.js" in scripts
            assert "/static/wangge/command.css" in urls
            assert 'class="folium-map"' in response.text
            assert "wg-login" not in response.text
            if path == "/map/dashboard":
                assert scripts[-3:] == [
                    "/static/wangge/wangge.js",
                    "/static/vendor/echarts/dist/echarts.min.js",
                    "/static/wangge/dashboard.js",
                ]
                assert data["refreshSeconds"] == 60
                assert 'id="wg-export"' in response.text
            else:
                assert scripts[-3:] == [
                    "/static/wangge/wangge.js",
                    "/static/wangge/geocode_fix.js",  # 地址匹配 and 纠正地址 (issue 17)
                    "/static/wangge/dispatch.js",
                ]
                # Every action of the loop has its Chinese label for the console's buttons.
                assert len(data["actionLabels"]) == 17  # 到场 (arrive) came with the phones
                assert data["actionLabels"]["accept"] == "立案"


def test_other_callers_get_the_login_offer(pages, hostile):
    callers = [(None, {})] + [(role, cookie(hostile.tokens[role])) for role in OTHER_ROLES]
    for role, headers in callers:
        for path in PAGES:
            response = pages.get(path, headers=headers)
            tags = assert_safe_page(response)
            login = [a for t, a in tags.tags if t == "a" and a.get("id") == "wg-login"]
            assert login == [{"id": "wg-login", "href": f"/map/login?next={path}"}]
            assert "wg-page" not in response.text  # no page data, no map, no page script
            assert not any(t == "script" for t, _ in tags.tags), (role, path)
            assert ("无权使用此页面" in response.text) == (role is not None), (role, path)
    # The login form sends the browser back to the page it offered.
    form = pages.get("/map/login", params={"next": "/map/dispatch"})
    assert 'value="/map/dispatch"' in form.text


def test_hostile_names_stay_text(pages, hostile):
    for path in PAGES:
        response = pages.get(path, headers=cookie(hostile.tokens["admin"]))
        assert_safe_page(response)
        # The street's (hostile) name heads the page, escaped; the rest is fetched as JSON.
        assert shows(response.text, GRID_NAME)
        assert CATEGORY_NAME not in response.text and "<script>window" not in response.text
    # The API hands the hostile text over as JSON for the scripts to show as text.
    admin = {"Authorization": f"Bearer {hostile.tokens['admin']}"}
    event = pages.get(f"/api/v1/events/{hostile.event_id}", headers=admin).json()
    assert event["description"] == DESCRIPTION and event["category_code"] == "E01"
    categories = {c["code"]: c["name"] for c in pages.get("/api/v1/categories").json()}
    assert categories["E01"] == CATEGORY_NAME


def test_page_scripts_build_no_markup_from_data():
    """The pages' scripts never parse strings as HTML or code, and charts' tooltips are rich
    text (ECharts renders HTML tooltips by default)."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setTimeout\(\s*[\"']|https?://"
    )
    for name in PAGE_SCRIPTS:
        source = (ASSETS / name).read_text()
        assert forbidden.findall(source) == [], name
    dashboard = (ASSETS / "dashboard.js").read_text()
    tooltips = re.findall(r"tooltip: \{[^}]*\}|TOOLTIP = \{[^}]*\}", dashboard)
    assert len(tooltips) == 2 and all('renderMode: "richText"' in t for t in tooltips), tooltips
    assert "tooltip: TOOLTIP" in dashboard


def test_echarts_is_served_from_the_site(pages):
    script = pages.get("/static/vendor/echarts/dist/echarts.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert b"echarts" in script.content[:2000].lower()
    # The package's other files (its manifest, its docs) are not served.
    for path in ("/static/vendor/echarts/package.json", "/static/vendor/echarts/README.md"):
        assert pages.get(path).status_code == 404, path
