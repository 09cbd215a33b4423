"""The command centre's pages in a real browser (Debian's headless Chromium, playwright).

The dashboard draws its map, charts, counts and queue from the API at a wall screen's 1920×1080
and a phone's 390×844, and refreshes them by fetch when its timer fires; on the dispatcher console
a dispatcher accepts and dispatches a reported event by clicking, and a refused action shows the
API's Chinese message. No console errors, no policy violations, no request leaves 127.0.0.1.
Screenshots are kept in tests/artifacts/.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
import shapely.geometry

from tests.conftest import bearer
from tests.test_browser import ARTIFACTS, WATCH_POLICY_JS
from tests.test_command_pages import CATEGORY_NAME, UNIT_NAME, plant_hostile_command_data
from tests.test_pages import DESCRIPTION, GRID_NAME, Hostile

SCREENS = {"wall": {"width": 1920, "height": 1080}, "phone": {"width": 390, "height": 844}}
QUEUE_SHOWN = 40  # dashboard.js lists this many per queue, then "另有 N 件"
PAINTED_IN_JS = """(selector) => {
  let painted = 0;
  for (const canvas of document.querySelectorAll(selector)) {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  }
  return painted;
}"""
MESSAGE_STARTS = "(text) => document.getElementById('wg-message').textContent.startsWith(text)"
MESSAGE_HAS = "(text) => document.getElementById('wg-message').textContent.includes(text)"


class Session:
    """A browser context logged in with one token, recording errors, policy violations and any
    request that leaves the test server."""

    def __init__(self, browser, server: str, token: str, screen: str = "wall") -> None:
        self.server = server
        self.context = browser.new_context(viewport=SCREENS[screen])
        self.context.add_cookies([{"name": "wangge_token", "value": token, "url": server}])
        self.context.add_init_script(WATCH_POLICY_JS)
        self.context.clock.install()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((server, "data:", "blob:"))
                else self.outside.append(request.url)
            ),
        )

    def open(self, path: str) -> Any:
        self.page.goto(self.server + path, wait_until="networkidle")
        self.page.wait_for_selector("body[data-ready='1']", timeout=20000)
        return self.page

    def close(self, name: str, refused: tuple[int, ...] = ()) -> None:
        """Nothing ran that should not have, nothing of ours was blocked or logged an error
        (but the browser's own line for each response the test made the API refuse)."""
        assert self.page.evaluate("() => window.__pwned") is None, name
        assert self.page.evaluate("() => window.__violations") == [], name
        expected = [f"the server responded with a status of {status}" for status in refused]
        assert len(self.errors) == len(expected), (name, self.errors)
        for error, status in zip(self.errors, expected, strict=True):
            assert error.startswith("Failed to load resource") and status in error, (name, error)
        assert self.outside == [], (name, self.outside)
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"command_{name}.png"))
        self.context.close()


def open_events(client, token: str, **params: str) -> list[dict]:
    query = {"status": "open", "with_unplaced": "true", "limit": 5000, **params}
    response = client.get("/api/v1/events", params=query, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["features"]


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


@pytest.mark.parametrize("screen", ["wall", "phone"])
def test_dashboard_draws_the_map_charts_and_queue(browser, live_server, client, tokens, screen):
    supervisor, dispatcher = tokens["supervisor"], tokens["dispatcher"]
    session = Session(browser, live_server, supervisor, screen)
    asked: list[str] = []
    session.page.on(
        "request", lambda r: asked.append(r.url) if "/patrols/coverage" in r.url else None
    )
    page = session.open("/map/dashboard")

    # Counts at the top and the queues are the API's.
    opened = open_events(client, supervisor)
    reported = open_events(client, supervisor, state="reported")
    to_dispatch = open_events(client, supervisor, state="accepted,returned")
    red = open_events(client, supervisor, warning="red")
    expected = {"open": len(opened), "reported": len(reported), "to_dispatch": len(to_dispatch)}
    expected["red"] = len(red)
    assert expected["reported"] > 0 and expected["to_dispatch"] > 0 and expected["red"] > 0
    shown = {key: int(page.inner_text(f"[data-key={key}] b")) for key in expected}
    assert shown == expected
    # Today's patrol coverage of the street, as the patrols API computes it.
    coverage = client.get(
        "/api/v1/patrols/coverage", params={"grid": "320571005"}, headers=bearer(supervisor)
    ).json()
    patrol_line = page.inner_text("#wg-patrol")
    assert patrol_line.startswith("今日巡查：") and f"{coverage['workers']} 人" in patrol_line
    assert page.get_attribute("#wg-patrol-map", "href") == "/map/patrols?grid=320571005"
    # …asked in its summary form (the figures without the not-visited GeoJSON).
    assert asked and all(name.endswith("grid=320571005&summary=true") for name in asked)
    assert page.inner_text("#wg-queue-accept-count") == f"（{len(reported)} 件）"
    assert page.inner_text("#wg-queue-dispatch-count") == f"（{len(to_dispatch)} 件）"
    queued = page.locator("#wg-queue-accept a[data-event]")
    assert queued.count() == min(len(reported), QUEUE_SHOWN)
    # Soonest acceptance deadline first, linking to the console.
    first = min(reported, key=lambda f: (f["properties"]["accept_due_at"], f["properties"]["id"]))
    assert queued.first.get_attribute("href") == f"/map/dispatch?event={first['properties']['id']}"

    # The map: one shape per community, one marker per placed open event, drawn on canvas.
    communities = client.get("/api/v1/grids", params={"level": "community", "limit": 5000}).json()
    assert page.evaluate("() => wgDashboard.areas.getLayers().length") == len(
        communities["features"]
    )
    placed = [f for f in opened if f["geometry"] is not None]
    assert page.evaluate("() => wgDashboard.events.getLayers().length") == len(placed)
    assert page.evaluate(PAINTED_IN_JS, ".folium-map canvas") > 1000
    assert "按期结案率" in page.inner_text("#wg-legend")

    # The charts: the API's trend for the period, communities ranked by the chosen KPI.
    period = page.evaluate("() => wgDashboard.period()")
    trend = client.get(
        "/api/v1/kpis/trend",
        params={"interval": "day", "from": period["from"], "to": period["to"]},
        headers=bearer(supervisor),
    ).json()
    option = page.evaluate("() => wgDashboard.charts.trend.getOption()")
    # Every day of the period, the quiet ones (which the API leaves out) as zeros.
    received = {row["period"]: row["received"] for row in trend["rows"]}
    days = [
        (date.fromisoformat(period["from"]) + timedelta(days=n)).isoformat()
        for n in range(period["days"])
    ]
    assert days[-1] == period["to"] and len(received) >= period["days"] // 2
    assert option["xAxis"][0]["data"] == [day[5:] for day in days]
    assert option["series"][0]["data"] == [received.get(day, 0) for day in days]
    kpis = client.get(
        "/api/v1/kpis",
        params={"group_by": "community", "from": period["from"], "to": period["to"]},
        headers=bearer(supervisor),
    ).json()
    ranked = sorted(
        (r for r in kpis["rows"] if r["on_time_rate"] is not None),
        key=lambda r: -r["on_time_rate"],
    )
    rank = page.evaluate("() => wgDashboard.charts.rank.getOption()")
    assert rank["yAxis"][0]["data"] == [r["name"] for r in ranked][:15]
    assert page.evaluate(PAINTED_IN_JS, "#wg-trend canvas") > 1000
    assert page.evaluate(PAINTED_IN_JS, "#wg-rank canvas") > 1000
    page.hover("#wg-trend canvas")  # a rich-text tooltip, drawn on the canvas

    # The Excel export for the ranking's grouping and period, with the login cookie.
    href = page.get_attribute("#wg-export", "href")
    assert href.startswith("/api/v1/kpis.xlsx?group_by=community&from=" + period["from"])
    workbook = page.request.get(live_server + href)
    assert workbook.status == 200 and workbook.body()[:2] == b"PK"

    # Wall: map beside the queue, charts below, nothing to scroll. Phone: panels stack.
    map_box, queue_box = box(page, ".wg-mapbox"), box(page, ".wg-queue")
    trend_box = box(page, ".wg-trend")
    if screen == "wall":
        assert queue_box["x"] >= map_box["x"] + map_box["width"]
        assert trend_box["y"] >= map_box["y"] + map_box["height"]
        assert page.evaluate("() => document.documentElement.scrollHeight <= innerHeight")
    else:
        assert queue_box["y"] >= map_box["y"] + map_box["height"]
        assert trend_box["y"] >= queue_box["y"] + queue_box["height"]
        assert map_box["width"] > 350 and map_box["height"] > 400
    assert not page.evaluate("() => document.documentElement.scrollWidth > innerWidth")

    # Someone accepts an event; when the timer fires the page fetches again, without a reload.
    page.evaluate("() => { window.__kept = 'same page'; }")
    event = reported[0]["properties"]
    accepted = client.post(
        f"/api/v1/events/{event['id']}/transitions",
        json={"action": "accept", "version": event["version"]},
        headers=bearer(dispatcher),
    )
    assert accepted.status_code == 200, accepted.text
    before = int(page.evaluate("() => document.body.dataset.refreshes"))
    page.clock.fast_forward(61_000)
    page.wait_for_function(f"() => Number(document.body.dataset.refreshes) > {before}")
    assert int(page.inner_text("[data-key=reported] b")) == len(reported) - 1
    assert int(page.inner_text("[data-key=to_dispatch] b")) == len(to_dispatch) + 1
    assert page.evaluate("() => window.__kept") == "same page"
    session.close(f"dashboard_{screen}")


def reported_event(client, token: str) -> dict:
    """The reported event with the soonest acceptance deadline."""
    found = open_events(client, token, state="reported", sort="deadline")
    placed = [f for f in found if f["geometry"] is not None]
    return placed[0]["properties"]


def read(client, token: str, event_id: int) -> dict:
    return client.get(f"/api/v1/events/{event_id}", headers=bearer(token)).json()


def take(page, action: str) -> None:
    page.click(f"#wg-event-body [data-action={action}]")
    page.wait_for_selector(f"#wg-form[data-action={action}]")


def test_a_dispatcher_accepts_and_dispatches_by_clicking(browser, live_server, client, tokens):
    dispatcher = tokens["dispatcher"]
    event = reported_event(client, dispatcher)
    event_id, version = event["id"], event["version"]
    session = Session(browser, live_server, dispatcher)
    page = session.open(f"/map/dispatch?event={event_id}")
    assert page.inner_text("#wg-version") == str(version)
    assert page.locator(f"#wg-list li.wg-selected button[data-event='{event_id}']").count() == 1
    buttons = page.locator("#wg-event-body [data-action]").evaluate_all(
        "(nodes) => nodes.map((n) => n.dataset.action)"
    )
    before = read(client, dispatcher, event_id)
    assert buttons == before["allowed_actions"]
    # What the dispatch rules propose is shown before 立案.
    assert before["proposal"]["unit_code"] == "community"
    assert "建议派往社区工作站" in page.inner_text("#wg-event-body .wg-facts").replace("\n", "")

    # 立案: the category and tier forms, the tier proposed by the category.
    take(page, "accept")
    page.select_option("#wg-form select[name=category_code]", "E03")  # 施工管理: street tier
    assert page.input_value("#wg-form select[name=tier]") == "2"
    page.select_option("#wg-form select[name=tier]", "3")
    page.fill("#wg-form textarea[name=note]", "浏览器立案")
    page.click("#wg-form button[type=submit]")
    page.wait_for_function(MESSAGE_STARTS, arg="已立案")
    accepted = read(client, dispatcher, event_id)
    assert (accepted["status"], accepted["version"]) == ("accepted", version + 1)
    assert (accepted["category_code"], accepted["tier"]) == ("E03", 3)
    page.wait_for_function(
        "(v) => document.getElementById('wg-version').textContent === v", arg=str(version + 1)
    )

    # 派遣: the rules' proposal preselected; the dispatcher overrides it with another unit.
    take(page, "dispatch")
    proposed = (accepted.get("proposal") or {}).get("unit_code") or ""
    assert page.input_value("#wg-form select[name=unit]") == proposed
    page.select_option("#wg-form select[name=unit]", "street_office")
    page.click("#wg-form button[type=submit]")
    page.wait_for_function(MESSAGE_STARTS, arg="已派遣")
    dispatched = read(client, dispatcher, event_id)
    assert (dispatched["status"], dispatched["version"]) == ("dispatched", version + 2)
    assert dispatched["unit_code"] == "street_office"
    assert [h["action"] for h in dispatched["history"]][-2:] == ["accept", "dispatch"]
    page.wait_for_function(
        "(v) => document.getElementById('wg-version').textContent === v", arg=str(version + 2)
    )
    history = page.inner_text(".wg-history")
    assert "立案" in history and "派遣" in history and "浏览器立案" in history
    # The default filter lists events still to accept or dispatch: this one has left it.
    page.wait_for_selector(f"#wg-list button[data-event='{event_id}']", state="detached")
    session.close("dispatch_accept_dispatch")


def test_a_refused_action_shows_the_chinese_message_and_rereads(
    browser,
    live_server,
    client,
    tokens,
):
    dispatcher = tokens["dispatcher"]
    event = reported_event(client, dispatcher)
    event_id, version = event["id"], event["version"]
    session = Session(browser, live_server, dispatcher)
    page = session.open(f"/map/dispatch?event={event_id}")

    # Someone else accepts the event while this console still shows its old version.
    other = client.post(
        f"/api/v1/events/{event_id}/transitions",
        json={"action": "accept", "version": version},
        headers=bearer(dispatcher),
    )
    assert other.status_code == 200
    take(page, "reject")
    page.fill("#wg-form textarea[name=note]", "重复上报")
    page.click("#wg-form button[type=submit]")
    page.wait_for_function(MESSAGE_HAS, arg="事件已被他人更新")
    assert "请刷新后重试" in page.inner_text("#wg-message")
    assert "wg-bad" in page.get_attribute("#wg-message", "class")
    # Read again: the new version and what can be done now; the refused form kept its text.
    page.wait_for_function(
        "(v) => document.getElementById('wg-version').textContent === v", arg=str(version + 1)
    )
    now = read(client, dispatcher, event_id)
    assert (now["status"], now["version"]) == ("accepted", version + 1)  # nothing rejected
    actions = page.locator("#wg-event-body .wg-actions [data-action]").evaluate_all(
        "(nodes) => nodes.map((n) => n.dataset.action)"
    )
    assert "dispatch" in actions and "accept" not in actions

    # 422: a deadline in the past, worded by the API.
    take(page, "dispatch")
    page.fill("#wg-form input[name=deadline]", "2020-01-01T08:00")
    page.click("#wg-form button[type=submit]")
    page.wait_for_function(MESSAGE_HAS, arg="期限不能早于当前时间")
    assert read(client, dispatcher, event_id)["version"] == version + 1
    # The form is offered again with what was typed.
    page.wait_for_selector("#wg-form[data-action=dispatch]")
    assert page.input_value("#wg-form input[name=deadline]") == "2020-01-01T08:00"
    session.close("dispatch_refused", refused=(409, 422))


def test_a_supervisor_issues_a_supervision_order(browser, live_server, client, tokens):
    supervisor = tokens["supervisor"]
    event = open_events(client, supervisor, state="processing", sort="deadline")[0]["properties"]
    before = read(client, supervisor, event["id"])
    session = Session(browser, live_server, supervisor, "phone")
    page = session.open(f"/map/dispatch?event={event['id']}")
    buttons = page.locator("#wg-event-body [data-action]").evaluate_all(
        "(nodes) => nodes.map((n) => n.dataset.action)"
    )
    # A supervisor verifies, escalates and supervises; processing allows the last two.
    assert buttons == ["escalate", "supervise"] == before["allowed_actions"]
    take(page, "supervise")
    page.fill("#wg-form textarea[name=note]", "请今日内处置完毕并反馈")
    page.click("#wg-form button[type=submit]")
    page.wait_for_function(MESSAGE_STARTS, arg="已督办")
    after = read(client, supervisor, event["id"])
    assert len(after["supervisions"]) == len(before["supervisions"]) + 1
    assert after["supervisions"][-1]["reason"] == "请今日内处置完毕并反馈"
    assert (after["status"], after["version"]) == (before["status"], before["version"] + 1)
    page.wait_for_function(
        "(text) => document.querySelector('#wg-event-body h2').textContent.includes(text)",
        arg=f"督办 {len(after['supervisions'])}",
    )
    assert "请今日内处置完毕并反馈" in page.inner_text("#wg-event-body .wg-facts")
    session.close("dispatch_supervise_phone")


@pytest.fixture
def hostile(engine, settings, tokens) -> Hostile:
    return plant_hostile_command_data(engine, settings, tokens)


@pytest.fixture
def hostile_server(hostile, live_server) -> str:
    """The live server, started after the hostile data was planted (its index caches names)."""
    return live_server


OPEN_TOOLTIPS_JS = """(name) => {
  const texts = [];
  window[name].map.eachLayer((layer) => {
    const tooltip = layer.getTooltip && layer.getTooltip();
    if (tooltip) { layer.openTooltip(); if (tooltip.getElement()) texts.push(tooltip.getElement().textContent); }
  });
  return texts.join('\\n');
}"""


def test_hostile_text_is_shown_as_text_and_never_runs(browser, hostile, hostile_server):
    admin = hostile.tokens["admin"]
    session = Session(browser, hostile_server, admin)
    page = session.open("/map/dashboard")
    queue = page.inner_text("#wg-queue-accept")
    assert CATEGORY_NAME in queue and DESCRIPTION in queue
    tooltips = page.evaluate(OPEN_TOOLTIPS_JS, "wgDashboard")
    assert DESCRIPTION in tooltips and GRID_NAME in tooltips
    names = page.evaluate("() => wgDashboard.charts.rank.getOption().yAxis[0].data")
    assert names and all(name.startswith(GRID_NAME) for name in names)
    page.hover("#wg-rank canvas")
    page.wait_for_timeout(200)
    session.close("hostile_dashboard")

    session = Session(browser, hostile_server, admin)
    page = session.open(f"/map/dispatch?event={hostile.event_id}")
    panel = page.inner_text("#wg-event-body")
    assert DESCRIPTION in panel and CATEGORY_NAME in panel and GRID_NAME in panel
    assert CATEGORY_NAME in page.inner_text("#wg-f-category")
    assert UNIT_NAME in page.inner_text("#wg-f-unit")
    take(page, "accept")
    assert CATEGORY_NAME in page.inner_text("#wg-form select[name=category_code]")
    page.click("#wg-form button[type=submit]")
    page.wait_for_function(MESSAGE_STARTS, arg="已立案")
    take(page, "dispatch")
    assert UNIT_NAME in page.inner_text("#wg-form select[name=unit]")
    session.close("hostile_dispatch")


DRAWN_BUILDINGS_JS = """() => {
  const drawn = window.wgUnvisitedBuildings;
  if (!drawn) return null;
  const ids = [];
  Object.values(drawn.layer._vectorTiles || {}).forEach((tile) => ids.push(...Object.keys(tile._features || {})));
  return ids;
}"""


@pytest.mark.parametrize("screen", ["wall", "phone"])
def test_street_patrol_map_draws_the_unvisited_buildings_from_tiles(
    browser, live_server, client, tokens, screen
):
    supervisor = tokens["supervisor"]
    coverage = client.get(
        "/api/v1/patrols/coverage", params={"grid": "320571005"}, headers=bearer(supervisor)
    ).json()
    unvisited = {
        f["properties"]["code"]: f
        for f in coverage["not_visited"]["features"]
        if f["properties"]["kind"] == "building"
    }
    assert unvisited
    session = Session(browser, live_server, supervisor, screen)
    page = session.page
    page.goto(live_server + "/map/patrols?grid=320571005", wait_until="networkidle")
    page.wait_for_function("() => window.wgUnvisitedBuildings !== undefined")
    assert page.evaluate("() => window.wgUnvisitedBuildings.codes.size") == len(unvisited)
    assert f"未经过的楼栋 {len(unvisited)} 栋" in page.inner_text("#wg-unvisited-note")
    # Zoomed in on one of them, the tiles come and only listed buildings are drawn.
    code, feature = next(iter(unvisited.items()))
    lon, lat = shapely.geometry.shape(feature["geometry"]).centroid.coords[0]
    page.evaluate(
        "([lat, lon]) => { window[wangge.page().map].setView([lat, lon], 17); }", [lat, lon]
    )
    page.wait_for_function(f"() => ({DRAWN_BUILDINGS_JS})().includes({json.dumps(code)})")
    drawn = page.evaluate(DRAWN_BUILDINGS_JS)
    assert drawn and set(drawn) <= set(unvisited)
    page.clock.run_for(2000)  # the installed clock holds VectorGrid's paint until it runs
    session.close(f"patrols_street_{screen}")
