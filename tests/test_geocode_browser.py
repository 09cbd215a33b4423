"""地址匹配 and 纠正地址 in a real browser (Debian's headless Chromium, playwright), at a phone's
390 px and at a desktop's width.

A hotline ticket with only an address lands on a compound that straddles two grids: the dispatch
page and the event page show its precision, confidence and the candidate grids with their shares
(as the API gives them), and a dispatcher finds the right place by name and saves the wording as
an alias — which the API then holds, tied to the event. Hostile text stays text; nothing leaves
127.0.0.1; no console errors. Screenshots are kept in tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import bearer
from tests.test_browser import ARTIFACTS, WATCH_POLICY_JS
from web.geocode_view import percent

SCREENS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
HOSTILE = '<img src=x onerror="window.__pwned=1">'
ADDRESS = "园区纠错苑4栋楼下垃圾堆放"
# A compound square on the edge between two grids of the demo street, a school and a kindergarten
# (with a hostile name) beside it.
STRADDLING = """
WITH pair AS (
  SELECT ST_PointOnSurface(ST_Intersection(a.geom, b.geom)) AS p
  FROM grid a JOIN grid b ON a.level = 'grid' AND b.level = 'grid' AND a.code < b.code
   AND ST_Intersects(a.geom, b.geom) AND ST_Length(ST_Intersection(a.geom, b.geom)::geography) > 200
  ORDER BY a.code, b.code LIMIT 1)
INSERT INTO compound (code, name, aliases, geom)
SELECT 'TFX-C1', '纠错苑', '{纠错苑小区}', ST_Multi(ST_Expand(p, 0.0008)) FROM pair
RETURNING ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom))
"""
POIS = (
    "INSERT INTO poi (code, name, aliases, category, geom) VALUES "
    "('TFX-P1', '纠错小学', '{}', 'school', ST_SetSRID(ST_MakePoint(:lon + 0.0015, :lat), 4326)),"
    "('TFX-P2', :hostile, '{}', 'kindergarten', ST_SetSRID(ST_MakePoint(:lon, :lat + 0.0015), 4326))"
)
KINDERGARTEN = f"纠错幼儿园{HOSTILE}"


@pytest.fixture
def ticket(engine, settings) -> dict[str, Any]:
    """The places, planted before the server starts (its gazetteer loads them)."""
    with engine.begin() as connection:
        lon, lat = connection.execute(text(STRADDLING)).one()
        connection.execute(text(POIS), {"hostile": KINDERGARTEN, "lon": lon, "lat": lat})
    return {"lon": lon, "lat": lat}


def _event(client, tokens, external_id: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/events",
        json={
            "source": "hotline_12345",
            "external_id": external_id,
            "description": f"楼下垃圾堆放{HOSTILE}",
            "address": ADDRESS,
        },
        headers=bearer(tokens["dispatcher"]),
    )
    assert response.status_code == 201, response.text
    return response.json()


class Session:
    """A browser context logged in with one token, recording errors, policy violations and any
    request that leaves the test server."""

    def __init__(self, browser, server: str, token: str, screen: str) -> None:
        self.server = server
        self.context = browser.new_context(viewport=SCREENS[screen])
        self.context.add_cookies([{"name": "wangge_token", "value": token, "url": server}])
        self.context.add_init_script(WATCH_POLICY_JS)
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "request",
            lambda r: (
                None if r.url.startswith((server, "data:", "blob:")) else self.outside.append(r.url)
            ),
        )

    def close(self, name: str) -> None:
        assert self.page.evaluate("() => window.__pwned") is None, name
        assert self.page.evaluate("() => window.__violations") == [], name
        assert self.errors == [], (name, self.errors)
        assert self.outside == [], (name, self.outside)
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"geocode_{name}.png"), full_page=True)
        self.context.close()


def _fits(page, selector: str, width: int) -> None:
    """Every element of `selector` lies within the screen's width (nothing to scroll sideways)."""
    boxes = page.eval_on_selector_all(
        selector,
        "(nodes) => nodes.map((n) => { const r = n.getBoundingClientRect(); return [r.left, r.right]; })",
    )
    assert boxes, selector
    assert all(left >= -1 and right <= width + 1 for left, right in boxes), (selector, boxes)


def _shown_grids(page, scope: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{scope} .wg-grid-shares li",
        "(items) => items.map((li) => [li.dataset.grid, li.querySelector('.wg-share').textContent])",
    )


def _expected_grids(geocode: dict[str, Any]) -> list[list[str]]:
    def code(grid: Any) -> str:
        return grid["code"] if isinstance(grid, dict) else grid

    # Rounded half up, as the pages do (JavaScript's Math.round; web/geocode_view.percent).
    return [[code(c["grid"]), f"{percent(c['share'])}%"] for c in geocode["grid_candidates"]]


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_dispatcher_sees_the_match_and_saves_a_correction(
    browser, ticket, live_server, client, tokens, screen
):
    event = _event(client, tokens, f"fix-browser-{screen}")
    geocode = event["assignment"]["geocode"]
    assert len(geocode["grid_candidates"]) >= 2 and geocode["needs_manual_dispatch"]
    session = Session(browser, live_server, tokens["dispatcher"], screen)
    page = session.page
    page.goto(f"{live_server}/map/dispatch?event={event['id']}", wait_until="networkidle")
    page.wait_for_selector("#wg-event-body .wg-geocode")

    # How the address was matched, as the API says.
    section = page.inner_text("#wg-event-body .wg-geocode")
    assert "匹配精度" in section and "小区" in section
    assert f"{geocode['confidence']:.2f}" in section
    assert f"地点跨越 {len(geocode['grid_candidates'])} 个网格，需人工分派" in section
    assert _shown_grids(page, "#wg-event-body") == _expected_grids(geocode)

    # 纠正地址: find the school by name, pick it, save the wording.
    page.click("#wg-event-body .wg-open-fix")
    form = page.locator("#wg-geocode-fix")
    assert form.locator("input[name=text]").input_value() in (ADDRESS, geocode.get("address_text"))
    form.locator("input[name=text]").fill("纠错苑南门")
    form.locator("input[name=q]").fill("纠错小学")
    form.locator("button.wg-find").click()
    page.wait_for_selector("#wg-geocode-fix .wg-place-results button[data-code='TFX-P1']")
    school = form.locator(".wg-place-results button[data-code='TFX-P1']")
    assert school.inner_text().startswith("纠错小学 · 地标 · ")
    assert form.locator("button[type=submit]").is_disabled()
    school.click()
    found = client.get("/api/v1/geocode/places", params={"q": "纠错小学"}).json()["places"]
    grid = next(p["grid"] for p in found if p["code"] == "TFX-P1")
    assert form.locator(".wg-picked").inner_text() == (
        f"已选：纠错小学（地标 TFX-P1），位于 {grid['name']}（{grid['code']}）"
    )
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#wg-geocode-fix .wg-message').textContent.startsWith('已保存')"
    )
    assert "以后「纠错苑南门」将匹配到 纠错小学" in form.locator(".wg-message").inner_text()
    if screen == "phone":
        _fits(page, "#wg-geocode-fix input, #wg-geocode-fix button", SCREENS[screen]["width"])

    # The same wording again: no second alias, said so.
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#wg-geocode-fix .wg-message').textContent.includes('无需重复保存')"
    )
    aliases = client.get("/api/v1/geocode/aliases", headers=bearer(tokens["admin"])).json()
    assert len(aliases) == 1
    assert (aliases[0]["text"], aliases[0]["event_id"]) == ("纠错苑南门", event["id"])
    assert aliases[0]["target"]["kind"] == "poi" and aliases[0]["target"]["code"] == "TFX-P1"
    session.close(f"dispatch_{screen}")


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_event_page_shows_the_match_and_offers_the_correction_to_dispatchers(
    browser, ticket, live_server, client, tokens, screen
):
    event = _event(client, tokens, f"fix-page-{screen}")
    geocode = event["assignment"]["geocode"]
    path = f"{live_server}/map/events/{event['id']}"

    viewer = Session(browser, live_server, tokens["viewer"], screen)
    viewer.page.goto(path, wait_until="networkidle")
    assert _shown_grids(viewer.page, ".wg-panel") == _expected_grids(geocode)
    assert viewer.page.locator(".wg-open-fix").count() == 0  # viewers do not teach the matcher
    viewer.close(f"event_viewer_{screen}")

    session = Session(browser, live_server, tokens["dispatcher"], screen)
    page = session.page
    page.goto(path, wait_until="networkidle")
    assert _shown_grids(page, ".wg-panel") == _expected_grids(geocode)
    assert "匹配精度" in page.inner_text(".wg-panel .wg-geocode")
    page.click(".wg-open-fix")
    form = page.locator("#wg-geocode-fix")
    form.locator("input[name=q]").fill("纠错苑")
    form.locator("input[name=q]").press("Enter")
    page.wait_for_selector("#wg-geocode-fix .wg-place-results button[data-code='TFX-C1']")
    form.locator(".wg-place-results button[data-code='TFX-C1']").click()
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#wg-geocode-fix .wg-message').textContent.startsWith('已保存')"
    )
    if screen == "phone":
        _fits(
            page,
            ".wg-panel, #wg-geocode-fix input, #wg-geocode-fix button",
            SCREENS[screen]["width"],
        )
    # A hostile name is shown as its characters.
    form.locator("input[name=q]").fill(KINDERGARTEN)
    form.locator("button.wg-find").click()
    page.wait_for_selector("#wg-geocode-fix .wg-place-results button[data-code='TFX-P2']")
    assert KINDERGARTEN in form.locator("button[data-code='TFX-P2']").inner_text()
    # A search that finds nothing says so in Chinese.
    form.locator("input[name=q]").fill("qqqq")
    form.locator("button.wg-find").click()
    page.wait_for_function(
        "() => document.querySelector('#wg-geocode-fix .wg-message').textContent.startsWith('没有找到')"
    )
    assert form.locator(".wg-place-results li").count() == 0
    session.close(f"event_dispatcher_{screen}")


def test_event_page_says_why_an_address_did_not_match(client, tokens):
    """Server-rendered: an address with no place in it is 未匹配, with the service's reason; the
    correction is offered to a dispatcher, not to a viewer, and not on an event placed by its
    coordinates (there is no wording to teach)."""
    posted = client.post(
        "/api/v1/events",
        json={"source": "hotline_12345", "external_id": "fix-none", "address": "请尽快处理谢谢"},
        headers=bearer(tokens["dispatcher"]),
    ).json()
    geocode = posted["assignment"]["geocode"]
    assert geocode["matched"] is False and geocode["message"]
    page = client.get(f"/map/events/{posted['id']}", headers=bearer(tokens["dispatcher"])).text
    assert "<dt>匹配精度</dt><dd>未匹配</dd>" in page
    assert f"<dt>说明</dt><dd>{geocode['message']}</dd>" in page
    assert 'id="wg-geocode-fix-holder"' in page and "/static/wangge/geocode_fix.js" in page
    viewer = client.get(f"/map/events/{posted['id']}", headers=bearer(tokens["viewer"])).text
    assert "<dt>匹配精度</dt>" in viewer and 'id="wg-geocode-fix-holder"' not in viewer
    placed = client.post(
        "/api/v1/events",
        json={
            "source": "hotline_12345",
            "external_id": "fix-point",
            "lon": 120.735,
            "lat": 31.305,
            "crs": "EPSG:4326",
        },
        headers=bearer(tokens["dispatcher"]),
    ).json()
    page = client.get(f"/map/events/{placed['id']}", headers=bearer(tokens["dispatcher"])).text
    assert "地址匹配" not in page and 'id="wg-geocode-fix-holder"' not in page
