"""The phone pages under /m/, server side: who gets a page and who the login offer, the hashed,
compressed, long-cached assets, the service worker and its precache list, and the 导航 links'
GCJ-02 / BD-09 coordinates (converted on the server, by spatial/chinacrs.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from spatial.chinacrs import wgs84_to_bd09, wgs84_to_gcj02
from web import mobile
from web.render import ASSETS

PAGES = ["/m/", "/m/report", "/m/patrol", "/m/grid"]
FIELD_GRID = "320571005001001"
PAGE_DATA = re.compile(
    r'<script type="application/json" id="wg-page" nonce="([^"]+)">(.*?)</script>', re.S
)


def with_phone_pages(app: FastAPI) -> FastAPI:
    """The app as api/app.py builds it (web/pages.py::mount includes the /m/ router)."""
    return app


@pytest.fixture
def phone(settings) -> Iterator[TestClient]:
    with TestClient(with_phone_pages(create_app(settings))) as test_client:
        yield test_client


def cookie(secret: str) -> dict[str, str]:
    return {"Cookie": f"wangge_token={secret}"}


def page_data(html: str) -> dict:
    found = PAGE_DATA.search(html)
    assert found is not None
    return json.loads(found.group(2))


def event_in_grid(engine) -> dict:
    with engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM event "
                    "WHERE grid_code LIKE :grid AND geom IS NOT NULL ORDER BY id LIMIT 1"
                ),
                {"grid": FIELD_GRID + "%"},
            )
            .mappings()
            .one()
        )
    return dict(row)


def test_pages_offer_the_login_to_anyone_without_a_field_role(phone, tokens, engine):
    event_id = event_in_grid(engine)["id"]
    callers = {
        "anonymous": {},
        "viewer": cookie(tokens["viewer"]),
        "planner": cookie(tokens["planner"]),
    }
    offered = 0
    for path in [*PAGES, f"/m/events/{event_id}"]:
        for who, headers in callers.items():
            response = phone.get(path, headers=headers)
            assert response.status_code == 200, (path, who)
            html = response.text
            assert "请先登录" in html and 'id="wg-login"' in html, (path, who)
            href = re.search(r'id="wg-login" href="([^"]+)"', html).group(1).replace("&amp;", "&")
            assert parse_qs(urlsplit(href).query)["next"] == [path]
            # No data and no script; never kept by the service worker.
            assert "<script" not in html and "wg-page" not in html, (path, who)
            assert response.headers["cache-control"] == "no-store"
            assert ("无权" in html) == (who != "anonymous")
            offered += 1
    assert offered == 15


def test_pages_render_for_field_staff_with_hashed_compressed_assets(phone, tokens, engine):
    headers = cookie(tokens["field_staff"])
    assets: set[str] = set()
    for path in [*PAGES, f"/m/events/{event_in_grid(engine)['id']}"]:
        response = phone.get(path, headers=headers)
        assert response.status_code == 200, path
        html = response.text
        nonce = PAGE_DATA.search(html).group(1)
        policy = response.headers["content-security-policy"]
        assert f"'nonce-{nonce}'" in policy and "default-src 'self'" in policy
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts), path
        assert not re.search(r"\son[a-z]+=", html), path  # no inline handlers
        # Nothing loaded from another host (the 导航 links are data until tapped).
        assert not re.search(r'(src|href)="(https?:)?//', html), path
        data = page_data(html)
        assert data["role"] == "field_staff" and data["gridCodes"] == [FIELD_GRID]
        assert data["sw"] == "/m/sw.js"
        assets |= set(re.findall(r'"(/m/static/[^"]+)"', html))
    # The scripts every page needs, the map's where there is one, each page's own, the style.
    assert len(assets) == len(mobile.SCRIPTS) + len(mobile.STYLES) == 9
    for url in sorted(assets):
        name = url.rsplit("/", 1)[1]
        original = re.sub(r"\.[0-9a-f]{12}\.", ".", name)
        body = (ASSETS / original).read_bytes()
        zipped = phone.get(url, headers={"Accept-Encoding": "gzip"})
        assert zipped.status_code == 200
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert zipped.content == body  # httpx unzipped it
        assert int(zipped.headers["content-length"]) < len(body)
        plain = phone.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == body
        again = phone.get(url, headers={"If-None-Match": zipped.headers["etag"]})
        assert again.status_code == 304
    for name in ("m_core.js", "m_core.000000000000.js", "..%2Fmobile.py", "sw.js"):
        assert phone.get(f"/m/static/{name}").status_code == 404, name


def test_service_worker_is_served_for_the_m_scope_with_what_it_keeps(phone, tokens):
    response = phone.get("/m/sw.js")
    assert response.status_code == 200
    assert response.headers["service-worker-allowed"] == "/m/"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/javascript")
    config = json.loads(re.search(r"const CONFIG = (\{.*?\});\n", response.text).group(1))
    assert config["version"] == mobile.SW_VERSION
    assert config["pages"] == PAGES
    precache = config["precache"]
    assert len(precache) == len(PAGES) + 9 + 2 + 2  # pages, own assets, Leaflet, two API reads
    for url in precache:
        answer = phone.get(url, headers=cookie(tokens["field_staff"]))
        assert answer.status_code == 200, url
        assert "no-store" not in answer.headers.get("cache-control", ""), url


def test_event_page_hands_the_navigation_links_converted_coordinates(phone, tokens, engine):
    event = event_in_grid(engine)
    response = phone.get(f"/m/events/{event['id']}", headers=cookie(tokens["field_staff"]))
    assert response.status_code == 200
    data = page_data(response.text)
    assert data["eventId"] == event["id"] and data["found"] is True
    gcj = [round(float(v), 6) for v in wgs84_to_gcj02(event["lon"], event["lat"])]
    bd = [round(float(v), 6) for v in wgs84_to_bd09(event["lon"], event["lat"])]
    nav = data["nav"]
    assert nav["gcj02"] == gcj and nav["bd09"] == bd
    # GCJ-02 is 30–700 m off WGS84 in China, BD-09 further: the conversion happened.
    assert abs(gcj[0] - event["lon"]) + abs(gcj[1] - event["lat"]) > 0.002
    amap = parse_qs(urlsplit(nav["amap"]).query)
    assert urlsplit(nav["amap"]).netloc == "uri.amap.com"
    assert amap["position"] == [f"{gcj[0]},{gcj[1]}"] and amap["coordinate"] == ["gaode"]
    for url in (nav["baidu_web"], nav["baidu_app"]):
        query = parse_qs(urlsplit(url).query)
        assert query["location"] == [f"{bd[1]},{bd[0]}"] and query["coord_type"] == ["bd09ll"]
    assert nav["baidu_app"].startswith("baidumap://map/marker?")
    assert data["map"]["shift"] == [0.0, 0.0]  # the default basemap is WGS84

    missing = phone.get("/m/events/999999999", headers=cookie(tokens["field_staff"]))
    assert missing.status_code == 404
    assert page_data(missing.text)["found"] is False and page_data(missing.text)["nav"] is None


def test_grid_page_opens_my_grid_or_the_one_asked_for(phone, tokens):
    mine = page_data(phone.get("/m/grid", headers=cookie(tokens["field_staff"])).text)
    assert mine["grid"] == FIELD_GRID
    admin = page_data(phone.get("/m/grid", headers=cookie(tokens["admin"])).text)
    assert admin["grid"] is None
    asked = phone.get(
        "/m/grid", params={"grid": "320571005001002"}, headers=cookie(tokens["admin"])
    )
    assert page_data(asked.text)["grid"] == "320571005001002"
