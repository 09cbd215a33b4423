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

    def close(self, name: str, refused: tuple[int, ...] = ()) -> None:
        """Nothing ran that should not have, nothing was blocked or logged an error (but the
        browser's own line for each response the test made the API refuse)."""
        assert self.page.evaluate("() => window.__pwned") is None, name
        assert self.page.evaluate("() => window.__violations") == [], name
        expected = [f"the server responded with a status of {status}" for status in refused]
        assert len(self.errors) == len(expected), (name, self.errors)
        for error, status in zip(self.errors, expected, strict=True):
            assert error.startswith("Failed to load resource") and status in error, (name, error)
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
    form.locator("input[name=text]").fill("老粮站那边")
    form.locator("input[name=q]").fill("纠错小学")
    form.locator("button.wg-find").click()
    page.wait_for_selector("#wg-geocode-fix .wg-place-results button[data-code='TFX-P1']")
    school = form.locator(".wg-place-results button[data-code='TFX-P1']")
    assert school.inner_text().startswith("纠错小学 · 地标 · ")
    assert form.locator("button[type=submit]").is_disabled()
    locate = form.locator("input[name=locate]")
    assert locate.is_checked()  # an event on no grid: placing it is offered, checked
    locate.uncheck()  # this test is about the alias alone
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
    assert "以后「老粮站那边」将匹配到 纠错小学" in form.locator(".wg-message").inner_text()
    if screen == "phone":
        _fits(page, "#wg-geocode-fix input, #wg-geocode-fix button", SCREENS[screen]["width"])

    # The same wording again: no second alias, said so.
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#wg-geocode-fix .wg-message').textContent.includes('无需重复保存')"
    )
    aliases = client.get("/api/v1/geocode/aliases", headers=bearer(tokens["admin"])).json()
    assert len(aliases) == 1
    assert (aliases[0]["text"], aliases[0]["event_id"]) == ("老粮站那边", event["id"])
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
    form.locator("input[name=text]").fill("老粮站北区")  # words the matcher does not know yet
    form.locator("input[name=q]").fill("纠错苑")
    form.locator("input[name=q]").press("Enter")
    page.wait_for_selector("#wg-geocode-fix .wg-place-results button[data-code='TFX-C1']")
    form.locator(".wg-place-results button[data-code='TFX-C1']").click()
    form.locator("input[name=locate]").uncheck()
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#wg-geocode-fix .wg-message').textContent.startsWith('已保存')"
    )
    assert form.locator(".wg-place-spans li").count() == 0  # not placed: nothing to choose
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


# ---- 定位到此网格 (人工定位 from the pages) ----------------------------------------------------
CROSSINGS = (
    "SELECT r1.name, r2.name FROM road r1 JOIN road r2 ON r1.name < r2.name "
    "AND ST_Intersects(r1.geom, r2.geom) ORDER BY 1, 2"
)
# A compound of the demo street, whole in one grid (a compound lies in one micro-grid).
ONE_GRID_COMPOUND = """
SELECT c.code, c.name FROM compound c
WHERE (SELECT count(*) FROM compound o WHERE o.name = c.name) = 1
ORDER BY c.code LIMIT 1
"""


def _crossing_event(client, engine, tokens, tag: str) -> dict[str, Any]:
    """An address-only ticket at a crossing of two demo roads that the geocoder left on no grid,
    with its candidate grids (the first such crossing by the roads' names)."""
    with engine.connect() as connection:
        pairs = connection.execute(text(CROSSINGS)).all()
    for number, (first, second) in enumerate(pairs[:20]):
        response = client.post(
            "/api/v1/events",
            json={
                "source": "hotline_12345",
                "external_id": f"locate-{tag}-{number}",
                "description": "有人占道经营",
                "address": f"{first}与{second}交叉口有人占道",
            },
            headers=bearer(tokens["dispatcher"]),
        )
        assert response.status_code == 201, response.text
        event = response.json()
        if (
            event["grid_code"] is None
            and len(event["assignment"]["geocode"]["grid_candidates"]) >= 2
        ):
            return event
    pytest.fail("no crossing of the demo street lies where grids meet")


def _where(engine, event_id: int) -> tuple[str | None, list[dict[str, Any]]]:
    """The event's grid and its history lines of action 'locate', from the database."""
    with engine.connect() as connection:
        grid = connection.execute(
            text("SELECT grid_code FROM event WHERE id = :id"), {"id": event_id}
        ).scalar_one()
        lines = connection.execute(
            text(
                "SELECT details FROM event_history WHERE event_id = :id AND action = 'locate' "
                "ORDER BY id"
            ),
            {"id": event_id},
        ).scalars()
        return grid, list(lines)


def _candidate_codes(event: dict[str, Any]) -> list[str]:
    return [c["grid"]["code"] for c in event["assignment"]["geocode"]["grid_candidates"]]


def _path_name(event: dict[str, Any]) -> str:
    step = event["assignment"]["path"][-1]
    return f"{step['name']}（{step['code']}）"


def _button_boxes(page, selector: str) -> list[dict[str, float]]:
    return page.eval_on_selector_all(
        selector,
        "(nodes) => nodes.map((n) => { const r = n.getBoundingClientRect(); "
        "return {left: r.left, right: r.right, height: r.height}; })",
    )


def test_event_page_places_a_crossing_on_a_grid(browser, live_server, client, engine, tokens):
    """At 390 px: a dispatcher places an unplaced crossing on its first candidate grid; a refusal
    for a version someone else moved says so; a viewer gets no buttons."""
    event = _crossing_event(client, engine, tokens, "page")
    codes = _candidate_codes(event)
    path = f"{live_server}/map/events/{event['id']}"

    viewer = Session(browser, live_server, tokens["viewer"], "phone")
    viewer.page.goto(path, wait_until="networkidle")
    assert [code for code, _ in _shown_grids(viewer.page, ".wg-panel")] == codes
    assert viewer.page.locator(".wg-place-grid").count() == 0
    viewer.close("locate_viewer_phone")

    session = Session(browser, live_server, tokens["dispatcher"], "phone")
    page = session.page
    page.goto(path, wait_until="networkidle")
    buttons = page.locator(".wg-panel .wg-grid-shares .wg-place-grid")
    assert buttons.count() == len(codes)
    assert [buttons.nth(i).get_attribute("data-grid") for i in range(len(codes))] == codes
    assert all(b.inner_text() == "定位到此网格" for b in buttons.all())
    boxes = _button_boxes(page, ".wg-place-grid")
    assert all(box["height"] >= 44 for box in boxes), boxes
    assert all(box["left"] >= -1 and box["right"] <= 391 for box in boxes), boxes
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "geocode_locate_buttons_phone.png"))

    # Someone else acts on the event meanwhile: the page's version is stale, nothing is written.
    accepted = client.post(
        f"/api/v1/events/{event['id']}/transitions",
        json={"action": "accept", "version": event["version"]},
        headers=bearer(tokens["dispatcher"]),
    )
    assert accepted.status_code == 200, accepted.text
    buttons.first.click()
    page.wait_for_function(
        "() => document.querySelector('.wg-locate-message').textContent.includes('事件已被他人更新')"
    )
    assert page.inner_text(".wg-locate-message") == "事件已被他人更新，请刷新后重试"
    assert _where(engine, event["id"]) == (None, [])
    assert not buttons.first.is_disabled()  # the dispatcher may try again after a refresh

    page.reload(wait_until="networkidle")
    with page.expect_navigation(wait_until="networkidle"):  # placed, the page is read again
        page.locator(".wg-panel .wg-place-grid").first.click()
    grid, lines = _where(engine, event["id"])
    assert grid == codes[0]
    assert len(lines) == 1 and lines[0]["by"] == "grid" and lines[0]["to_grid"] == codes[0]
    placed = client.get(f"/api/v1/events/{event['id']}", headers=bearer(tokens["dispatcher"]))
    assert page.inner_text(".wg-locate-message") == f"已定位到 {_path_name(placed.json())}"
    # Reloaded: the page shows the event on its grid, and offers no placing any more.
    assert f"网格 {codes[0]}" in page.inner_text(".wg-panel")
    assert f"地点跨越 {len(codes)} 个网格，现已定位到 {codes[0]}：" in page.inner_text(".wg-panel")
    placed_on = page.eval_on_selector_all(
        ".wg-placed-grid", "(n) => n.map((li) => li.dataset.grid)"
    )
    assert placed_on == [codes[0]]
    assert page.locator(".wg-place-grid").count() == 0
    session.close("locate_event_phone", refused=(409,))


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_dispatch_page_places_the_event_and_reads_the_queue_again(
    browser, live_server, client, engine, tokens, screen
):
    event = _crossing_event(client, engine, tokens, f"dispatch-{screen}")
    codes = _candidate_codes(event)
    path = f"{live_server}/map/dispatch?event={event['id']}"
    # (The 调度台 is for dispatchers, supervisors and admins only: all of them may place events.)

    session = Session(browser, live_server, tokens["dispatcher"], screen)
    page = session.page
    page.goto(path, wait_until="networkidle")
    page.wait_for_selector("#wg-event-body .wg-place-grid")
    buttons = page.locator("#wg-event-body .wg-grid-shares .wg-place-grid")
    assert buttons.count() == len(codes)
    if screen == "phone":
        boxes = _button_boxes(page, "#wg-event-body .wg-place-grid")
        assert all(box["height"] >= 44 and box["right"] <= 391 for box in boxes), boxes
    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if "/api/v1/events?" in r.url else None)
    buttons.nth(1).click()
    page.wait_for_function(
        "() => document.querySelector('#wg-message').textContent.startsWith('已定位到')"
    )
    page.wait_for_function("() => !document.querySelector('#wg-event-body .wg-place-grid')")
    grid, lines = _where(engine, event["id"])
    assert grid == codes[1] and len(lines) == 1 and lines[0]["to_grid"] == codes[1]
    placed = client.get(f"/api/v1/events/{event['id']}", headers=bearer(tokens["dispatcher"]))
    assert page.inner_text("#wg-message") == f"已定位到 {_path_name(placed.json())}"
    assert page.inner_text("#wg-version") == str(placed.json()["version"])
    assert f"现已定位到 {codes[1]}：" in page.inner_text("#wg-event-body .wg-geocode")
    placed_on = page.eval_on_selector_all(
        "#wg-event-body .wg-placed-grid", "(n) => n.map((li) => li.dataset.grid)"
    )
    assert placed_on == [codes[1]]
    page.wait_for_load_state("networkidle")
    assert len(lists) == 1  # the queue was read again once
    session.close(f"locate_dispatch_{screen}")


def test_a_cancelled_event_is_not_placed(browser, live_server, client, engine, tokens):
    event = _crossing_event(client, engine, tokens, "finished")
    session = Session(browser, live_server, tokens["dispatcher"], "desktop")
    page = session.page
    page.goto(f"{live_server}/map/dispatch?event={event['id']}", wait_until="networkidle")
    page.wait_for_selector("#wg-event-body .wg-place-grid")
    cancelled = client.post(
        f"/api/v1/events/{event['id']}/transitions",
        json={"action": "cancel", "version": event["version"], "note": "重复来电"},
        headers=bearer(tokens["dispatcher"]),
    )
    assert cancelled.status_code == 200, cancelled.text
    refused = client.post(
        f"/api/v1/events/{event['id']}/location",
        json={"version": cancelled.json()["version"], "grid_code": _candidate_codes(event)[0]},
        headers=bearer(tokens["dispatcher"]),
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "event_finished"
    # The page still holds version 1: the version is checked first (before event_finished).
    page.locator("#wg-event-body .wg-place-grid").first.click()
    page.wait_for_function(
        "() => document.querySelector('#wg-message').textContent.includes('事件已被他人更新')"
    )
    page.reload(wait_until="networkidle")
    page.wait_for_selector("#wg-event-body .wg-geocode")
    assert page.locator(".wg-place-grid").count() == 0  # a cancelled event is placed no more
    assert _where(engine, event["id"]) == (None, [])
    session.close("locate_finished", refused=(409,))


@pytest.mark.parametrize("screen", ["phone"])
def test_fix_form_places_the_event_at_the_compound(
    browser, live_server, client, engine, tokens, screen
):
    """纠正地址 on the event page: the alias saved, and (checked) the event placed at the compound."""
    event = _crossing_event(client, engine, tokens, "form")
    with engine.connect() as connection:
        code, name = connection.execute(text(ONE_GRID_COMPOUND)).one()
    session = Session(browser, live_server, tokens["dispatcher"], screen)
    page = session.page
    page.goto(f"{live_server}/map/events/{event['id']}", wait_until="networkidle")
    page.click(".wg-open-fix")
    form = page.locator("#wg-geocode-fix")
    form.locator("input[name=text]").fill("老粮站宿舍")
    form.locator("input[name=q]").fill(name)
    form.locator("input[name=q]").press("Enter")
    page.wait_for_selector(f"#wg-geocode-fix .wg-place-results button[data-code='{code}']")
    form.locator(f".wg-place-results button[data-code='{code}']").click()
    assert form.locator("input[name=locate]").is_checked()
    assert form.locator(".wg-also-locate").inner_text() == "同时把本事件定位到该地点"
    _fits(page, "#wg-geocode-fix input, #wg-geocode-fix button", SCREENS[screen]["width"])
    with page.expect_navigation(wait_until="networkidle"):  # placed, the page is read again
        form.locator("button[type=submit]").click()
    grid, lines = _where(engine, event["id"])
    assert grid is not None and len(lines) == 1
    assert lines[0]["by"] == "place" and lines[0]["to_grid"] == grid
    assert lines[0]["place"] == {"kind": "compound", "code": code, "name": name}
    placed = client.get(f"/api/v1/events/{event['id']}", headers=bearer(tokens["dispatcher"]))
    assert page.inner_text(".wg-locate-message") == (
        f"已保存：以后「老粮站宿舍」将匹配到 {name}；已定位到 {_path_name(placed.json())}"
    )
    aliases = client.get("/api/v1/geocode/aliases", headers=bearer(tokens["admin"])).json()
    assert [(a["text"], a["event_id"], a["target"]["code"]) for a in aliases] == [
        ("老粮站宿舍", event["id"], code)
    ]
    session.close(f"locate_form_{screen}")


def test_fix_form_offers_the_grids_of_a_place_spanning_them(
    browser, ticket, live_server, client, engine, tokens
):
    """On the dispatch page: the compound planted across two grids answers 409 spans_grids; its
    grids are offered with 定位到此网格, and the one picked is where the event goes."""
    event = _event(client, tokens, "locate-spans")
    assert event["grid_code"] is None
    session = Session(browser, live_server, tokens["dispatcher"], "desktop")
    page = session.page
    page.goto(f"{live_server}/map/dispatch?event={event['id']}", wait_until="networkidle")
    page.wait_for_selector("#wg-event-body .wg-open-fix")
    page.click("#wg-event-body .wg-open-fix")
    form = page.locator("#wg-geocode-fix")
    form.locator("input[name=text]").fill("粮站后面小区")
    form.locator("input[name=q]").fill("纠错苑")
    form.locator("button.wg-find").click()
    page.wait_for_selector("#wg-geocode-fix .wg-place-results button[data-code='TFX-C1']")
    form.locator(".wg-place-results button[data-code='TFX-C1']").click()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#wg-geocode-fix .wg-place-spans .wg-place-grid")
    refused = client.post(
        f"/api/v1/events/{event['id']}/location",
        json={"version": event["version"], "place": {"kind": "compound", "code": "TFX-C1"}},
        headers=bearer(tokens["dispatcher"]),
    ).json()["error"]
    assert refused["code"] == "spans_grids"
    spans = [c["grid"]["code"] for c in refused["details"]]
    assert _shown_grids(page, "#wg-geocode-fix .wg-place-spans") == [
        [c["grid"]["code"], f"{percent(c['share'])}%"] for c in refused["details"]
    ]
    assert form.locator(".wg-message").inner_text() == (
        f"已保存：以后「粮站后面小区」将匹配到 纠错苑；该地点跨越 {len(spans)} 个网格，请选择定位到哪一个："
    )
    assert _where(engine, event["id"]) == (None, [])
    form.locator(".wg-place-spans .wg-place-grid").last.click()
    page.wait_for_function(
        "() => document.querySelector('#wg-message').textContent.includes('已定位到')"
    )
    grid, lines = _where(engine, event["id"])
    assert grid == spans[-1] and len(lines) == 1
    assert lines[0]["by"] == "place" and lines[0]["place"]["code"] == "TFX-C1"
    page.wait_for_function("() => !document.querySelector('#wg-geocode-fix')")  # form closed
    placed = client.get(f"/api/v1/events/{event['id']}", headers=bearer(tokens["dispatcher"]))
    assert page.inner_text("#wg-message") == (
        f"已保存：以后「粮站后面小区」将匹配到 纠错苑；已定位到 {_path_name(placed.json())}"
    )
    history = page.inner_text("#wg-event-body .wg-history li:last-child")
    assert "人工定位" in history and f"定位到网格 {spans[-1]}" in history
    session.close("locate_spans_desktop", refused=(409,))


def test_fix_form_on_a_crossing_the_matcher_already_knows(
    browser, live_server, client, engine, tokens
):
    """The crossing itself picked in 纠正地址 on the event page (390 px): the matcher already finds
    it, so nothing is saved (the API says so, 200 already_matches); the event is still placed,
    on the grid picked among those the crossing touches."""
    event = _crossing_event(client, engine, tokens, "known")
    wording = event["assignment"]["geocode"]["address_text"]
    session = Session(browser, live_server, tokens["dispatcher"], "phone")
    page = session.page
    page.goto(f"{live_server}/map/events/{event['id']}", wait_until="networkidle")
    page.click(".wg-open-fix")
    form = page.locator("#wg-geocode-fix")
    assert form.locator("input[name=text]").input_value() == wording
    form.locator("input[name=q]").fill(event["assignment"]["geocode"]["place"]["name"])
    form.locator("input[name=q]").press("Enter")
    crossing = form.locator(".wg-place-results button[data-kind='intersection']").first
    crossing.wait_for()
    code = crossing.get_attribute("data-code")
    crossing.click()
    form.locator("button[type=submit]").click()
    form.locator(".wg-place-spans .wg-place-grid").first.wait_for()
    said = form.locator(".wg-message").inner_text()
    assert "无需保存" in said and "请选择定位到哪一个" in said, said
    grids = form.locator(".wg-place-spans .wg-place-grid")
    assert grids.count() >= 2
    chosen = grids.nth(1).get_attribute("data-grid")
    boxes = _button_boxes(page, "#wg-geocode-fix .wg-place-spans .wg-place-grid")
    assert all(box["height"] >= 44 and box["right"] <= 391 for box in boxes), boxes
    with page.expect_navigation(wait_until="networkidle"):
        grids.nth(1).click()
    grid, lines = _where(engine, event["id"])
    assert grid == chosen and len(lines) == 1
    assert lines[0]["by"] == "place" and lines[0]["place"]["code"] == code
    assert "已定位到" in page.inner_text(".wg-locate-message")
    assert client.get("/api/v1/geocode/aliases", headers=bearer(tokens["admin"])).json() == []
    session.close("locate_known_phone", refused=(409,))
