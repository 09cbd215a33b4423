"""Map pages in a real browser: Debian's headless Chromium driven by playwright.

Each page renders polygons (non-blank canvas pixels), logs no console errors and makes no request
that leaves 127.0.0.1, at a phone's 390×844. Screenshots are kept in tests/artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import bearer
from tests.test_pages import (
    ADDRESS,
    CAMERA_NAME,
    DESCRIPTION,
    DRAFT_NAME,
    GRID,
    GRID_NAME,
    MICRO_GRID,
    STAFF_NAME,
    TOKEN_NAME,
    Hostile,
    plant_hostile_data,
)

ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 390, "height": 844}
# Pixels painted on Leaflet's canvas (prefer_canvas=True draws every vector layer there).
PAINTED_PIXELS_JS = """() => {
  let painted = 0;
  for (const canvas of document.querySelectorAll('canvas')) {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  }
  return painted;
}"""


def _visit(browser, url: str, name: str) -> dict:
    page = browser.new_page(viewport=PHONE)
    errors, outside = [], []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(("http://127.0.0.1", "data:"))
            else outside.append(request.url)
        ),
    )
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    result = {
        "errors": errors,
        "outside": outside,
        "painted": page.evaluate(PAINTED_PIXELS_JS),
        "overflow": page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth"),
        "viewport": page.evaluate("() => document.querySelector('meta[name=viewport]') !== null"),
        "page": page,
    }
    return result


def test_every_page_renders_offline_on_a_phone(browser, live_server, client, tokens):
    check = client.post(
        "/api/v1/coverage/checks", json={}, headers=bearer(tokens["planner"])
    ).json()
    pages = {
        "street": "/map/street",
        "grid": "/map/grids/320571005001001",
        "micro_grid": "/map/grids/320571005001001001",
        "event": "/map/events/2990",
        "coverage_report": f"/map/checks/{check['id']}",
    }
    for name, path in pages.items():
        result = _visit(browser, live_server + path, name)
        assert result["errors"] == [], (name, result["errors"])
        assert result["outside"] == [], (name, result["outside"])
        assert result["painted"] > 1000, (name, result["painted"])
        assert result["viewport"] and not result["overflow"], name
        result["page"].close()


def test_grid_page_loads_buildings_for_the_view(browser, live_server):
    """Buildings and events are not inlined: the page fetches them from the GeoJSON API per view."""
    page = browser.new_page(viewport=PHONE)
    fetched, events = [], []
    page.on(
        "request",
        lambda request: events.append(request.url) if "/api/v1/events" in request.url else None,
    )
    page.on(
        "request",
        lambda request: fetched.append(request.url) if "/api/v1/buildings" in request.url else None,
    )
    page.goto(live_server + "/map/grids/320571005001001001", wait_until="networkidle")
    page.wait_for_timeout(500)
    assert fetched and "bbox=" in fetched[0]
    assert events and "status=open" in events[0] and "bbox=" in events[0]
    html = page.content()
    assert "320571005001001001B01" not in html.split("<body")[0]  # not inlined in the page source
    page.close()


def test_tapping_a_grid_on_the_overview_opens_its_page(browser, live_server):
    page = browser.new_page(viewport=PHONE)
    page.goto(live_server + "/map/street", wait_until="networkidle")
    box = page.locator(".folium-map").bounding_box()
    with page.expect_navigation():
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert "/map/grids/320571005" in page.url
    assert page.locator(".wg-panel h1").inner_text().endswith("网格")
    page.close()


def _junctions(client, generation):
    """A grid and its vertices inside the street where it meets two siblings of one parent."""
    import json

    import shapely

    features = client.get(
        "/api/v1/grids", params={"generation": generation, "level": "grid", "limit": 5000}
    ).json()["features"]
    shapes = {
        f["properties"]["code"]: shapely.from_geojson(json.dumps(f["geometry"])) for f in features
    }
    parents = {f["properties"]["code"]: f["properties"]["parent_code"] for f in features}
    for code in sorted(shapes):
        found = []
        for x, y in shapely.get_coordinates(shapes[code]):
            point = shapely.Point(x, y)
            touching = [c for c, s in shapes.items() if s.distance(point) < 1e-9]
            around = shapely.union_all([shapes[c] for c in touching])
            if (
                len(touching) == 3
                and len({parents[c] for c in touching}) == 1
                and around.contains(point.buffer(6e-5))  # not on the street's edge
            ):
                found.append((x, y))
        if found:
            return code, found
    raise AssertionError("no interior junction")


def test_editor_saves_a_dragged_boundary_and_refreshes_checks(browser, live_server, client, tokens):
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "浏览器编辑"}, headers=planner).json()
    code, junctions = _junctions(client, draft["generation_id"])
    before = client.get(f"/api/v1/grids/{code}", params={"generation": draft["generation_id"]})

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # The editor loads the grids in view: it opens at the grid (focus=).
    page.goto(f"{live_server}/map/login?next=/map/drafts/{draft['id']}/edit%3Ffocus%3D{code}")
    page.fill("input[name=token]", tokens["planner"])
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    assert "覆盖检查：错误" in page.inner_text("#wg-check")

    page.evaluate(
        "(code) => { wgEditor.map.fitBounds(wgEditor.layerOf(code).getBounds(),"
        " {paddingTopLeft: [480, 40], paddingBottomRight: [420, 220], animate: false}); }",
        code,
    )
    page.wait_for_timeout(300)

    def on_screen(lon, lat):
        return page.evaluate(
            "([lat, lon]) => { const p = wgEditor.map.latLngToContainerPoint([lat, lon]);"
            " const r = wgEditor.map.getContainer().getBoundingClientRect();"
            " return [p.x + r.left, p.y + r.top]; }",
            [lat, lon],
        )

    inside = page.evaluate(
        "(code) => { const c = wgEditor.layerOf(code).getCenter(); return [c.lng, c.lat]; }", code
    )
    page.mouse.click(*on_screen(*inside))  # pick the grid: its vertices become draggable
    page.wait_for_selector(".marker-icon", timeout=5000)
    assert page.evaluate("() => wgEditor.state.selected") == code
    x, y = next(  # a vertex not hidden under the panel or the legend
        (x, y)
        for x, y in (on_screen(lon, lat) for lon, lat in junctions)
        if "marker-icon"
        in page.evaluate("([x, y]) => document.elementFromPoint(x, y).className", [x, y])
    )
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 3, y + 2, steps=3)
    page.mouse.move(x + 6, y + 4, steps=3)
    page.mouse.up()
    page.wait_for_function("() => wgEditor.state.version === 1", timeout=15000)
    # The save is followed by a reload of the grids and a fresh check of version 1.
    page.wait_for_function("() => wgEditor.state.checkedVersion === 1", timeout=15000)
    status = page.inner_text("#wg-status")
    shown_version = page.inner_text("#wg-version")
    check_text = page.inner_text("#wg-check")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "draft_editor.png"))
    page.close()

    assert "已保存" in status and shown_version == "1" and errors == [], (status, errors)
    assert "错误 0" in check_text.replace("\n", ""), check_text
    saved = client.get(f"/api/v1/drafts/{draft['id']}").json()
    assert saved["version"] == 1 and saved["edits"][0]["operation"] == "reshape"
    after = client.get(f"/api/v1/grids/{code}", params={"generation": draft["generation_id"]})
    assert after.json()["geometry"] != before.json()["geometry"]
    assert client.get("/api/v1/generations").json()["active"] == 1  # a draft is not live


# --- hostile text: shown as text, never run, with the page policy in force -------------------

# Runs before any page script (injected by the browser, outside the page's CSP).
WATCH_POLICY_JS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));
"""
# Open every tooltip and popup bound on the map and return their text (popups one at a time).
OPEN_OVERLAYS_JS = """() => {
  const texts = [];
  wgMap.eachLayer((layer) => {
    const tooltip = layer.getTooltip && layer.getTooltip();
    if (tooltip) { layer.openTooltip(); if (tooltip.getElement()) texts.push(tooltip.getElement().textContent); }
    const popup = layer.getPopup && layer.getPopup();
    if (popup) { layer.openPopup(); if (popup.getElement()) texts.push(popup.getElement().textContent); }
  });
  return texts;
}"""


@pytest.fixture
def hostile(engine, settings, tokens) -> Hostile:
    return plant_hostile_data(engine, settings, tokens)


@pytest.fixture
def hostile_server(hostile, live_server) -> str:
    """The live server, started after the hostile data was planted (its index caches names)."""
    return live_server


class Visit:
    """A page in a logged-in browser context, with its errors and policy violations."""

    def __init__(self, context, url: str) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url, wait_until="networkidle")
        self.page.wait_for_timeout(200)

    def overlays(self) -> str:
        return "\n".join(self.page.evaluate(OPEN_OVERLAYS_JS))

    def hover_map_centre(self) -> str:
        box = self.page.locator(".folium-map").bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6)
        return self.page.locator(".leaflet-tooltip").first.inner_text(timeout=5000)

    def check(self, name: str) -> None:
        """Nothing ran that should not have, and nothing of ours was blocked."""
        assert self.page.evaluate("() => window.__pwned") is None, name
        assert self.page.evaluate("() => window.__violations") == [], name
        assert self.errors == [], (name, self.errors)
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"hostile_{name}.png"))
        self.page.close()


def test_hostile_text_is_shown_as_text_and_never_runs(browser, hostile, hostile_server):
    context = browser.new_context(viewport=PHONE)
    context.add_cookies(
        [{"name": "wangge_token", "value": hostile.tokens["admin"], "url": hostile_server}]
    )
    context.add_init_script(WATCH_POLICY_JS)

    street = Visit(context, f"{hostile_server}/map/street")
    assert GRID_NAME in street.page.inner_text(".wg-panel h1")
    assert GRID_NAME in street.hover_map_centre()  # a grid's name, hovered
    assert GRID_NAME in street.overlays()
    street.check("street")

    grid = Visit(context, f"{hostile_server}/map/grids/{GRID}")
    assert STAFF_NAME in grid.page.inner_text(".wg-panel")  # admin sees staff, as text
    assert GRID_NAME in grid.hover_map_centre()  # a micro-grid's tooltip
    texts = grid.overlays()
    assert CAMERA_NAME in texts and GRID_NAME in texts and "打开" in texts  # popup link
    grid.check("grid")

    micro = Visit(context, f"{hostile_server}/map/grids/{MICRO_GRID}")
    texts = micro.overlays()  # buildings and events were fetched for the view
    assert ADDRESS in texts and DESCRIPTION in texts, texts
    micro.check("micro_grid")

    event = Visit(context, f"{hostile_server}/map/events/{hostile.event_id}")
    assert DESCRIPTION in event.page.inner_text(".wg-panel")
    assert GRID_NAME in event.overlays()
    event.check("event")

    report = Visit(context, f"{hostile_server}/map/checks/{hostile.check_id}")
    before = report.page.evaluate("() => wgMap.getZoom()")
    report.page.locator("a[data-finding]").first.click()  # zooms to the finding (no onclick)
    report.page.wait_for_timeout(500)
    assert report.page.evaluate("() => wgMap.getZoom()") > before
    assert "重叠" in report.overlays()
    report.check("coverage_report")

    drafts = Visit(context, f"{hostile_server}/map/editor")
    listed = drafts.page.inner_text("main")
    assert DRAFT_NAME in listed and TOKEN_NAME in listed
    drafts.page.fill("#name", DRAFT_NAME + "二")
    with drafts.page.expect_navigation():  # drafts.js posts with the cookie and the page header
        drafts.page.click("#new")
    assert "/map/drafts/" in drafts.page.url and drafts.page.url.endswith("/edit")
    drafts.page.wait_for_selector("body[data-ready='1']", timeout=15000)
    drafts.check("draft_list")

    editor = Visit(context, f"{hostile_server}/map/drafts/{hostile.draft_id}/edit")
    editor.page.wait_for_selector("body[data-ready='1']", timeout=15000)
    assert DRAFT_NAME in editor.page.inner_text(".wg-panel h1")
    code = editor.page.evaluate("() => wgEditor.grids.getLayers()[0].feature.properties.code")
    editor.page.evaluate("(code) => wgEditor.select(code)", code)
    assert GRID_NAME in editor.page.inner_text("#wg-stats")  # the statistics panel, as text
    assert "覆盖检查：错误" in editor.page.inner_text("#wg-check")
    assert GRID_NAME in editor.hover_map_centre()
    editor.check("editor")

    diff = Visit(context, f"{hostile_server}/map/drafts/{hostile.draft_id}/diff")
    assert DRAFT_NAME in diff.page.inner_text(".wg-panel h1")
    diff.check("diff")
    context.close()
