"""Levels without SQL (issue 16 §5): the admin API and `wangge levels`, validated against the
grids already stored, audited, and seen by the service at once."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import mapping
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from api.app import API_PREFIX, create_app
from api.code_patterns import pattern_problem
from api.db import catalogue
from api.db.engine import make_engine
from api.db.generations import generation_at
from api.routes import levels as level_routes
from api.settings import Settings
from tests.conftest import bearer

MICRO = "320571005001001001"
DEMO_LEVELS = ["street", "community", "grid", "micro_grid"]
WANGGE = str(Path(sys.executable).with_name("wangge"))


def _with_level_routes(app):
    """The app with this module's router serving /api/v1/levels (while api/routes/grids.py
    still has its older read-only GET /levels, the first route that matches serves)."""
    routes = app.router.routes
    mine = [r for r in routes if getattr(r, "original_router", None) is level_routes.router]
    if not mine:
        app.include_router(level_routes.router, prefix=API_PREFIX)
        mine = [r for r in routes if getattr(r, "original_router", None) is level_routes.router]
    routes.remove(mine[0])
    routes.insert(0, mine[0])
    return app


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(_with_level_routes(create_app(settings))) as client:
        yield client


@pytest.fixture
def admin(tokens) -> dict[str, str]:
    return bearer(tokens["admin"])


def _level(api, name):
    return next(level for level in api.get("/api/v1/levels").json() if level["name"] == name)


def _error(response, status, code, where=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if where is not None:
        assert error["where"] == where, error
    return error


def test_list_shows_every_level_with_its_grids_and_roles(api):
    listed = api.get("/api/v1/levels").json()
    assert [level["name"] for level in listed] == DEMO_LEVELS
    assert [level["rank"] for level in listed] == [1, 2, 3, 4]
    assert [level["grids"] for level in listed] == [1, 8, 60, 1202]
    assert all(level["used"] for level in listed)
    grid = listed[2]
    assert grid["required_roles"] == ["full_time_worker", "grid_head", "grid_instructor"]
    assert (grid["households_min"], grid["households_max"]) == (300, 500)
    assert grid["code_pattern"] == r"^\d{15}$" and grid["code_extends_parent"] is True
    assert listed[3]["required_roles"] == ["micro_grid_liaison"]
    assert listed[0]["required_roles"] == listed[1]["required_roles"] == []


def test_writes_are_for_admins_only(api, tokens):
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    operations = sorted(
        (method, path)
        for path in paths
        if path.startswith("/api/v1/levels")
        for method in paths[path]
    )
    assert operations == [
        ("delete", "/api/v1/levels/{name}"),
        ("get", "/api/v1/levels"),
        ("patch", "/api/v1/levels/{name}"),
        ("post", "/api/v1/levels"),
    ]
    calls = [
        ("post", "/api/v1/levels", {"name": "unit", "rank": 5, "label_zh": "楼栋"}),
        ("patch", "/api/v1/levels/grid", {"label_zh": "小网格"}),
        ("delete", "/api/v1/levels/grid", None),
    ]
    refused = 0
    for role in ("planner", "dispatcher", "supervisor", "handler", "field_staff", "viewer"):
        for method, url, body in calls:
            kwargs = {"json": body} if body is not None else {}
            response = api.request(method, url, headers=bearer(tokens[role]), **kwargs)
            _error(response, 403, "insufficient_role")
            refused += 1
    assert refused == 18
    for method, url, body in calls:
        kwargs = {"json": body} if body is not None else {}
        _error(api.request(method, url, **kwargs), 401, "token_required")
    # Reading is open (the demo does not require tokens for reads); nothing changed.
    viewer = api.get("/api/v1/levels", headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 200 and [lv["name"] for lv in viewer.json()] == DEMO_LEVELS
    assert viewer.json()[2]["label_zh"] == "网格"


def test_add_a_level_use_it_and_it_cannot_be_removed(api, admin, tokens, engine):
    added = api.post(
        "/api/v1/levels",
        headers=admin,
        json={
            "name": "unit",
            "rank": 5,
            "label_zh": "楼栋单元",
            "code_pattern": r"^\d{20}$",
            "households_min": 10,
            "households_max": 60,
        },
    )
    assert added.status_code == 201, added.text
    assert added.json() | {"required_roles": None} == {
        "name": "unit",
        "rank": 5,
        "label_zh": "楼栋单元",
        "code_pattern": r"^\d{20}$",
        "code_extends_parent": True,
        "households_min": 10,
        "households_max": 60,
        "required_roles": None,
        "grids": 0,
        "used": False,
    }
    # A planner uses it at once (this process's level cache was forgotten): a unit in a draft.
    planner = bearer(tokens["planner"])
    draft = api.post("/api/v1/drafts", json={"name": "楼栋单元"}, headers=planner).json()
    micro = shapely.from_geojson(json.dumps(api.get(f"/api/v1/grids/{MICRO}").json()["geometry"]))
    inside = micro.intersection(micro.representative_point().buffer(0.0001))
    created = api.post(
        f"/api/v1/drafts/{draft['id']}/grids",
        headers=planner,
        json={
            "version": draft["version"],
            "geometry": mapping(inside),
            "code": f"{MICRO}01",
            "name": "一单元",
            "level": "unit",
            "parent_code": MICRO,
        },
    )
    assert created.status_code == 201, created.text
    # In use (by a draft's grid): not removed, not renamed, not moved above its parent.
    _error(api.delete("/api/v1/levels/unit", headers=admin), 409, "level_in_use", "path.name")
    renamed = api.patch("/api/v1/levels/unit", headers=admin, json={"name": "door"})
    _error(renamed, 409, "level_in_use", "body.name")
    moved = api.patch("/api/v1/levels/unit", headers=admin, json={"rank": 0})
    error = _error(moved, 409, "hierarchy_broken", "body.rank")
    assert "2 个网格" in error["message"]
    assert error["details"] == [
        {
            "code": "320571005",
            "level": "street",
            "parent_level": None,
            "expected_parent_level": "unit",
            "where": ["active", f"draft:{draft['id']}"],
        },
        {
            "code": f"{MICRO}01",
            "level": "unit",
            "parent_level": "micro_grid",
            "expected_parent_level": None,
            "where": [f"draft:{draft['id']}"],
        },
    ]
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM grid WHERE level = 'unit'")).scalar() == 1
        )
    assert _level(api, "unit")["used"] is True and _level(api, "unit")["grids"] == 0


def test_a_new_top_level_would_leave_streets_without_parent(api, admin):
    refused = api.post(
        "/api/v1/levels", headers=admin, json={"name": "district", "rank": 0, "label_zh": "区"}
    )
    error = _error(refused, 409, "hierarchy_broken", "body.rank")
    assert "1 个网格" in error["message"] and "district 将排在 street 之上" in error["message"]
    assert error["details"] == [
        {
            "code": "320571005",
            "level": "street",
            "parent_level": None,
            "expected_parent_level": "district",
            "where": ["active"],
        }
    ]
    between = api.post(
        "/api/v1/levels",
        headers=admin,
        json={"name": "block", "rank": 5, "label_zh": "楼栋", "required_roles": ["supervisor"]},
    )
    assert between.status_code == 201 and between.json()["required_roles"] == ["supervisor"]
    # Ranks are unique; and micro-grids moved below the new level would lose their parents.
    taken = api.patch("/api/v1/levels/block", headers=admin, json={"rank": 3})
    assert "已被层级 grid 使用" in _error(taken, 409, "rank_taken", "body.rank")["message"]
    below = api.patch("/api/v1/levels/micro_grid", headers=admin, json={"rank": 6})
    error = _error(below, 409, "hierarchy_broken", "body.rank")
    assert "1202 个网格" in error["message"] and len(error["details"]) == 10
    assert error["details"][0]["expected_parent_level"] == "block"
    assert [lv["name"] for lv in api.get("/api/v1/levels").json()] == [*DEMO_LEVELS, "block"]
    # Renaming and removing an unused level is fine.
    renamed = api.patch("/api/v1/levels/block", headers=admin, json={"name": "building"})
    assert renamed.status_code == 200 and renamed.json()["changed"] == ["name"]
    assert renamed.json()["required_roles"] == ["supervisor"]  # the role followed the name
    assert api.delete("/api/v1/levels/building", headers=admin).status_code == 204
    assert [lv["name"] for lv in api.get("/api/v1/levels").json()] == DEMO_LEVELS
    re_added = api.post(
        "/api/v1/levels",
        headers=admin,
        json={"name": "block", "rank": 5, "label_zh": "楼栋", "required_roles": ["supervisor"]},
    )
    assert re_added.status_code == 201  # the removed level took its required role with it


def test_a_pattern_the_active_grids_break_is_refused(api, admin):
    refused = api.patch("/api/v1/levels/grid", headers=admin, json={"code_pattern": r"^\d{14}$"})
    error = _error(refused, 409, "code_rule_broken", "body.code_pattern")
    assert "60 个 grid 网格" in error["message"]
    assert len(error["details"]) == 10
    assert error["details"][0] == {
        "code": "320571005001001",
        "parent_code": "320571005001",
        "problem": r"编码不符合 grid 层级的编码规则 ^\d{14}$",
        "where": ["active"],
    }
    assert _level(api, "grid")["code_pattern"] == r"^\d{15}$"
    # Turning the prefix rule off and on again: every micro-grid extends its grid's code.
    for value in (False, True):
        answer = api.patch(
            "/api/v1/levels/micro_grid", headers=admin, json={"code_extends_parent": value}
        )
        assert answer.status_code == 200 and answer.json()["changed"] == ["code_extends_parent"]


def test_a_draft_edit_uses_a_new_pattern_at_once_and_then_holds_it(api, admin, tokens):
    planner = bearer(tokens["planner"])
    draft = api.post("/api/v1/drafts", json={"name": "字母编码"}, headers=planner).json()
    lettered = "320571005001001A01"
    edit = {"version": 0, "code": lettered}
    before = api.patch(f"/api/v1/drafts/{draft['id']}/grids/{MICRO}", headers=planner, json=edit)
    assert before.status_code == 422 and r"^\d{18}$" in before.json()["error"]["message"]

    loosened = api.patch(
        "/api/v1/levels/micro_grid", headers=admin, json={"code_pattern": r"^\d{15}[0-9A-Z]{3}$"}
    )
    assert loosened.status_code == 200 and loosened.json()["changed"] == ["code_pattern"]
    after = api.patch(f"/api/v1/drafts/{draft['id']}/grids/{MICRO}", headers=planner, json=edit)
    assert after.status_code == 200, after.text
    grid = api.get(f"/api/v1/grids/{lettered}", params={"generation": draft["generation_id"]})
    assert grid.status_code == 200 and grid.json()["properties"]["level"] == "micro_grid"

    # The draft now holds a code the old rule refuses: restoring it is refused, naming the draft.
    restored = api.patch(
        "/api/v1/levels/micro_grid", headers=admin, json={"code_pattern": r"^\d{18}$"}
    )
    error = _error(restored, 409, "code_rule_broken", "body.code_pattern")
    assert "1 个 micro_grid 网格" in error["message"] and lettered in error["message"]
    assert error["details"] == [
        {
            "code": lettered,
            "parent_code": "320571005001001",
            "problem": r"编码不符合 micro_grid 层级的编码规则 ^\d{18}$",
            "where": [f"draft:{draft['id']}"],
        }
    ]
    # Discarded, the draft no longer holds the level back.
    version = api.get(f"/api/v1/drafts/{draft['id']}").json()["version"]
    discarded = api.post(
        f"/api/v1/drafts/{draft['id']}/discard", headers=planner, json={"version": version}
    )
    assert discarded.status_code == 200, discarded.text
    again = api.patch(
        "/api/v1/levels/micro_grid", headers=admin, json={"code_pattern": r"^\d{18}$"}
    )
    assert again.status_code == 200


def test_a_band_change_shows_in_draft_statistics_at_once(api, admin, tokens):
    planner = bearer(tokens["planner"])
    draft = api.post("/api/v1/drafts", json={"name": "户数"}, headers=planner).json()

    def ranges():
        stats = api.get(f"/api/v1/drafts/{draft['id']}/stats", params={"level": "grid"}).json()
        return {tuple(grid["households_range"]) for grid in stats["grids"]}, len(stats["grids"])

    assert ranges() == ({(300, 500)}, 60)
    changed = api.patch(
        "/api/v1/levels/grid", headers=admin, json={"households_min": 200, "households_max": 450}
    )
    assert changed.json()["changed"] == ["households_max", "households_min"]
    assert ranges() == ({(200, 450)}, 60)
    # Each bound is checked against the other, stored one.
    _error(
        api.patch("/api/v1/levels/grid", headers=admin, json={"households_max": 100}),
        422,
        "invalid_range",
        "body.households_max",
    )
    _error(
        api.patch("/api/v1/levels/grid", headers=admin, json={"households_min": 451}),
        422,
        "invalid_range",
        "body.households_min",
    )
    assert ranges() == ({(200, 450)}, 60)


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        # Review F11: strict types, `true` is not rank 1 nor `1` true.
        ({"rank": True}, "validation_error", "body.rank"),
        ({"rank": "2"}, "validation_error", "body.rank"),
        ({"rank": 2.0}, "validation_error", "body.rank"),
        ({"households_min": True}, "validation_error", "body.households_min"),
        ({"households_max": "500"}, "validation_error", "body.households_max"),
        ({"code_extends_parent": 1}, "validation_error", "body.code_extends_parent"),
        ({"code_extends_parent": "true"}, "validation_error", "body.code_extends_parent"),
        ({"rank": None}, "invalid_level", "body.rank"),
        ({"code_extends_parent": None}, "invalid_level", "body.code_extends_parent"),
        ({"code_pattern": "(\\d{3}"}, "invalid_pattern", "body.code_pattern"),
        ({"code_pattern": "^(\\d+)+$"}, "invalid_pattern", "body.code_pattern"),
        ({"code_pattern": "^(a|ab)*$"}, "invalid_pattern", "body.code_pattern"),
        ({"code_pattern": "^(\\d)\\1$"}, "invalid_pattern", "body.code_pattern"),
        ({"code_pattern": "\\d*\\d*\\d*\\d*"}, "invalid_pattern", "body.code_pattern"),
        ({"code_pattern": "\\d" * 101}, "invalid_pattern", "body.code_pattern"),
        ({"households_min": -1}, "invalid_level", "body.households_min"),
        ({"households_min": 600}, "invalid_range", "body.households_min"),
        ({"required_roles": ["grid_head", "mayor"]}, "unknown_role", "body.required_roles"),
        ({"label_zh": "  "}, "invalid_level", "body.label_zh"),
        ({"rank": -1}, "invalid_level", "body.rank"),
        ({"name": "Grid Level"}, "invalid_level", "body.name"),
        ({"colour": "red"}, None, "body.colour"),
        ({}, "nothing_to_change", "body"),
    ],
)
def test_bad_values_are_refused_naming_the_field(api, admin, body, code, where):
    before = _level(api, "grid")
    response = api.patch("/api/v1/levels/grid", headers=admin, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["where"] == where
    if code is not None:
        assert error["code"] == code
    if code not in (None, "validation_error") and where.startswith("body."):
        assert error["message"].startswith(where.split(".")[-1])  # the field, in the message
    assert _level(api, "grid") == before  # nothing changed


# Review F7: patterns planners use are accepted; polynomial ones are refused too.
ACCEPTED_PATTERNS = (
    r"^\d{9}$",
    r"^\d{12}$",
    r"^\d{15}$",
    r"^\d{18}$",
    r"^\d{15}[0-9A-Z]{3}$",
    r"^320\d{6}$",
    r"^[A-Z]{2}\d{4,8}$",
    r"^[A-Z]{1,3}-?\d{4,8}$",
    r"^\d+$",
    r"^WG\d{3,}$",
    r"^(?:\d{3}){6}$",
    r"^(?:320571|320572)\d{9}$",
    r"^\d{6}[A-Z]?\d{2,3}$",
)
REFUSED_PATTERNS = (
    r"\d*\d*\d*(?:\d{1}){63}x",  # ~14 ms per 64-character code (the review's)
    r"\d*\d*\d*(?:(?:\d\d){2}){15}x",
    r"^\d*\d*$",
    r"^[A-Z]+\d+$",
    r"^\d{0,30}\d{0,30}$",
    r"^(\d+)+$",
    r"^(a|ab)*$",
    r"^(\d)\1$",
    r"^(?=\d)\d{18}$",
    r"^\d{65}$",
    r"^(?:\d{2,3}){6}$",
)


def test_code_patterns_planners_use_pass_the_guard_and_polynomial_ones_do_not():
    accepted = [p for p in ACCEPTED_PATTERNS if pattern_problem(p) is None]
    refused = [p for p in REFUSED_PATTERNS if pattern_problem(p) is not None]
    assert (len(accepted), len(refused)) == (13, 11)
    assert accepted == list(ACCEPTED_PATTERNS) and refused == list(REFUSED_PATTERNS)
    assert "一个不限次数" in pattern_problem(REFUSED_PATTERNS[0])


def test_conflicts_and_unknown_levels(api, admin):
    _error(
        api.patch("/api/v1/levels/grid", headers=admin, json={"rank": 1}),
        409,
        "rank_taken",
        "body.rank",
    )
    taken = api.patch(
        "/api/v1/levels/micro_grid", headers=admin, json={"required_roles": ["grid_head"]}
    )
    _error(taken, 409, "role_required_elsewhere", "body.required_roles")
    _error(
        api.post(
            "/api/v1/levels", headers=admin, json={"name": "grid", "rank": 7, "label_zh": "网格"}
        ),
        409,
        "level_exists",
        "body.name",
    )
    _error(
        api.patch("/api/v1/levels/nope", headers=admin, json={"rank": 9}), 404, "level_not_found"
    )
    _error(api.delete("/api/v1/levels/nope", headers=admin), 404, "level_not_found", "path.name")
    _error(api.delete("/api/v1/levels/grid", headers=admin), 409, "level_in_use", "path.name")
    missing = api.post("/api/v1/levels", headers=admin, json={"name": "x1", "rank": 9})
    assert missing.status_code == 422 and missing.json()["error"]["where"] == "body.label_zh"
    # Roles move only explicitly: off grid, then onto micro_grid.
    off = api.patch(
        "/api/v1/levels/grid",
        headers=admin,
        json={"required_roles": ["full_time_worker", "grid_instructor"]},
    )
    assert off.json()["required_roles"] == ["full_time_worker", "grid_instructor"]
    on = api.patch(
        "/api/v1/levels/micro_grid",
        headers=admin,
        json={"required_roles": ["micro_grid_liaison", "grid_head"]},
    )
    assert on.json()["required_roles"] == ["grid_head", "micro_grid_liaison"]


def _notified(listener, count):
    """The notifications received, waiting (up to 5 s) until there are `count`."""
    for _ in range(50):
        if len(listener.notifies) >= count:
            break
        select.select([listener], [], [], 0.1)
        listener.poll()
    return list(listener.notifies)


def test_changes_are_audited_cached_and_announced(api, admin, engine, database_url, settings):
    with engine.connect() as connection:
        assert catalogue.level_named(connection, "grid").label_zh == "网格"  # cache warm
    listener = psycopg2.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    listener.autocommit = True
    try:
        with listener.cursor() as cursor:
            cursor.execute(f"LISTEN {catalogue.LEVELS_CHANNEL}")
        assert (
            api.patch(
                "/api/v1/levels/grid", headers=admin, json={"label_zh": "综合网格"}
            ).status_code
            == 200
        )
        # This process sees the change at once (the cached catalogue was forgotten)...
        with engine.connect() as connection:
            assert catalogue.level_named(connection, "grid").label_zh == "综合网格"
        # ...and other processes are told at commit.
        assert [n.channel for n in _notified(listener, 1)] == [catalogue.LEVELS_CHANNEL]
        listener.notifies.clear()
        refused = api.patch("/api/v1/levels/grid", headers=admin, json={"code_pattern": "^x$"})
        assert refused.status_code == 409
        api.post(
            "/api/v1/levels", headers=admin, json={"name": "unit", "rank": 5, "label_zh": "单元"}
        )
        api.delete("/api/v1/levels/unit", headers=admin)
        assert len(_notified(listener, 2)) == 2  # the refused change sent nothing
    finally:
        listener.close()
    with engine.connect() as connection:
        audited = connection.execute(
            text(
                "SELECT actor, action, entity_id, details FROM audit_log "
                "WHERE entity = 'grid_level' ORDER BY id"
            )
        ).all()
    assert [(a.action, a.entity_id) for a in audited] == [
        ("level.change", "grid"),
        ("level.add", "unit"),
        ("level.remove", "unit"),
    ]
    assert audited[0].actor.startswith("token:") and audited[0].actor.endswith(":test-admin")
    # The actor is the service's word; the database role that called is recorded beside it.
    service_role = make_url(settings.database_url).username
    assert [a.details["db_role"] for a in audited] == [service_role] * 3
    assert {k: v for k, v in audited[0].details.items() if k != "db_role"} == {
        "changed": ["label_zh"],
        "before": {"label_zh": "网格"},
        "after": {"label_zh": "综合网格"},
    }


def test_the_service_writes_levels_only_through_the_owners_functions(api, admin, settings):
    engine = make_engine(settings)  # the service's own role
    try:
        for statement in (
            "UPDATE grid_level SET label_zh = '综合网格' WHERE name = 'grid'",
            "UPDATE staff_role_kind SET required_at_level = NULL",
            "INSERT INTO grid_level (name, rank, label_zh) VALUES ('x', 9, 'x')",
        ):
            with engine.begin() as connection, pytest.raises(DBAPIError) as refused:
                connection.execute(text(statement))
            assert "permission denied" in str(refused.value), statement
        with engine.connect() as connection:
            assert (
                connection.execute(
                    text("SELECT count(*) FROM audit_log WHERE entity = 'grid_level'")
                ).scalar()
                == 0
            )
    finally:
        engine.dispose()
    changed = api.patch("/api/v1/levels/grid", headers=admin, json={"label_zh": "综合网格"})
    assert changed.status_code == 200 and _level(api, "grid")["label_zh"] == "综合网格"


# --- the command line --------------------------------------------------------------------


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WANGGE, "levels", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


def test_cli_list_add_set_remove(database_url, engine):
    env = {"WANGGE_DATABASE_URL": database_url}
    listed = run("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert [(lv["name"], lv["grids"]) for lv in body] == list(
        zip(DEMO_LEVELS, [1, 8, 60, 1202], strict=True)
    )
    table = run("list", env=env)
    assert "共 4 个层级" in table.stdout and "微网格" in table.stdout

    added = run(
        "add",
        "unit",
        "--rank",
        "5",
        "--label",
        "楼栋单元",
        "--pattern",
        r"^\d{20}$",
        "--households-min",
        "10",
        "--households-max",
        "60",
        "--required-role",
        "supervisor",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert "已新增层级 unit（楼栋单元，排序 5）" in added.stdout
    changed = run("set", "unit", "--no-extends-parent", "--households-max", "none", env=env)
    assert changed.returncode == 0, changed.stderr
    assert "已修改 code_extends_parent、households_max" in changed.stdout
    cleared = run("set", "unit", "--pattern", "", "--clear-roles", env=env)
    assert "已修改 code_pattern、required_roles" in cleared.stdout, cleared.stderr
    unit = next(
        lv for lv in json.loads(run("list", "--json", env=env).stdout) if lv["name"] == "unit"
    )
    assert (unit["code_pattern"], unit["households_max"], unit["required_roles"]) == (
        None,
        None,
        [],
    )
    removed = run("remove", "unit", env=env)
    assert removed.returncode == 0 and "已删除层级 unit" in removed.stdout

    with engine.connect() as connection:
        actions = connection.execute(
            text("SELECT actor, action FROM audit_log WHERE entity = 'grid_level' ORDER BY id")
        ).all()
        supervisor = connection.execute(
            text("SELECT required_at_level FROM staff_role_kind WHERE name = 'supervisor'")
        ).scalar()
    assert [tuple(a) for a in actions] == [
        ("cli:levels add", "level.add"),
        ("cli:levels set", "level.change"),
        ("cli:levels set", "level.change"),
        ("cli:levels remove", "level.remove"),
    ]
    assert supervisor is None


def test_cli_errors_name_the_option(database_url):
    env = {"WANGGE_DATABASE_URL": database_url}
    cases = [
        (
            ("add", "unit", "--rank", "5", "--label", "单元", "--pattern", "(a+)+"),
            "--pattern",
            "code_pattern",
        ),
        (
            ("set", "grid", "--households-min", "600"),
            "--households-min",
            "户数下限 600 不能大于上限 500",
        ),
        (("set", "grid", "--households-min", "many"), "--households-min", "户数须为整数"),
        (("set", "grid", "--required-role", "mayor"), "--required-role", "mayor"),
        (("set", "grid", "--pattern", r"^\d{14}$"), "--pattern", "60 个 grid 网格"),
        (("set", "grid", "--rank", "2"), "--rank", "已被层级 community 使用"),
        (("remove", "grid"), "", "不能删除"),
        (("set", "nope", "--label", "无"), "", "没有名为 nope 的层级"),
    ]
    for args, option, words in cases:
        result = run(*args, env=env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert option in result.stderr and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert (
        "320571005001001（现行版本）"
        in run("set", "grid", "--pattern", r"^\d{14}$", env=env).stderr
    )
    usage = run("add", "unit", "--rank", "five", env=env)
    assert usage.returncode == 2 and "--rank" in usage.stderr


def test_code_rule_violations_of_a_generation_are_reported(engine):
    """Review F10: a rule is validated against the active generation and open drafts only, so
    an older generation may break it; `code_rule_violations` says which grids (for
    re-activation). The rule is set by hand here, as if set after the generation was retired."""
    from api import levels
    from api.errors import Conflict

    with engine.begin() as connection:
        connection.execute(
            text("UPDATE grid_level SET code_pattern = :p WHERE name = 'micro_grid'"),
            {"p": r"^\d{17}[0-8]$"},
        )
    catalogue.forget_levels()
    try:
        with engine.connect() as connection:
            expected = set(
                connection.execute(
                    text(
                        "SELECT code FROM grid WHERE level = 'micro_grid' AND code ~ '9$' "
                        "AND generation_low <= 1 AND generation_high >= 1"
                    )
                ).scalars()
            )
            found = levels.code_rule_violations(connection, 1)
            assert len(expected) > 10 and {f["code"] for f in found} == expected
            assert len(found) == len(expected)
            assert found[0]["level"] == "micro_grid"
            assert found[0]["parent_code"] == found[0]["code"][:15]
            assert found[0]["problem"] == r"编码不符合 micro_grid 层级的编码规则 ^\d{17}[0-8]$"
            with pytest.raises(Conflict) as refused:
                levels.refuse_code_rule_violations(connection, 1)
            assert refused.value.code == "code_rule_broken"
            assert refused.value.where == "path.generation_id"
            assert f"第 1 版有 {len(expected)} 个网格" in refused.value.message
            assert len(refused.value.details) == levels.EXAMPLES
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE grid_level SET code_pattern = :p WHERE name = 'micro_grid'"),
                {"p": r"^\d{18}$"},
            )
        with engine.connect() as connection:
            assert levels.code_rule_violations(connection, 1) == []
            levels.refuse_code_rule_violations(connection, 1)  # nothing to refuse
    finally:
        catalogue.forget_levels()


def test_re_activating_a_generation_that_breaks_todays_rule_is_refused(api, admin, engine, tokens):
    """Review F10: `POST /generations/{id}/activate` checks the old generation's codes against
    the rules as they stand (a rule may have changed after it was retired)."""
    planner = bearer(tokens["planner"])
    draft = api.post("/api/v1/drafts", headers=planner, json={"name": "F10"}).json()
    renamed = api.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{MICRO}",
        headers=planner,
        json={"version": 0, "name": "改名的微网格"},
    )
    assert renamed.status_code == 200, renamed.text
    published = api.post(
        f"/api/v1/drafts/{draft['id']}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    live = published.json()["generation"]
    with engine.begin() as connection:  # as if changed by hand after generation 1 retired
        connection.execute(
            text("UPDATE grid_level SET code_pattern = :p WHERE name = 'micro_grid'"),
            {"p": r"^\d{17}[0-8]$"},
        )
    catalogue.forget_levels()
    try:
        refused = api.post("/api/v1/generations/1/activate", headers=planner)
        _error(refused, 409, "code_rule_broken", "path.generation_id")
        assert "第 1 版有" in refused.json()["error"]["message"]
        with engine.connect() as connection:
            assert generation_at(connection) == live  # nothing activated
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE grid_level SET code_pattern = :p WHERE name = 'micro_grid'"),
                {"p": r"^\d{18}$"},
            )
        catalogue.forget_levels()
        again = api.post("/api/v1/generations/1/activate", headers=planner)
        assert again.status_code == 200, again.text
        with engine.connect() as connection:
            assert generation_at(connection) == 1
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE grid_level SET code_pattern = :p WHERE name = 'micro_grid'"),
                {"p": r"^\d{18}$"},
            )
        catalogue.forget_levels()
