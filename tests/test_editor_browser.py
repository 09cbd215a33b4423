"""The draft editor and the draft list in a real browser (Debian's headless Chromium, playwright),
at a phone's 390×844 and a desktop's 1920×1080.

A planner taps through every tool on one draft — attributes, parent change (refused, with the
API's Chinese message), merge, undo, split, create, delete, building reassignment, dragging a
vertex, a stale version, publish — and after each the test asks the server what it stored, and
checks that the page's version, statistics and coverage check followed. Then the failure
paths: offline (playwright's set_offline) every action says 网络错误 and leaves its button usable;
a double tap sends one request; 分割 before a selection; a level label with markup on the diff
page's layer control; what a reader is offered.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely

from tests.conftest import bearer

ARTIFACTS = Path(__file__).parent / "artifacts"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1920, "height": 1080}}
GRID = "320571005001001"
TOOL_BUTTONS = [
    *("wg-tool-select", "wg-split", "wg-merge", "wg-create", "wg-delete", "wg-attributes"),
    *("wg-parent", "wg-reassign", "wg-undo", "wg-check-now", "wg-publish", "wg-diff"),
]
# The part of the map neither the status panel nor the tool sheet covers, as fitBounds padding.
FREE_PADDING_JS = """() => {
  const panel = document.querySelector('.wg-panel').getBoundingClientRect();
  const sheet = document.querySelector('.wg-sheet').getBoundingClientRect();
  const w = window.innerWidth, h = window.innerHeight;
  if (sheet.top > h / 3) return [[12, panel.bottom + 12], [12, h - sheet.top + 12]];
  return [[panel.right + 12, 12], [w - sheet.left + 12, 12]];
}"""


def _shape(geojson) -> shapely.Geometry:
    return shapely.from_geojson(json.dumps(geojson))


def _grids(client, generation, **params) -> dict[str, tuple[dict, shapely.Geometry]]:
    features = client.get(
        "/api/v1/grids", params={"generation": generation, "limit": 5000, **params}
    ).json()["features"]
    return {f["properties"]["code"]: (f["properties"], _shape(f["geometry"])) for f in features}


def _neighbour_pairs(grids) -> list[tuple[str, str]]:
    """Pairs of grids sharing a long edge, in code order."""
    items = sorted(grids.items())
    return [
        (code, other)
        for i, (code, (_, shape)) in enumerate(items)
        for other, (_, other_shape) in items[i + 1 :]
        if shape.intersection(other_shape).length > 3e-4
    ]


def _junction(grids, code) -> tuple[float, float]:
    """A vertex of `code` where it meets two siblings, away from the parent's edge."""
    shapes = {c: s for c, (_, s) in grids.items()}
    outline = shapely.union_all(list(shapes.values()))
    for x, y in shapely.get_coordinates(shapes[code]):
        point = shapely.Point(x, y)
        touching = [c for c, s in shapes.items() if s.distance(point) < 1e-9]
        if len(touching) == 3 and outline.contains(point.buffer(6e-5)):
            return x, y
    raise AssertionError(f"no interior junction on {code}")


def _check(client, planner, generation) -> dict:
    report = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    kinds = {k: n for k, n in report["summary"]["by_kind"].items() if n}
    return {k: (n, [f.get("message") for f in report.get(k, [])][:2]) for k, n in kinds.items()}


def _clear_square(client, grids, pairs) -> tuple[str, str, shapely.Geometry]:
    """Two neighbours and a small rectangle across their shared edge that cuts no building."""
    for c, d in pairs:
        footprints = [
            _shape(f["geometry"])
            for code in (c, d)
            for f in client.get("/api/v1/buildings", params={"grid": code}).json()["features"]
        ]
        edge = grids[c][1].intersection(grids[d][1])
        for t in (0.5, 0.35, 0.65, 0.2, 0.8):
            centre = edge.interpolate(t, normalized=True)
            square = shapely.box(
                centre.x - 1.5e-4, centre.y - 1e-4, centre.x + 1.5e-4, centre.y + 1e-4
            )
            inside = grids[c][1].union(grids[d][1]).contains(square)
            if inside and not any(square.buffer(2e-5).intersects(f) for f in footprints):
                return c, d, square
    raise AssertionError("no clear place for a new grid")


def _clean_reassignment(client, planner, pairs, grids) -> tuple[str, str, dict]:
    """A building of e near f whose reassignment to f the API accepts with a clean check, tried
    in a scratch draft (the API refuses one that would cut another building in two)."""
    for e, f in pairs:
        shared = grids[e][1].intersection(grids[f][1])
        features = client.get("/api/v1/buildings", params={"grid": e}).json()["features"]
        for building in sorted(features, key=lambda x: _shape(x["geometry"]).distance(shared))[:3]:
            scratch = client.post("/api/v1/drafts", json={"name": "试算"}, headers=planner).json()
            tried = client.post(
                f"/api/v1/drafts/{scratch['id']}/buildings/reassign",
                json={"buildings": [building["properties"]["code"]], "grid_code": f, "version": 0},
                headers=planner,
            )
            clean = tried.status_code == 200 and not any(
                _check(client, planner, scratch["generation_id"]).get(kind)
                for kind in ("invalid_geometries", "invalid_edges", "split_buildings", "gaps")
            )
            client.post(
                f"/api/v1/drafts/{scratch['id']}/discard",
                json={"version": 0 + (tried.status_code == 200)},
                headers=planner,
            )
            if clean:
                return e, f, building
    raise AssertionError("no building can be reassigned cleanly")


def _cut(client, shape: shapely.Geometry, code: str) -> list[tuple[float, float]]:
    """A north-south line across `shape` along a lane between its buildings, cutting it in two."""
    xmin, ymin, xmax, ymax = shape.bounds
    footprints = [
        _shape(f["geometry"])
        for f in client.get("/api/v1/buildings", params={"grid": code}).json()["features"]
    ]
    for k in range(12, 49):
        x = xmin + (xmax - xmin) * k / 60
        line = shapely.LineString([(x, ymin - 2e-4), (x, ymax + 2e-4)])
        left = shape.intersection(shapely.box(xmin - 1, ymin - 1, x, ymax + 1)).area / shape.area
        pieces = shapely.get_num_geometries(shape.intersection(line))
        if 0.2 < left < 0.8 and pieces == 1 and not any(line.intersects(f) for f in footprints):
            return list(line.coords)
    raise AssertionError(f"no lane across {code}")


class Editor:
    """The editor page in a logged-in browser context, driven like a planner's fingers."""

    def __init__(self, browser, base: str, token: str, size: str, path: str) -> None:
        self.size = size
        self.context = browser.new_context(viewport=SIZES[size])
        self.context.add_cookies([{"name": "wangge_token", "value": token, "url": base}])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("http://127.0.0.1", "data:"))
                else self.outside.append(r.url)
            ),
        )
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.page.goto(base + path)
        self.page.wait_for_selector("body[data-ready='1']", timeout=20000)

    def js(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    @property
    def version(self) -> int:
        return self.js("() => wgEditor.state.version")

    def show(self, geometry: shapely.Geometry) -> None:
        """Fit the map to `geometry` inside the part the panel and sheet leave free."""
        xmin, ymin, xmax, ymax = geometry.bounds
        padding = self.js(FREE_PADDING_JS)
        self.js(
            "([b, p]) => { wgEditor.map.fitBounds(b, {paddingTopLeft: p[0],"
            " paddingBottomRight: p[1], animate: false}); }",
            [[[ymin, xmin], [ymax, xmax]], padding],
        )
        self.settle()

    def settle(self) -> None:
        """Wait until the grids of the current view are loaded."""
        self.page.wait_for_timeout(350)
        self.page.wait_for_load_state("networkidle")

    def screen(self, lon: float, lat: float) -> tuple[float, float]:
        return tuple(
            self.js(
                "([lat, lon]) => { const p = wgEditor.map.latLngToContainerPoint([lat, lon]);"
                " const r = wgEditor.map.getContainer().getBoundingClientRect();"
                " return [p.x + r.left, p.y + r.top]; }",
                [lat, lon],
            )
        )

    def tap(self, lon: float, lat: float) -> None:
        x, y = self.screen(lon, lat)
        covered = self.js(
            "([x, y]) => document.elementFromPoint(x, y).closest('.wg-panel, .wg-sheet') !== null",
            [x, y],
        )
        assert not covered, (self.size, lon, lat)  # the map, not the panel or the sheet
        self.page.mouse.click(x, y)
        self.page.wait_for_timeout(120)

    def tap_grid(self, shape: shapely.Geometry) -> None:
        point = shape.representative_point() if shape.area else shape
        self.tap(point.x, point.y)

    def press(self, button_id: str) -> None:
        self.page.click(f"#{button_id}")

    def saved(self, version: int) -> None:
        """The edit reached the server, and the view and the check were refreshed for it."""
        try:
            self.page.wait_for_function(
                f"() => wgEditor.state.version === {version}"
                f" && wgEditor.state.checkedVersion === {version}",
                timeout=20000,
            )
        except Exception as error:  # say what the page said instead of a bare timeout
            raise AssertionError(f"version {version} not reached: {self.status()}") from error
        assert self.page.inner_text("#wg-version") == str(version)
        self.settle()

    def said(self, text: str, timeout: int = 30000) -> None:
        """Wait until the status line says `text` (else fail with what it says)."""
        try:
            self.page.wait_for_function(
                "(text) => document.querySelector('#wg-status').textContent.includes(text)",
                arg=text,
                timeout=timeout,
            )
        except Exception as error:
            raise AssertionError(f"status never said {text}: {self.status()}") from error

    def status(self) -> str:
        return self.page.inner_text("#wg-status")

    def draw(self, points: list[tuple[float, float]]) -> None:
        """Tap the points of a line or outline (Alt held: no snapping), then 完成画线."""
        self.page.keyboard.down("Alt")
        for lon, lat in points:
            x, y = self.screen(lon, lat)
            assert not self.js(
                "([x, y]) => document.elementFromPoint(x, y).closest('.wg-panel, .wg-sheet') !== null",
                [x, y],
            ), (self.size, lon, lat)
            self.page.mouse.click(x, y)
            self.page.wait_for_timeout(80)
        self.page.keyboard.up("Alt")
        self.page.locator(".wg-form:not([hidden]) .wg-finish").click()

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"editor_{name}_{self.size}.png"))

    def close(self, name: str) -> None:
        self.screenshot(name)
        self.context.close()


def _assert_tools_reachable(editor: Editor) -> None:
    """Every tool is on screen, not covered, touch-sized on a phone; nothing overflows."""
    page, width = editor.page, SIZES[editor.size]["width"]
    for button in TOOL_BUTTONS:
        box = page.locator(f"#{button}").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, button
        assert box["y"] + box["height"] <= SIZES[editor.size]["height"], button
        assert box["height"] >= 44, (button, box)
        centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
        assert editor.js(
            "([x, y, id]) => document.elementFromPoint(x, y).closest('#' + id) !== null",
            [*centre, button],
        ), button
    assert not editor.js("() => document.documentElement.scrollWidth > window.innerWidth")
    labels = page.inner_text(".wg-tools")
    for label in (
        "分割",
        "合并",
        "新建",
        "删除",
        "属性",
        "上级",
        "楼栋改划",
        "撤销",
        "发布",
        "差异",
    ):
        assert label in labels


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_every_tool_on_the_editor_page(browser, live_server, client, tokens, size):
    planner = bearer(tokens["planner"])
    draft = client.post(
        "/api/v1/drafts", json={"name": f"逐个工具（{size}）"}, headers=planner
    ).json()
    draft_id, generation = draft["id"], draft["generation_id"]
    micro = _grids(client, generation, level="micro_grid", parent=GRID)
    pairs = _neighbour_pairs(micro)
    a, b = pairs[0]

    ui = Editor(
        browser,
        live_server,
        tokens["planner"],
        size,
        f"/map/drafts/{draft_id}/edit?level=micro_grid&focus={GRID}",
    )
    assert ui.outside == [] and ui.errors == []
    _assert_tools_reachable(ui)
    assert "覆盖检查：错误" in ui.page.inner_text("#wg-check")
    # Only the view was asked for, never a whole level.
    grid_shape = _grids(client, generation, level="grid")[GRID][1]
    ui.show(grid_shape)
    ui.screenshot("open")
    loaded = ui.js("() => wgEditor.grids.getLayers().length")
    assert loaded == len(micro) or 0 < loaded < 1500

    # 属性: name and households of one micro-grid.
    ui.tap_grid(micro[a][1])
    assert ui.js("() => wgEditor.state.selected") == a and a in ui.page.inner_text("#wg-stats")
    ui.press("wg-attributes")
    assert ui.page.input_value("#wg-attr-name") == micro[a][0]["name"]
    ui.page.fill("#wg-attr-name", "浏览器改名")
    ui.page.fill("#wg-attr-households", "321")
    ui.press("wg-attributes-go")
    ui.saved(1)
    stored = client.get(f"/api/v1/grids/{a}", params={"generation": generation}).json()
    assert (
        stored["properties"]["name"] == "浏览器改名" and stored["properties"]["households"] == 321
    )
    assert a in ui.page.inner_text("#wg-touched")  # the touched grids' fresh statistics

    # 上级: a parent outside the grid is refused; the page shows the API's own message.
    far = sorted(_grids(client, generation, level="grid"))[-1]
    ui.press("wg-parent")
    ui.page.fill("#wg-parent-code", far)
    ui.press("wg-parent-go")
    ui.page.wait_for_function("() => document.querySelector('#wg-status').className === 'wg-bad'")
    refused = client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{a}",
        json={"parent_code": far, "version": 1},
        headers=planner,
    )
    assert refused.status_code == 422
    assert ui.status() == refused.json()["error"]["message"]
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 1

    # 合并 then 撤销.
    ui.press("wg-merge")  # the selected grid is the first pick
    ui.tap_grid(micro[b][1])
    assert a in ui.page.inner_text("#wg-merge-list") and b in ui.page.inner_text("#wg-merge-list")
    ui.press("wg-merge-go")
    ui.saved(2)
    after = _grids(client, generation, level="micro_grid", parent=GRID)
    assert a not in after and b not in after and len(after) == len(micro) - 1
    merged = [c for c in after if c not in micro]
    assert len(merged) == 1
    assert after[merged[0]][1].area == pytest.approx(micro[a][1].union(micro[b][1]).area, rel=1e-6)
    ui.press("wg-undo")
    ui.saved(3)
    after = _grids(client, generation, level="micro_grid", parent=GRID)
    assert a in after and b in after and merged[0] not in after

    # 分割 along a drawn line.
    ui.tap_grid(micro[a][1])
    ui.press("wg-split")
    line = _cut(client, micro[a][1], a)
    ui.show(shapely.LineString(line).buffer(1e-4))
    ui.draw(line)
    ui.saved(4)
    after = _grids(client, generation, level="micro_grid", parent=GRID)
    halves = [c for c in after if c not in micro]
    assert a not in after and len(halves) == 2
    assert sum(after[c][1].area for c in halves) == pytest.approx(micro[a][1].area, rel=1e-6)
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["edits"][0]["operation"] == "split"

    # 新建: an outline across the edge of two other neighbours, then 删除 it, then 撤销.
    c, d, square = _clear_square(client, micro, [p for p in pairs if not {a, b} & set(p)])
    ui.press("wg-create")
    ui.show(square.buffer(2e-4))
    ui.draw([(x, y) for x, y in list(square.exterior.coords)[:-1]])
    ui.page.wait_for_function("() => !document.querySelector('#wg-create-go').disabled")
    ui.page.fill("#wg-create-name", "浏览器新建")
    ui.page.select_option("#wg-create-level", "micro_grid")
    ui.page.fill("#wg-create-parent", GRID)
    ui.page.fill("#wg-create-households", "12")
    ui.screenshot("create")
    ui.press("wg-create-go")
    ui.saved(5)
    after = _grids(client, generation, level="micro_grid", parent=GRID)
    [new] = [c for c in after if c not in micro and c not in halves]
    assert after[new][0]["name"] == "浏览器新建" and after[new][0]["households"] == 12
    assert shapely.hausdorff_distance(after[new][1], square) < 1e-5  # a tap is a whole pixel
    assert ui.js("() => wgEditor.state.selected") == new

    ui.press("wg-delete")
    assert new in ui.page.inner_text("#wg-delete-what")
    ui.press("wg-delete-go")
    ui.saved(6)
    assert new not in _grids(client, generation, level="micro_grid", parent=GRID)
    assert "错误 0" not in ui.page.inner_text("#wg-check").replace("\n", "")  # a gap now
    ui.press("wg-undo")
    ui.saved(7)
    assert new in _grids(client, generation, level="micro_grid", parent=GRID)
    assert "错误 0" in ui.page.inner_text("#wg-check").replace("\n", ""), str(
        _check(client, planner, generation)
    )

    # 楼栋改划: tap a building of e near f's edge, then the target f.
    e, f, building = _clean_reassignment(
        client, planner, [p for p in pairs if not {a, b, c, d} & set(p)], micro
    )
    footprint = _shape(building["geometry"])
    ui.press("wg-reassign")
    ui.show(footprint.union(micro[f][1].representative_point()).buffer(1e-4))
    ui.page.wait_for_function("() => wgEditor.buildings.getLayers().length > 0", timeout=10000)
    ui.tap_grid(footprint)
    assert building["properties"]["code"] in ui.page.inner_text("#wg-reassign-list")
    ui.press("wg-reassign-pick")
    ui.tap_grid(micro[f][1].difference(footprint.buffer(2e-5)))
    assert f in ui.page.inner_text("#wg-reassign-target")
    ui.press("wg-reassign-go")
    ui.saved(8)
    placed = client.get("/api/v1/buildings", params={"grid": f}).json()["features"]
    diff = client.get(f"/api/v1/drafts/{draft_id}/diff").json()
    assert (building["properties"]["code"], e, f) in {
        (x["code"], x["from_grid"], x["to_grid"]) for x in diff["buildings"]
    }, placed
    # Undone: the strip this building takes along may leave e invalid (reported to the API's
    # owners); the check shows it, and a clean draft is needed for the publish below.
    ui.press("wg-undo")
    ui.saved(9)

    # 选择/拖动: drag a shared vertex.
    ui.press("wg-tool-select")
    now = _grids(client, generation, level="micro_grid", parent=GRID)
    target = next(code for code in sorted(now) if code in micro and code not in {a, b, c, d, e, f})
    x0, y0 = _junction(now, target)
    ui.show(now[target][1])
    ui.tap_grid(now[target][1])
    ui.page.wait_for_selector(".marker-icon", timeout=5000)
    x, y = ui.screen(x0, y0)
    assert "marker-icon" in ui.js("([x, y]) => document.elementFromPoint(x, y).className", [x, y])
    ui.page.mouse.move(x, y)
    ui.page.keyboard.down("Alt")  # no snapping: the junction's neighbours would pull it back
    ui.page.mouse.down()
    ui.page.mouse.move(x + 5, y + 4, steps=3)
    ui.page.mouse.move(x + 10, y + 8, steps=3)
    ui.page.mouse.up()
    ui.page.keyboard.up("Alt")
    ui.saved(10)
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["edits"][0]["operation"] == "reshape"
    moved = _grids(client, generation, level="micro_grid", parent=GRID)[target][1]
    assert not moved.equals(now[target][1])
    # Undo it: a junction dragged without snapping may cut a building (the check says so).
    ui.press("wg-undo")
    ui.saved(11)
    restored = _grids(client, generation, level="micro_grid", parent=GRID)[target][1]
    assert restored.equals(now[target][1])

    # A colleague saves first: the page says so in the API's words and reloads their version.
    client.patch(
        f"/api/v1/drafts/{draft_id}/grids/{target}",
        json={"name": "同事改名", "version": 11},
        headers=planner,
    )
    ui.tap_grid(restored)
    ui.press("wg-attributes")
    ui.page.fill("#wg-attr-name", "我也改名")
    ui.press("wg-attributes-go")
    ui.page.wait_for_function("() => wgEditor.state.version === 12", timeout=15000)
    assert "草稿已被他人修改" in ui.status() and "已重新载入" in ui.status()
    ui.page.wait_for_function("() => wgEditor.state.checkedVersion === 12", timeout=20000)
    assert (
        client.get(f"/api/v1/grids/{target}", params={"generation": generation}).json()[
            "properties"
        ]["name"]
        == "同事改名"
    )

    # 发布: the check summary, warnings acknowledged, then live.
    ui.press("wg-publish")
    ui.page.wait_for_function(
        "() => document.querySelector('#wg-publish-summary').textContent.includes('：错误')",
        timeout=20000,
    )
    summary = ui.page.inner_text("#wg-publish-summary")
    ui.screenshot("publish")
    assert "错误 0" in summary.replace("\n", ""), summary
    if ui.page.is_visible("#wg-publish-ack-row"):
        ui.page.check("#wg-publish-ack")
    ui.press("wg-publish-go")
    ui.said("已发布", timeout=60000)
    assert client.get("/api/v1/generations").json()["active"] == generation
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["status"] == "published"
    assert ui.page.is_disabled("#wg-merge")  # a published draft is read-only

    # 差异: one tap away.
    with ui.page.expect_navigation():
        ui.press("wg-diff")
    assert ui.page.url.endswith(f"/map/drafts/{draft_id}/diff")
    assert "草稿差异" in ui.page.inner_text(".wg-panel h1")
    # The console lists the two refused requests (the parent change, the stale save), nothing else.
    refusals = [e for e in ui.errors if "status of 422" in e or "status of 409" in e]
    assert len(refusals) == 2 and len(ui.errors) == 2 and ui.outside == [], (ui.errors, ui.outside)
    ui.close("tools")


def _split_line(shape: shapely.Geometry) -> list[tuple[float, float]]:
    xmin, ymin, xmax, ymax = shape.bounds
    middle = (xmin + xmax) / 2
    return [(middle, ymin - 3e-4), (middle, ymax + 3e-4)]


def test_split_shows_recodes_and_publish_resolves_rebase_conflicts(
    browser, live_server, client, tokens
):
    """A colleague published a split of the same grid first: publishing lists the conflict in
    the API's words, the planner picks a side, the draft is rebased and goes live."""
    planner = bearer(tokens["planner"])
    mine = client.post("/api/v1/drafts", json={"name": "我的拆分"}, headers=planner).json()
    theirs = client.post("/api/v1/drafts", json={"name": "同事的拆分"}, headers=planner).json()
    grid = _grids(client, mine["generation_id"], level="grid")[GRID][1]
    line = _split_line(grid)
    geojson = {"type": "LineString", "coordinates": [list(p) for p in line]}
    split = client.post(
        f"/api/v1/drafts/{theirs['id']}/split",
        json={"code": GRID, "line": geojson, "version": 0},
        headers=planner,
    )
    assert split.status_code == 200, split.text
    published = client.post(
        f"/api/v1/drafts/{theirs['id']}/publish",
        json={"version": 1, "acknowledge_warnings": True},
        headers=planner,
    )
    assert published.status_code == 200, published.text

    ui = Editor(
        browser,
        live_server,
        tokens["planner"],
        "phone",
        f"/map/drafts/{mine['id']}/edit?focus={GRID}",
    )
    ui.tap_grid(grid)
    assert ui.js("() => wgEditor.state.selected") == GRID
    # 保持编码: a split that would recode the micro-grids is refused, in the API's words.
    ui.page.check("#wg-keep-codes")
    ui.press("wg-split")
    ui.show(shapely.LineString(line).buffer(1e-4))
    ui.draw(line)
    ui.page.wait_for_function("() => document.querySelector('#wg-status').className === 'wg-bad'")
    refused = client.post(
        f"/api/v1/drafts/{mine['id']}/split",
        json={"code": GRID, "line": geojson, "version": 0, "keep_codes": True},
        headers=planner,
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "code_rule"
    assert ui.status() == refused.json()["error"]["message"]
    assert client.get(f"/api/v1/drafts/{mine['id']}").json()["version"] == 0
    ui.page.uncheck("#wg-keep-codes")
    ui.tap_grid(grid)
    ui.press("wg-split")
    ui.show(shapely.LineString(line).buffer(1e-4))
    ui.draw(line)
    ui.saved(1)
    generation = mine["generation_id"]
    halves = [c for c in _grids(client, generation, level="grid") if c.startswith(GRID[:12])]
    assert GRID not in halves
    # Its micro-grids were recoded under the two halves: the page lists each old → new code.
    recoded = ui.page.inner_text("#wg-recoded")
    micro_before = _grids(client, 1, level="micro_grid", parent=GRID)
    assert f"重新编码 {len(micro_before)} 个下级网格" in recoded
    for old in micro_before:
        assert old in recoded
    new_children = {
        c for half in halves for c in _grids(client, generation, level="micro_grid", parent=half)
    }
    assert sum(code in recoded for code in new_children) == len(micro_before)

    ui.press("wg-publish")
    ui.page.wait_for_function(
        "() => document.querySelector('#wg-publish-summary').textContent.includes('：错误')",
        timeout=20000,
    )
    if ui.page.is_visible("#wg-publish-ack-row"):
        ui.page.check("#wg-publish-ack")
    ui.press("wg-publish-go")
    ui.page.wait_for_selector("#wg-conflicts li", timeout=30000)
    refusal = client.post(
        f"/api/v1/drafts/{mine['id']}/publish",
        json={"version": 1, "acknowledge_warnings": True},
        headers=planner,
    ).json()["error"]
    assert refusal["code"] == "rebase_conflicts"
    assert ui.page.inner_text("#wg-publish-result p.wg-bad") == refusal["message"]
    listed = ui.page.locator("#wg-conflicts li")
    assert listed.count() == len(refusal["details"]) >= 1
    shown = ui.page.inner_text("#wg-conflicts")
    assert all(c["code"] in shown for c in refusal["details"])
    assert "边界重叠" in shown or "双方都修改了" in shown
    ui.screenshot("conflicts")
    ui.page.click("button[data-all=active]")
    assert set(
        ui.js("() => [...document.querySelectorAll('#wg-conflicts select')].map(s => s.value)")
    ) == {"active"}
    rebases: list[str] = []
    ui.page.on("request", lambda r: rebases.append(r.url) if r.url.endswith("/rebase") else None)
    ui.page.locator("#wg-rebase-go").dblclick()  # a double tap rebases once
    ui.page.wait_for_function(
        "() => document.querySelector('#wg-status').textContent.includes('已变基')", timeout=30000
    )
    assert len(rebases) == 1 and "他人" not in ui.status()
    draft = client.get(f"/api/v1/drafts/{mine['id']}").json()
    assert draft["base_generation"] == theirs["generation_id"]
    assert ui.page.inner_text("#wg-base") == str(theirs["generation_id"])
    ui.page.wait_for_function(
        f"() => wgEditor.state.checkedVersion === {draft['version']}", timeout=20000
    )
    if ui.page.is_visible("#wg-publish-ack-row"):
        ui.page.check("#wg-publish-ack")
    ui.press("wg-publish-go")
    ui.said("已发布", timeout=60000)
    assert client.get("/api/v1/generations").json()["active"] == generation
    # The colleague's halves are what went live for the grid both split.
    theirs_halves = sorted(c for c in split.json()["created"])
    live = _grids(client, generation, level="grid")
    assert all(code in live for code in theirs_halves)
    ui.close("rebase")


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_draft_list_starts_suggests_opens_and_discards(browser, live_server, client, tokens, size):
    planner = bearer(tokens["planner"])
    keep = client.post("/api/v1/drafts", json={"name": "保留的草稿"}, headers=planner).json()
    drop = client.post("/api/v1/drafts", json={"name": "要放弃的草稿"}, headers=planner).json()
    context = browser.new_context(viewport=SIZES[size])
    context.add_cookies([{"name": "wangge_token", "value": tokens["planner"], "url": live_server}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(live_server + "/map/editor", wait_until="networkidle")

    assert page.locator("tr[data-draft]").count() == 2
    assert not page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
    for selector in ("#new", "#suggest", f"[data-discard='{drop['id']}']", "a.wg-button"):
        box = page.locator(selector).first.bounding_box()
        assert box["height"] >= 44 and box["x"] + box["width"] <= SIZES[size]["width"], selector
    row = page.inner_text(f"tr[data-draft='{keep['id']}']")
    for text in ("保留的草稿", f"#{keep['id']}", "第 1 版", "token:", "打开", "差异"):
        assert text in row, (text, row)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"draft_list_{size}.png"), full_page=True)

    page.click(f"[data-discard='{drop['id']}']")
    page.wait_for_selector(f"tr[data-draft='{drop['id']}']", state="detached")
    assert f"已放弃草稿 #{drop['id']}" in page.inner_text("#msg")
    assert client.get(f"/api/v1/drafts/{drop['id']}").json()["status"] == "discarded"

    # An unknown community: the API's own message.
    page.fill("#community", "999999")
    page.click("#suggest")
    page.wait_for_function("() => document.querySelector('#msg').textContent.length > 5")
    refused = client.post("/api/v1/drafts/suggest", json={"community": "999999"}, headers=planner)
    assert refused.status_code in (404, 422)
    assert page.inner_text("#msg") == refused.json()["error"]["message"]

    with page.expect_navigation():
        page.click(f"tr[data-draft='{keep['id']}'] a:has-text('差异')")
    assert page.url.endswith(f"/map/drafts/{keep['id']}/diff")
    page.go_back()

    page.fill("#community", "320571005001")
    with page.expect_navigation(timeout=30000):
        page.click("#suggest")
    suggested = client.get("/api/v1/drafts", params={"status": "open"}).json()["drafts"]
    [made] = [d for d in suggested if d["source"] == "suggest"]
    assert page.url.endswith(f"/map/drafts/{made['id']}/edit")
    page.wait_for_selector("body[data-ready='1']", timeout=20000)

    page.goto(live_server + "/map/editor")
    page.fill("#name", "从列表新建")
    with page.expect_navigation():
        page.click("#new")
    page.wait_for_selector("body[data-ready='1']", timeout=20000)
    names = {
        d["name"] for d in client.get("/api/v1/drafts", params={"status": "open"}).json()["drafts"]
    }
    assert names == {"保留的草稿", made["name"], "从列表新建"}
    assert errors == []
    context.close()


def test_delete_with_children_blocks_publish_until_undone(browser, live_server, client, tokens):
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "删除整格"}, headers=planner).json()
    generation = draft["generation_id"]
    grid = _grids(client, generation, level="grid")[GRID][1]
    children = _grids(client, generation, level="micro_grid", parent=GRID)
    ui = Editor(
        browser,
        live_server,
        tokens["planner"],
        "desktop",
        f"/map/drafts/{draft['id']}/edit?focus={GRID}",
    )
    assert ui.js("() => wgEditor.state.selected") == GRID  # focus= also selects it
    ui.press("wg-delete")
    assert GRID in ui.page.inner_text("#wg-delete-what")
    ui.page.check("#wg-delete-children")
    ui.press("wg-delete-go")
    ui.saved(1)
    assert GRID not in _grids(client, generation, level="grid")
    assert _grids(client, generation, level="micro_grid", parent=GRID) == {}
    assert len(children) > 0 and ui.js("() => wgEditor.state.selected") is None

    ui.press("wg-publish")  # the check finds the hole: publishing is not offered
    ui.page.wait_for_function(
        "() => document.querySelector('#wg-publish-summary').textContent.includes('：错误')",
        timeout=20000,
    )
    assert "不能发布" in ui.page.inner_text("#wg-publish-summary")
    assert "空隙/缺口" in ui.page.inner_text("#wg-publish-summary")
    assert ui.page.is_disabled("#wg-publish-go")

    ui.press("wg-undo")
    ui.saved(2)
    assert set(_grids(client, generation, level="micro_grid", parent=GRID)) == set(children)
    assert _grids(client, generation, level="grid")[GRID][1].equals(grid)
    assert "错误 0" in ui.page.inner_text("#wg-check").replace("\n", "")
    assert "错误 0" in ui.page.inner_text("#wg-publish-summary").replace("\n", "")
    assert not ui.page.is_disabled("#wg-publish-go")  # the open summary followed the check
    ui.close("delete")


def test_the_editor_loads_the_view_and_asks_to_zoom_in_beyond_its_limit(
    browser, live_server, client, tokens, monkeypatch
):
    """Grids come per view (bbox=), again after each move; a view holding more than the limit
    draws none and says to zoom in, rather than a district cut off in code order."""
    import web.draft_pages

    monkeypatch.setattr(web.draft_pages, "VIEW_LIMIT", 100)  # the server runs in this process
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "按视野加载"}, headers=planner).json()
    ui = Editor(
        browser,
        live_server,
        tokens["planner"],
        "desktop",
        f"/map/drafts/{draft['id']}/edit?level=micro_grid&focus={GRID}",
    )
    asked: list[str] = []
    ui.page.on("request", lambda r: asked.append(r.url) if "/api/v1/grids?" in r.url else None)
    shown = ui.js("() => wgEditor.grids.getLayers().length")
    assert 0 < shown <= 100
    ui.js("() => { wgEditor.map.setZoom(wgEditor.map.getZoom() - 3, {animate: false}); }")
    ui.page.wait_for_function("() => wgEditor.state.truncated === true", timeout=10000)
    assert ui.js("() => wgEditor.grids.getLayers().length") == 0
    assert "请放大后编辑" in ui.page.inner_text("#wg-stats")
    assert asked and all("bbox=" in url and "limit=100" in url for url in asked)
    ui.js("() => { wgEditor.map.setZoom(wgEditor.map.getZoom() + 3, {animate: false}); }")
    ui.page.wait_for_function(
        "() => wgEditor.state.truncated === false && wgEditor.grids.getLayers().length > 0",
        timeout=10000,
    )
    assert ui.errors == []
    ui.close("zoom")


def test_split_before_select_double_taps_and_network_errors(browser, live_server, client, tokens):
    """✂ 分割 pressed before a grid is chosen starts the line once one is tapped; a double tap on
    撤销 sends one request; offline, 检查, 发布 and loading say 网络错误 in Chinese and leave every
    button usable; back online, publishing works."""
    planner = bearer(tokens["planner"])
    draft = client.post("/api/v1/drafts", json={"name": "断网与连点"}, headers=planner).json()
    draft_id, generation = draft["id"], draft["generation_id"]
    grid = _grids(client, generation, level="grid")[GRID][1]
    ui = Editor(browser, live_server, tokens["planner"], "phone", f"/map/drafts/{draft_id}/edit")
    sent: list[str] = []
    ui.page.on(
        "request",
        lambda r: sent.append(r.url.split("/drafts/")[-1]) if r.method == "POST" else None,
    )
    assert ui.js("() => wgEditor.state.selected") is None

    # 分割 first, then the grid: the line starts with the grid.
    ui.press("wg-split")
    assert ui.status() == "请先点选一个网格"
    ui.show(grid)
    ui.tap_grid(grid)
    assert ui.js("() => wgEditor.state.selected") == GRID
    ui.page.wait_for_function("() => wgEditor.map.pm.Draw.Line.enabled()")
    assert GRID in ui.status()
    # 吸附 can be turned off by touch (a phone has no Alt key), and on again.
    ui.page.uncheck("#wg-snap")
    assert ui.js("() => wgEditor.snap.snappable") is False and "吸附已关闭" in ui.status()
    ui.page.check("#wg-snap")
    assert ui.js("() => wgEditor.snap.snappable") is True
    line = _split_line(grid)
    ui.show(shapely.LineString(line).buffer(1e-4))
    ui.draw(line)
    ui.saved(1)
    edits = client.get(f"/api/v1/drafts/{draft_id}").json()["edits"]
    assert [e["operation"] for e in edits] == ["split"]
    after = _grids(client, generation, level="grid")
    assert GRID not in after
    half = sorted(set(after) - set(_grids(client, 1, level="grid")))[0]

    # While one edit is saved, a tapped one is refused and a dragged one (wait) follows it with
    # the version the first produced: both are stored, none is lost as stale.
    answers = ui.js(
        "async (code) => { const url = '/grids/' + code;"
        " const first = wgEditor.edit('PATCH', url, {name: '甲'}, '改名');"
        " const tapped = wgEditor.edit('PATCH', url, {name: '乙'}, '改名');"
        " const dragged = wgEditor.edit('PATCH', url, {households: 7}, '改户数', true);"
        " return [(await first).ok, (await tapped).busy, (await dragged).ok]; }",
        half,
    )
    assert answers == [True, True, True]
    ui.saved(3)
    stored = client.get(f"/api/v1/grids/{half}", params={"generation": generation}).json()
    assert stored["properties"]["name"] == "甲" and stored["properties"]["households"] == 7

    # A double tap on 撤销: one request, version 4, no "someone else" message.
    sent.clear()
    ui.page.locator("#wg-undo").dblclick()
    ui.saved(4)
    assert [s for s in sent if s.endswith("/undo")] == [f"{draft_id}/undo"]
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["version"] == 4
    assert "已撤销" in ui.status()
    ui.js("() => wgEditor.setVersion(1)")  # a late, older answer cannot move the version back
    assert ui.version == 4 and ui.page.inner_text("#wg-version") == "4"

    # Offline: 检查, a view load and 发布 each say so; nothing stays disabled.
    ui.press("wg-publish")
    ui.page.wait_for_function(
        "() => document.querySelector('#wg-publish-summary').textContent.includes('错误 0')"
        " || document.querySelector('#wg-publish-summary').textContent.includes('错误0')",
        timeout=20000,
    )
    if ui.page.is_visible("#wg-publish-ack-row"):
        ui.page.check("#wg-publish-ack")
    ui.context.set_offline(True)
    ui.press("wg-check-now")
    ui.page.wait_for_function(
        "() => document.querySelector('#wg-check').textContent.includes('网络错误')"
    )
    ui.page.wait_for_function("() => !document.querySelector('#wg-busy-scope').disabled")
    assert "覆盖检查未完成" in ui.page.inner_text("#wg-publish-summary")
    ui.js("() => wgEditor.load()")
    ui.said("网格未能载入：网络错误")
    ui.press("wg-check-now")  # the check was lost: run it again (offline: same answer)
    ui.page.wait_for_function("() => !document.querySelector('#wg-busy-scope').disabled")
    ui.context.set_offline(False)
    ui.press("wg-check-now")
    ui.saved(4)
    ui.page.wait_for_function("() => !document.querySelector('#wg-publish-go').disabled")
    if ui.page.is_visible("#wg-publish-ack-row"):
        ui.page.check("#wg-publish-ack")
    ui.context.set_offline(True)
    ui.press("wg-publish-go")
    ui.said("网络错误：未发布，请重试")
    ui.page.wait_for_function("() => !document.querySelector('#wg-busy-scope').disabled")
    assert not ui.page.is_disabled("#wg-publish-go")
    assert "网络错误" in ui.page.inner_text("#wg-publish-result")
    assert client.get(f"/api/v1/drafts/{draft_id}").json()["status"] == "open"
    ui.context.set_offline(False)
    sent.clear()
    ui.page.locator("#wg-publish-go").dblclick()  # a double tap publishes once
    ui.said("已发布", timeout=60000)
    assert [s for s in sent if s.endswith("/publish")] == [f"{draft_id}/publish"]
    assert client.get("/api/v1/generations").json()["active"] == generation
    assert [e for e in ui.errors if "ERR_INTERNET_DISCONNECTED" not in e] == []
    ui.close("offline")


def test_discard_offline_on_the_draft_list(browser, live_server, client, tokens):
    planner = bearer(tokens["planner"])
    drop = client.post("/api/v1/drafts", json={"name": "断网放弃"}, headers=planner).json()
    context = browser.new_context(viewport=SIZES["phone"])
    context.add_cookies([{"name": "wangge_token", "value": tokens["planner"], "url": live_server}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(live_server + "/map/editor", wait_until="networkidle")
    context.set_offline(True)
    button = f"[data-discard='{drop['id']}']"
    page.click(button)
    page.wait_for_function("() => document.querySelector('#msg').textContent.includes('网络错误')")
    assert not page.is_disabled(button)
    assert client.get(f"/api/v1/drafts/{drop['id']}").json()["status"] == "open"
    context.set_offline(False)
    page.click(button)
    page.wait_for_selector(button, state="detached")
    assert client.get(f"/api/v1/drafts/{drop['id']}").json()["status"] == "discarded"
    assert errors == []
    context.close()


def test_diff_page_escapes_level_labels_and_fits_above_the_panel(
    browser, live_server, client, tokens
):
    """A level label set by an admin reaches Leaflet's layer control (which writes HTML) as text;
    on a phone the changed grids open above the panel; a viewer is not offered the check."""
    admin, planner = bearer(tokens["admin"]), bearer(tokens["planner"])
    hostile = "<img src=x onerror=alert(1)>"
    patched = client.patch("/api/v1/levels/grid", json={"label_zh": hostile}, headers=admin)
    assert patched.status_code == 200, patched.text
    draft = client.post("/api/v1/drafts", json={"name": "差异转义"}, headers=planner).json()
    grid = _grids(client, draft["generation_id"], level="grid")[GRID][1]
    line = {"type": "LineString", "coordinates": [list(p) for p in _split_line(grid)]}
    split = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        json={"code": GRID, "line": line, "version": 0},
        headers=planner,
    )
    assert split.status_code == 200, split.text

    context = browser.new_context(viewport=SIZES["phone"])
    context.add_cookies([{"name": "wangge_token", "value": tokens["planner"], "url": live_server}])
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(live_server + f"/map/drafts/{draft['id']}/diff", wait_until="networkidle")
    page.wait_for_selector("body[data-fitted='phone']")
    control = page.locator(".leaflet-control-layers-overlays")
    assert control.locator("img").count() == 0 and page.locator("img[src=x]").count() == 0
    assert f"换{hostile}的楼栋" in control.text_content()
    assert not [u for u in asked if u.endswith("/x")]
    # The changed grids (the split GRID) sit in the map above the panel.
    panel_top = page.evaluate(
        "() => document.querySelector('.wg-panel').getBoundingClientRect().top"
    )
    centre = page.evaluate(
        "([lat, lon]) => { const m = window[JSON.parse(document.getElementById('wg-page')"
        ".textContent).map]; const p = m.latLngToContainerPoint([lat, lon]);"
        " return p.y + m.getContainer().getBoundingClientRect().top; }",
        [grid.centroid.y, grid.centroid.x],
    )
    assert 0 < centre < panel_top
    context.close()

    viewer = Editor(
        browser, live_server, tokens["viewer"], "phone", f"/map/drafts/{draft['id']}/edit"
    )
    assert viewer.page.inner_text("#wg-check") == "覆盖检查需要规划员令牌"
    assert "需要规划员令牌" in viewer.status()
    assert viewer.page.is_disabled("#wg-keep-codes") and viewer.page.is_disabled("#wg-check-now")
    assert viewer.errors == []
    viewer.context.close()
