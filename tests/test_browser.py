"""Map pages in a real browser: Debian's headless Chromium driven by playwright.

Each page renders polygons (non-blank canvas pixels), logs no console errors and makes no request
that leaves 127.0.0.1, at a phone's 390×844. Screenshots are kept in tests/artifacts/.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from tests.conftest import bearer

CHROMIUM = "/usr/bin/chromium"
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


@pytest.fixture
def live_server(settings) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


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
