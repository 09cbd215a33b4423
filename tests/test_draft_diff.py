"""The draft diff at every level: a grid split between its micro-grids moves households at level
`grid` and none at `micro_grid`; a reshape moves them at both; an unchanged draft moves
nothing; the staff of each side are named only for callers who may see personal data; the page
shows the tables, escaped.

Every expected number is computed here from the stored buildings, cameras, events and grid rows
with shapely (which grid of each level covers which point), not by the diff's SQL.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import shapely
from markupsafe import escape
from sqlalchemy import text

from api.auth import Role, create_token
from api.db.events import OPEN_STATUSES
from api.routes.draft_diff_models import DraftDiff
from api.workflow.machine import OPEN, State
from tests.conftest import bearer, served

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1920, "height": 1080}
COMMUNITY = "320571005001"
LEVELS = ("street", "community", "grid", "micro_grid")
KINDS = ("buildings", "monitoring_points", "open_events")
TOTALS = ("buildings", "households", "monitoring_points", "open_events")
HOSTILE = '<script>window.__pwned=1</script>新网格"&'
NOTHING = {
    "buildings_moving": 0,
    "households_moving": 0,
    "monitoring_points_moving": 0,
    "open_events_moving": 0,
    "moves": 0,
    "receiving_grids": 0,
    "losing_grids": 0,
}


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


@pytest.fixture
def draft(client, planner):
    return client.post("/api/v1/drafts", json={"name": "差异测试"}, headers=planner).json()


def _diff(client, draft_id, headers):
    response = client.get(f"/api/v1/drafts/{draft_id}/diff", headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    # The OpenAPI model describes every field the answer has (nothing dropped, nothing extra).
    assert DraftDiff.model_validate(answer).model_dump(mode="json", by_alias=True) == answer
    return answer


def _level(diff, name):
    return next(entry for entry in diff["levels"] if entry["level"] == name)


def _objects(engine):
    """kind → (keys, households, points): every building (its point on surface), camera and
    open event of the street, as stored."""
    queries = {
        "buildings": "SELECT code, coalesce(households, 0), "
        "ST_AsBinary(ST_PointOnSurface(geom)) FROM building",
        "monitoring_points": "SELECT code, 0, ST_AsBinary(geom) FROM monitoring_point",
        "open_events": "SELECT id, 0, ST_AsBinary(geom) FROM event "
        f"WHERE status IN {OPEN_STATUSES} AND geom IS NOT NULL",
    }
    found = {}
    with engine.connect() as connection:
        for kind, query in queries.items():
            rows = connection.execute(text(query)).all()
            found[kind] = (
                [r[0] for r in rows],
                np.array([r[1] for r in rows]),
                shapely.from_wkb([bytes(r[2]) for r in rows]),
            )
    return found


def _owners(engine, generation, level, points):
    """The smallest code of `level` in `generation` covering each point (None outside)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT code, ST_AsBinary(geom) FROM grid WHERE level = :level "
                "AND generation_low <= :g AND generation_high >= :g ORDER BY code"
            ),
            {"level": level, "g": generation},
        ).all()
    codes = [r[0] for r in rows]
    tree = shapely.STRtree(shapely.from_wkb([bytes(r[1]) for r in rows]))
    owners: list[str | None] = [None] * len(points)
    for point, grid in zip(*tree.query(points, predicate="covered_by"), strict=True):
        if owners[point] is None or codes[grid] < owners[point]:
            owners[point] = codes[grid]
    return owners


def _expected(engine, old, new, recodes):
    """level → ({(from, to): (buildings, households, points, events)}, {kind: moving keys})."""
    objects = _objects(engine)
    expected = {}
    for level in LEVELS:
        pairs: dict = defaultdict(Counter)
        keys: dict = {kind: set() for kind in KINDS}
        for kind, (names, households, points) in objects.items():
            before = _owners(engine, old, level, points)
            after = _owners(engine, new, level, points)
            for i, (a, b) in enumerate(zip(before, after, strict=True)):
                if a != b and (a, b) not in recodes:
                    pairs[(a, b)][kind] += 1
                    pairs[(a, b)]["households"] += int(households[i])
                    keys[kind].add(names[i])
        expected[level] = (
            {pair: tuple(c[k] for k in TOTALS) for pair, c in pairs.items()},
            keys,
        )
    return expected


def _reported(diff):
    """The same shape, from the answer's `levels`."""
    return {
        e["level"]: (
            {(m["from_grid"], m["to_grid"]): tuple(m[k] for k in TOTALS) for m in e["moves"]},
            {kind: {item.get("code") or item.get("id") for item in e[kind]} for kind in KINDS},
        )
        for e in diff["levels"]
    }


def _recodes(*answers):
    return {(r["old_code"], r["new_code"]) for a in answers for r in a.get("recoded", [])}


def _split_fullest(client, planner, draft):
    stats = client.get(f"/api/v1/drafts/{draft['id']}/stats", params={"level": "grid"}).json()
    fullest = max(stats["grids"], key=lambda s: s["households"])
    code = fullest["code"]
    grid = client.get(f"/api/v1/grids/{code}", params={"generation": draft["generation_id"]})
    xmin, ymin, xmax, ymax = shapely.from_geojson(json.dumps(grid.json()["geometry"])).bounds
    middle = (xmin + xmax) / 2
    line = shapely.LineString([(middle, ymin - 1e-3), (middle, ymax + 1e-3)])
    split = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        headers=planner,
        json={"code": code, "line": json.loads(shapely.to_geojson(line)), "version": 0},
    )
    assert split.status_code == 200, split.text
    return code, split.json()


def _staff_rows(engine, code):
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                text(
                    "SELECT a.role, s.name, s.phone FROM staff_assignment a JOIN staff s "
                    "ON s.id = a.staff_id WHERE a.grid_code = :c AND s.active"
                ),
                {"c": code},
            )
        ]


def _required(engine, level):
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT name FROM staff_role_kind WHERE required_at_level = :l"), {"l": level}
            ).scalars()
        )


def _named(staff):
    return sorted(
        (role["role"], person["name"], person["phone"])
        for role in staff
        for person in role["people"]
    )


def test_a_split_between_micro_grids_moves_households_at_grid_level_only(
    client, planner, draft, engine, tokens
):
    code, split = _split_fullest(client, planner, draft)
    new_codes = split["created"]
    assert len(new_codes) == 2
    recodes = _recodes(split)
    diff = _diff(client, draft["id"], planner)
    expected = _expected(engine, diff["against_generation"], diff["generation"], recodes)

    # Four levels, coarsest first, as the catalogue lists them; each agrees with shapely.
    assert [e["level"] for e in diff["levels"]] == list(LEVELS)
    assert [e["label_zh"] for e in diff["levels"]] == ["街道", "社区", "网格", "微网格"]
    assert _reported(diff) == expected

    grid = _level(diff, "grid")
    # The split grid gives everything to its two halves, and nothing else moves at this level.
    moves, keys = expected["grid"]
    assert set(moves) == {(code, new) for new in new_codes}
    households = {new: moves[(code, new)][1] for new in new_codes}
    assert all(h > 0 for h in households.values())
    assert grid["summary"] == {
        "buildings_moving": len(keys["buildings"]),
        "households_moving": sum(households.values()),
        "monitoring_points_moving": len(keys["monitoring_points"]),
        "open_events_moving": len(keys["open_events"]),
        "moves": 2,
        "receiving_grids": 2,
        "losing_grids": 1,
    }
    # Totals per receiving grid are the sums over its buildings.
    assert {r["grid"]: r["gains"]["households"] for r in grid["receiving"]} == households
    assert [r["from"] for r in grid["receiving"]] == [[code], [code]]
    assert len(grid["losing"]) == 1
    losing = grid["losing"][0]
    assert losing["grid"] == code and losing["removed"] is True
    assert losing["loses"]["households"] == sum(households.values())
    assert losing["to"] == sorted(new_codes)
    assert grid["truncated"] == dict.fromkeys(("moves", *KINDS), False)
    # The new halves have nobody yet: each of the 3 roles required at level grid is missing.
    required = _required(engine, "grid")
    assert len(required) == 3
    assert {(m["grid"], m["role"]) for m in grid["missing_roles"]} == {
        (new, role) for new in new_codes for role in required
    }
    assert len(grid["missing_roles"]) == 6
    assert all(m["to_staff"] == [] for m in grid["moves"])

    # Micro-grids were kept whole (recoded under their new parents, perhaps): nobody changes
    # micro-grid, hence nobody changes grid at the finest level either.
    micro = _level(diff, "micro_grid")
    assert micro["moves"] == [] and micro["summary"] == NOTHING and micro["buildings"] == []
    assert diff["summary"]["buildings_moving"] == 0 and diff["buildings"] == []
    # ... but the summary rolls up every level too (review F8): here level grid moves them.
    assert list(diff["summary"]["by_level"]) == list(LEVELS)
    assert diff["summary"]["by_level"]["grid"] == {
        k: v for k, v in grid["summary"].items() if k.endswith("_moving")
    }
    assert diff["summary"]["by_level"]["grid"]["households_moving"] > 0
    assert diff["base_changed"] is None
    assert {(r["old_code"], r["new_code"]) for r in micro["recoded"]} == {
        pair for pair in recodes if len(pair[1]) == 18
    }
    for level in ("street", "community"):
        assert _level(diff, level)["moves"] == [] and _level(diff, level)["summary"] == NOTHING

    # The losing grid's team (5 people in the demo street: 1+1+1+2), named for a planner and
    # for the field staff of that very grid ...
    staff = _staff_rows(engine, code)
    assert len(staff) == 5
    with engine.begin() as connection:
        own_worker = create_token(
            connection,
            name="split-grid-worker",
            role=Role.field_staff,
            grid_codes=(code,),
            actor="t",
        ).secret
    for headers in (planner, bearer(tokens["admin"]), bearer(own_worker)):
        named = _diff(client, draft["id"], headers)
        assert len(_level(named, "grid")["moves"]) == 2
        for move in _level(named, "grid")["moves"]:
            assert _named(move["from_staff"]) == sorted(staff)
            assert sum(role["count"] for role in move["from_staff"]) == 5
        assert _named(_level(named, "grid")["losing"][0]["staff"]) == sorted(staff)
    # ... and for a viewer, anonymous callers or field staff of another grid only each role and
    # how many hold it: no name or phone anywhere in the answer.
    for headers in (bearer(tokens["viewer"]), {}, bearer(tokens["field_staff"])):
        hidden = _diff(client, draft["id"], headers)
        for move in _level(hidden, "grid")["moves"]:
            assert sorted((r["role"], r["count"]) for r in move["from_staff"]) == sorted(
                Counter(role for role, _, _ in staff).items()
            )
            assert all(role["people"] is None for role in move["from_staff"])
        flat = json.dumps(hidden, ensure_ascii=False)
        assert not any(name in flat or phone in flat for _, name, phone in staff)


def _strip_with_households(client, engine, generation):
    """Two neighbouring grids of COMMUNITY and a 20 m strip of the second along their edge
    that holds buildings with households."""
    features = client.get(
        "/api/v1/grids", params={"generation": generation, "level": "grid", "parent": COMMUNITY}
    ).json()["features"]
    grids = sorted(
        (f["properties"]["code"], shapely.from_geojson(json.dumps(f["geometry"]))) for f in features
    )
    _, households, points = _objects(engine)["buildings"]
    for code, shape in grids:
        for other, other_shape in grids:
            if other <= code or shape.intersection(other_shape).length <= 5e-4:
                continue
            strip = other_shape.intersection(shape.buffer(2e-4, join_style="mitre"))
            inside = shapely.covered_by(points, strip)
            if households[inside].sum() > 0:
                return code, other, shape.union(strip)
    raise AssertionError("no strip with households")


def test_a_reshape_moves_buildings_at_grid_and_micro_grid_level(client, planner, draft, engine):
    a, b, grown = _strip_with_households(client, engine, draft["generation_id"])
    moved = client.post(
        f"/api/v1/drafts/{draft['id']}/reshape",
        headers=planner,
        json={"code": a, "geometry": json.loads(shapely.to_geojson(grown)), "version": 0},
    )
    assert moved.status_code == 200, moved.text
    diff = _diff(client, draft["id"], planner)
    expected = _expected(
        engine, diff["against_generation"], diff["generation"], _recodes(moved.json())
    )
    assert _reported(diff) == expected
    grid, micro = _level(diff, "grid"), _level(diff, "micro_grid")
    # At level grid, b gives a strip to a (and nothing else moves).
    assert [(m["from_grid"], m["to_grid"]) for m in grid["moves"]] == [(b, a)]
    assert grid["summary"]["households_moving"] > 0
    assert [(r["grid"], r["from"]) for r in grid["receiving"]] == [(a, [b])]
    assert [(r["grid"], r["to"], r["removed"]) for r in grid["losing"]] == [(b, [a], False)]
    # a keeps its team: nothing required is missing there.
    assert grid["missing_roles"] == []
    assert sum(r["count"] for r in grid["moves"][0]["to_staff"]) == 5
    # The same buildings change micro-grid too (from b's micro-grids to a's).
    assert micro["summary"]["buildings_moving"] >= grid["summary"]["buildings_moving"] > 0
    assert {m["from_grid"][:15] for m in micro["moves"]} == {b}
    assert all(m["to_grid"].startswith(a) for m in micro["moves"])
    # Totals per receiving micro-grid add up to the level's total.
    assert (
        sum(r["gains"]["households"] for r in micro["receiving"])
        == (micro["summary"]["households_moving"])
    )
    for level in ("street", "community"):
        assert _level(diff, level)["summary"] == NOTHING
    # The finest level of the top-level fields is the micro-grid level here.
    assert {b["code"] for b in diff["buildings"]} == {b["code"] for b in micro["buildings"]}
    assert diff["summary"]["households_moving"] == micro["summary"]["households_moving"]


def test_a_deleted_micro_grid_leaves_its_buildings_outside_that_level_only(
    client, planner, draft, engine
):
    micro_code = f"{COMMUNITY}001001"
    deleted = client.delete(
        f"/api/v1/drafts/{draft['id']}/grids/{micro_code}",
        headers=planner,
        params={"version": 0},
    )
    assert deleted.status_code == 200, deleted.text
    diff = _diff(client, draft["id"], planner)
    expected = _expected(engine, diff["against_generation"], diff["generation"], set())
    assert _reported(diff) == expected
    micro = _level(diff, "micro_grid")
    # At level micro_grid its buildings now lie outside every micro-grid: a loss, no receiver.
    assert [(m["from_grid"], m["to_grid"]) for m in micro["moves"]] == [(micro_code, None)]
    assert micro["receiving"] == [] and micro["missing_roles"] == []
    assert [(r["grid"], r["to"], r["removed"]) for r in micro["losing"]] == [
        (micro_code, [None], True)
    ]
    assert micro["summary"]["buildings_moving"] == len(expected["micro_grid"][1]["buildings"]) > 0
    # Their grid does not change; at the finest level (the lookup's owner) they go to it.
    for level in ("street", "community", "grid"):
        assert _level(diff, level)["summary"] == NOTHING
    assert {(b["from_grid"], b["to_grid"]) for b in diff["buildings"]} == {
        (micro_code, micro_code[:15])
    }
    assert len(diff["buildings"]) == micro["summary"]["buildings_moving"]


def test_an_unchanged_draft_moves_nothing_at_any_level(client, planner, draft):
    untouched = _diff(client, draft["id"], planner)
    renamed = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{COMMUNITY}001",
        headers=planner,
        json={"name": "改名的网格", "version": 0},
    )
    assert renamed.status_code == 200, renamed.text
    attributes_only = _diff(client, draft["id"], planner)
    assert untouched["grids"] == [] and len(attributes_only["grids"]) == 1
    for diff in (untouched, attributes_only):
        assert len(diff["levels"]) == 4
        for entry in diff["levels"]:
            assert entry["summary"] == NOTHING
            assert [entry[k] for k in ("moves", "receiving", "losing", "missing_roles")] == [
                [],
                [],
                [],
                [],
            ]
            assert [entry[k] for k in KINDS] == [[], [], []]
        assert [diff[k] for k in KINDS] == [[], [], []]
        assert diff["truncated"] == dict.fromkeys(KINDS, False)


def test_the_diff_page_shows_who_gains_and_loses_escaped(client, planner, draft, engine, tokens):
    code, split = _split_fullest(client, planner, draft)
    renamed = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{split['created'][0]}",
        headers=planner,
        json={"name": HOSTILE, "version": split["version"]},
    )
    assert renamed.status_code == 200, renamed.text
    diff = _diff(client, draft["id"], planner)
    grid = _level(diff, "grid")
    staff = _staff_rows(engine, code)
    page = client.get(
        f"/map/drafts/{draft['id']}/diff", headers={"Cookie": f"wangge_token={tokens['planner']}"}
    )
    assert page.status_code == 200
    html = page.text
    # Tables per level: receiving, losing, moves (only level grid has any here).
    assert html.count('class="wg-receiving"') == 1 and html.count('class="wg-moves"') == 1
    assert html.count('<details id="wg-level-') == 4 and html.count("无变化") == 3
    for receiving in grid["receiving"]:
        assert receiving["grid"] in html
        assert f'<td class="wg-number">{receiving["gains"]["households"]}</td>' in html
    assert "缺少：" in html and "专职网格员" in html
    # The hostile grid name is text, never markup; the losing grid's staff are named.
    assert HOSTILE not in html and str(escape(HOSTILE)) in html
    assert all(name in html for _, name, _ in staff)
    # The field staff of the split grid see their team; others get roles and counts only.
    with engine.begin() as connection:
        own = create_token(
            connection,
            name="split-grid-worker",
            role=Role.field_staff,
            grid_codes=(code,),
            actor="t",
        ).secret
    shown = client.get(f"/map/drafts/{draft['id']}/diff", headers={"Cookie": f"wangge_token={own}"})
    assert all(name in shown.text for _, name, _ in staff)
    for headers in ({}, {"Cookie": f"wangge_token={tokens['field_staff']}"}):
        hidden = client.get(f"/map/drafts/{draft['id']}/diff", headers=headers).text
        assert "网格长 1 人" in hidden and "职能网格员 2 人" in hidden
        assert not any(name in hidden or phone in hidden for _, name, phone in staff)


@pytest.fixture
def live_server(settings):
    with served(settings) as url:
        yield url


@pytest.mark.parametrize("viewport", [PHONE, DESK], ids=["390px", "1920px"])
def test_the_diff_page_in_chromium(client, planner, draft, tokens, live_server, viewport):
    from playwright.sync_api import sync_playwright

    _, split = _split_fullest(client, planner, draft)
    renamed = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{split['created'][0]}",
        headers=planner,
        json={"name": HOSTILE, "version": split["version"]},
    )
    assert renamed.status_code == 200, renamed.text
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        context = browser.new_context(viewport=viewport)
        context.add_cookies(
            [{"name": "wangge_token", "value": tokens["planner"], "url": live_server}]
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{live_server}/map/drafts/{draft['id']}/diff", wait_until="networkidle")
        panel = page.locator(".wg-panel")
        text = panel.inner_text()
        # The open level (grid) shows its three tables; the hostile name is text.
        assert page.locator("details[open] table").count() == 3
        assert HOSTILE in text and page.evaluate("() => window.__pwned") is None
        assert "缺少：" in text and "专职网格员" in text
        # The panel fits the screen's width; the map keeps a visible part of the screen.
        box = panel.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        map_box = page.locator(".folium-map").bounding_box()
        assert map_box["width"] == viewport["width"]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
        # Every table of the open level fits its column without sideways scrolling.
        assert (
            page.evaluate(
                "() => [...document.querySelectorAll('details[open] .wg-table-scroll')]"
                ".filter(d => d.scrollWidth > d.clientWidth).length"
            )
            == 0
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"diff_{viewport['width']}.png"))
        assert errors == []
        browser.close()


def test_only_events_the_loop_holds_open_count_as_moving(client, planner, draft, engine):
    """Review F4: an event in each of the 11 states inside the split grid; the diff lists the
    6 open ones (those publish moves), not the rejected, evaluated, merged... ones."""
    code, _ = _split_fullest(client, planner, draft)
    states = sorted(State)
    assert len(states) == 11 and len(OPEN) == 6
    with engine.begin() as connection:
        ids = list(
            connection.execute(
                text(
                    "SELECT e.id FROM event e JOIN grid g ON g.code = :c AND g.generation_low <= 1 "
                    "AND g.generation_high >= 1 WHERE ST_Covers(g.geom, e.geom) "
                    "ORDER BY e.id LIMIT :n"
                ),
                {"c": code, "n": len(states)},
            ).scalars()
        )
        assert len(ids) == len(states)
        for event_id, state in zip(ids, states, strict=True):
            connection.execute(
                text("UPDATE event SET status = :s WHERE id = :i"),
                {"s": state.value, "i": event_id},
            )
        open_in_grid = connection.execute(
            text(
                "SELECT count(*) FROM event e JOIN grid g ON g.code = :c AND g.generation_low <= 1 "
                f"AND g.generation_high >= 1 WHERE ST_Covers(g.geom, e.geom) AND e.status IN {OPEN_STATUSES}"
            ),
            {"c": code},
        ).scalar()
    grid = _level(_diff(client, draft["id"], planner), "grid")
    listed = {e["id"]: e["status"] for e in grid["open_events"]}
    assert {i for i in ids if i in listed} == {
        i for i, state in zip(ids, states, strict=True) if state in OPEN
    }
    assert len([i for i in ids if i in listed]) == 6
    assert set(listed.values()) <= {state.value for state in OPEN}
    assert grid["summary"]["open_events_moving"] == len(listed) == open_in_grid


def test_the_diff_of_a_draft_whose_base_changed_is_of_the_rebased_draft(
    client, planner, engine, tokens
):
    """Review F3: after another draft's publish, the diff does not show this draft undoing it.
    Without a conflict it is the diff of the rebased draft (computed in a savepoint, nothing
    stored); with one it compares the draft with its own base. Both say base_changed."""
    codes = sorted(
        f["properties"]["code"]
        for f in client.get(
            "/api/v1/grids", params={"level": "grid", "parent": COMMUNITY, "limit": 50}
        ).json()["features"]
    )[:2]
    drafts = [
        client.post("/api/v1/drafts", json={"name": n}, headers=planner).json()
        for n in ("先发布", "后发布", "冲突")
    ]
    for d, code, name in zip(
        drafts, (codes[0], codes[1], codes[0]), ("甲", "乙", "丙"), strict=True
    ):
        renamed = client.patch(
            f"/api/v1/drafts/{d['id']}/grids/{code}",
            headers=planner,
            json={"name": name, "version": 0},
        )
        assert renamed.status_code == 200, renamed.text
    published = client.post(
        f"/api/v1/drafts/{drafts[0]['id']}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    active = drafts[0]["generation_id"]

    def stored(draft_id):
        with engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT d.version, d.base_generation, (SELECT count(*) FROM draft_edit e "
                    "WHERE e.draft_id = d.id), (SELECT count(*) FROM grid g WHERE "
                    "g.generation_low <= d.generation_id AND g.generation_high >= d.generation_id "
                    "AND g.name IN ('甲', '乙', '丙')) FROM draft d WHERE d.id = :d"
                ),
                {"d": draft_id},
            ).one()

    before = stored(drafts[1]["id"])
    clean = _diff(client, drafts[1]["id"], planner)
    assert stored(drafts[1]["id"]) == before == (1, 1, 1, 1)  # the preview stored nothing
    assert clean["base_changed"] == {
        "base_generation": 1,
        "active_generation": active,
        "rebased_preview": True,
        "conflicts": [],
    }
    assert clean["against_generation"] == active
    # Only this draft's rename: the other publish's rename is not shown reverted.
    assert [(g["code"], g["change"], g["attributes_changed"]) for g in clean["grids"]] == [
        (codes[1], "changed", ["name"])
    ]
    page = client.get(
        f"/map/drafts/{drafts[1]['id']}/diff",
        headers={"Cookie": f"wangge_token={tokens['planner']}"},
    ).text
    assert "基础版本已变化" in page and "发布时会自动变基" in page and "变基后的结果" in page

    conflicted = _diff(client, drafts[2]["id"], planner)
    assert stored(drafts[2]["id"]) == (1, 1, 1, 1)
    assert conflicted["base_changed"] == {
        "base_generation": 1,
        "active_generation": active,
        "rebased_preview": False,
        "conflicts": [{"code": codes[0], "kind": "both_changed", "level": "grid"}],
    }
    assert conflicted["against_generation"] == 1
    assert [g["code"] for g in conflicted["grids"]] == [codes[0]]
    page = client.get(
        f"/map/drafts/{drafts[2]['id']}/diff",
        headers={"Cookie": f"wangge_token={tokens['planner']}"},
    ).text
    assert "须先变基" in page and "1 处冲突" in page and codes[0] in page
    # The first draft is published: its diff is against the active generation, unchanged.
    assert _diff(client, drafts[0]["id"], planner)["base_changed"] is None
