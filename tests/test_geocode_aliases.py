"""Dispatchers' address corrections: aliases through the API and `wangge gazetteer aliases`, and the
place search a correction picks from (api/address_corrections.py, api/routes/geocode_aliases.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api import address_corrections as corrections
from api.errors import Conflict
from tests.conftest import bearer

WANGGE = str(Path(sys.executable).with_name("wangge"))
ALIASES = "/api/v1/geocode/aliases"
# Places of this test's own (codes no demo place uses): two roads that cross, one that meets
# neither, a compound, a POI and a house number.
PLACES = [
    "INSERT INTO road (code, name, geom) VALUES "
    "('TFX-R1', '纠错甲路', ST_Multi(ST_GeomFromText('LINESTRING(120.730 31.300, 120.740 31.300)', 4326))),"
    "('TFX-R2', '纠错乙路', ST_Multi(ST_GeomFromText('LINESTRING(120.735 31.295, 120.735 31.305)', 4326))),"
    "('TFX-R3', '纠错丙路', ST_Multi(ST_GeomFromText('LINESTRING(120.730 31.310, 120.740 31.310)', 4326)))",
    "INSERT INTO compound (code, name, aliases, geom) VALUES ('TFX-C1', '纠错苑', '{纠错苑小区}', "
    "ST_Multi(ST_GeomFromText('POLYGON((120.731 31.301, 120.734 31.301, 120.734 31.304, "
    "120.731 31.304, 120.731 31.301))', 4326)))",
    "INSERT INTO poi (code, name, category, geom) VALUES "
    "('TFX-P1', '纠错小学', 'school', ST_SetSRID(ST_MakePoint(120.736, 31.302), 4326))",
    "INSERT INTO house_number (code, road, number, compound_code, geom) VALUES "
    "('TFX-H1', '纠错甲路', '19', 'TFX-C1', ST_SetSRID(ST_MakePoint(120.732, 31.3012), 4326))",
]


@pytest.fixture
def places(engine, client) -> dict[str, str]:
    """This test's places, known to the app's matcher (a new wording is checked against it)."""
    with engine.begin() as connection:
        for statement in PLACES:
            connection.execute(text(statement))
        building = connection.execute(
            text("SELECT code FROM building WHERE address IS NOT NULL ORDER BY code LIMIT 1")
        ).scalar_one()
    client.app.state.index_store.refresh()
    return {"building": building}


def _event(client: TestClient, tokens, external_id: str = "fix-1") -> int:
    response = client.post(
        "/api/v1/events",
        json={
            "source": "hotline_12345",
            "external_id": external_id,
            "description": "纠错苑4栋楼下垃圾堆放",
            "address": "园区纠错苑4栋楼下垃圾堆放",
        },
        headers=bearer(tokens["dispatcher"]),
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _post(client, tokens, role="dispatcher", **body):
    return client.post(ALIASES, json=body, headers=bearer(tokens[role]))


def _audit(engine, action: str) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT actor, entity_id, details FROM audit_log WHERE action = :a ORDER BY id"),
            {"a": action},
        )
        return [dict(row._mapping) for row in rows]


def test_a_correction_is_saved_once_and_a_contradiction_is_refused(client, tokens, engine, places):
    event_id = _event(client, tokens)
    # The matcher finds the compound (it has no 4栋); the dispatcher teaches the gate's plate.
    plate = {"kind": "house_number", "code": "TFX-H1"}
    first = _post(client, tokens, text="园区纠错苑小区 4栋", target=plate, event_id=event_id)
    assert first.status_code == 201, first.text
    alias = first.json()
    assert alias["text"] == "园区纠错苑小区 4栋"
    assert alias["normalised"] and " " not in alias["normalised"]
    assert "小区" not in alias["normalised"]
    assert (alias["target"]["kind"], alias["target"]["code"]) == ("house_number", "TFX-H1")
    assert alias["event_id"] == event_id
    assert alias["created_by"].endswith(":test-dispatcher")

    # The same wording (full-width digit, no 小区, no space) for the same place: no change, 200.
    again = _post(client, tokens, role="supervisor", text="园区纠错苑４栋", target=plate)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == alias["id"]

    # The same wording for another place: refused, naming the place that holds it.
    other = _post(client, tokens, text="园区纠错苑4栋", target={"kind": "poi", "code": "TFX-P1"})
    assert other.status_code == 409
    error = other.json()["error"]
    assert (error["code"], error["where"]) == ("alias_taken", "body.text")
    assert error["details"][0]["alias_id"] == alias["id"]
    assert error["details"][0]["target"] == plate

    listed = client.get(ALIASES, headers=bearer(tokens["dispatcher"])).json()
    assert [a["id"] for a in listed] == [alias["id"]]
    added = _audit(engine, "address_alias.add")
    assert len(added) == 1
    assert added[0]["entity_id"] == str(alias["id"])
    assert added[0]["details"]["target"] == plate
    assert added[0]["details"]["event_id"] == event_id


def test_every_kind_of_place_can_be_a_target(client, tokens, places):
    targets = [
        ("building", places["building"]),
        ("compound", "TFX-C1"),
        ("house_number", "TFX-H1"),
        ("road", "TFX-R1"),
        ("poi", "TFX-P1"),
        ("intersection", "TFX-R1+TFX-R2"),
    ]
    for number, (kind, code) in enumerate(targets):
        response = _post(
            client, tokens, text=f"纠错说法{number}号", target={"kind": kind, "code": code}
        )
        assert response.status_code == 201, (kind, response.text)
        assert response.json()["target"]["kind"] == kind
    assert len(client.get(ALIASES, headers=bearer(tokens["admin"])).json()) == len(targets) == 6


REFUSED = [
    # (body, status, code, where)
    (
        {"text": "", "target": {"kind": "compound", "code": "TFX-C1"}},
        422,
        "empty_wording",
        "body.text",
    ),
    (
        {"text": "   ", "target": {"kind": "compound", "code": "TFX-C1"}},
        422,
        "empty_wording",
        "body.text",
    ),
    (
        {"text": "，。！", "target": {"kind": "compound", "code": "TFX-C1"}},
        422,
        "empty_wording",
        "body.text",
    ),
    (
        {"text": "路" * 201, "target": {"kind": "compound", "code": "TFX-C1"}},
        422,
        "wording_too_long",
        "body.text",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "street", "code": "TFX-C1"}},
        422,
        "invalid_target_kind",
        "body.target.kind",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "compound", "code": " "}},
        422,
        "invalid_target_code",
        "body.target.code",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "compound", "code": "NOPE"}},
        404,
        "place_not_found",
        "body.target.code",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "intersection", "code": "TFX-R1"}},
        422,
        "invalid_target_code",
        "body.target.code",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "intersection", "code": "TFX-R1+TFX-R1"}},
        422,
        "invalid_target_code",
        "body.target.code",
    ),
    # Two roads that exist but do not meet have no intersection.
    (
        {"text": "纠错苑", "target": {"kind": "intersection", "code": "TFX-R1+TFX-R3"}},
        404,
        "place_not_found",
        "body.target.code",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "compound", "code": "TFX-C1"}, "event_id": 999999},
        404,
        "event_not_found",
        "body.event_id",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "compound", "code": "TFX-C1"}, "event_id": 2**70},
        422,
        "validation_error",
        "body.event_id",
    ),
    (
        {"text": "纠错苑", "target": {"kind": "compound", "code": "TFX-C1"}, "extra": 1},
        422,
        "validation_error",
        "body.extra",
    ),
    (
        {"text": 12, "target": {"kind": "compound", "code": "TFX-C1"}},
        422,
        "validation_error",
        "body.text",
    ),
    (
        {"text": "纠错\u0000苑", "target": {"kind": "compound", "code": "TFX-C1"}},
        422,
        "nul_character",
        "body",
    ),
    ({"target": {"kind": "compound", "code": "TFX-C1"}}, 422, "validation_error", "body.text"),
]


def test_bad_corrections_are_refused_naming_where_and_nothing_is_stored(client, tokens, places):
    wrong = []
    for body, status, code, where in REFUSED:
        response = _post(client, tokens, **body)
        error = response.json().get("error", {})
        if (response.status_code, error.get("code"), error.get("where")) != (status, code, where):
            wrong.append(f"{body}: {response.status_code} {error}")
        elif status == 422 and code != "validation_error":
            assert error["message"]  # Chinese, for the dispatcher
    assert not wrong, "\n".join(wrong)
    assert len(REFUSED) == 16
    assert client.get(ALIASES, headers=bearer(tokens["admin"])).json() == []


def test_who_may_save_read_and_remove_aliases(client, tokens, places):
    target = {"kind": "house_number", "code": "TFX-H1"}
    assert client.post(ALIASES, json={"text": "纠错苑", "target": target}).status_code == 401
    for role in ("viewer", "planner", "handler", "field_staff"):
        refused = _post(client, tokens, role=role, text="纠错苑", target=target)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "insufficient_role")
        listed = client.get(ALIASES, headers=bearer(tokens[role]))
        assert listed.status_code == 403
    saved = [
        _post(client, tokens, role=role, text=f"纠错苑{n}幢", target=target).json()["id"]
        for n, role in enumerate(("admin", "dispatcher", "supervisor"))
    ]
    assert client.get(ALIASES, headers=bearer(tokens["supervisor"])).status_code == 200
    refused = client.delete(f"{ALIASES}/{saved[0]}", headers=bearer(tokens["supervisor"]))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "insufficient_role")
    assert client.delete(f"{ALIASES}/{saved[0]}").status_code == 401
    for role, alias_id in (("dispatcher", saved[0]), ("admin", saved[1])):
        assert (
            client.delete(f"{ALIASES}/{alias_id}", headers=bearer(tokens[role])).status_code == 204
        )
    left = client.get(ALIASES, headers=bearer(tokens["admin"])).json()
    assert [a["id"] for a in left] == [saved[2]]


def test_list_pages_newest_first_and_removal_is_audited(client, tokens, engine, places):
    target = {"kind": "poi", "code": "TFX-P1"}
    ids = [
        _post(client, tokens, text=f"纠错学堂{n}号门", target=target).json()["id"] for n in range(5)
    ]
    headers = bearer(tokens["dispatcher"])
    assert [a["id"] for a in client.get(ALIASES, headers=headers).json()] == ids[::-1]
    page = client.get(ALIASES, params={"limit": 2, "offset": 1}, headers=headers).json()
    assert [a["id"] for a in page] == ids[::-1][1:3]
    assert client.delete(f"{ALIASES}/{ids[0]}", headers=headers).status_code == 204
    gone = client.delete(f"{ALIASES}/{ids[0]}", headers=headers)
    assert gone.status_code == 404
    assert (gone.json()["error"]["code"], gone.json()["error"]["where"]) == (
        "alias_not_found",
        "path.alias_id",
    )
    for bad in ("0", "abc", str(2**70)):
        assert client.delete(f"{ALIASES}/{bad}", headers=headers).status_code == 422
    assert len(client.get(ALIASES, headers=headers).json()) == 4
    removed = _audit(engine, "address_alias.remove")
    assert len(removed) == 1
    assert removed[0]["entity_id"] == str(ids[0])
    assert removed[0]["details"] == {"text": "纠错学堂0号门", "target": target}


# ---- the command line -----------------------------------------------------------------------


def _wangge(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WANGGE, "gazetteer", "aliases", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "WANGGE_DATABASE_URL": database_url},
        timeout=300,
        check=False,
    )


def test_command_line_adds_lists_and_removes_aliases(database_url, engine, places):
    added = _wangge(
        database_url, "add", "纠错苑小区9幢", "--kind", "house_number", "--code", "TFX-H1"
    )
    assert added.returncode == 0, added.stderr
    assert "已保存地址别名" in added.stdout
    repeated = _wangge(
        database_url, "add", "纠错苑9幢", "--kind", "house_number", "--code", "TFX-H1"
    )
    assert repeated.returncode == 0 and "已存在" in repeated.stdout
    taken = _wangge(database_url, "add", "纠错苑9幢", "--kind", "poi", "--code", "TFX-P1")
    assert taken.returncode == 1
    assert "（TEXT）" in taken.stderr and "已是门牌 TFX-H1 的别名" in taken.stderr
    known = _wangge(database_url, "add", "纠错苑小区", "--kind", "compound", "--code", "TFX-C1")
    assert known.returncode == 0 and "未保存" in known.stdout and "无需别名" in known.stdout
    road = _wangge(database_url, "add", "淞江路", "--kind", "compound", "--code", "TFX-C1")
    assert (
        road.returncode == 1 and "（TEXT）" in road.stderr and "就是道路「淞江路」" in road.stderr
    )
    vague = _wangge(database_url, "add", "4栋", "--kind", "compound", "--code", "TFX-C1")
    assert vague.returncode == 1 and "（TEXT）" in vague.stderr and "没有地名" in vague.stderr
    missing = _wangge(database_url, "add", "纠错苑", "--kind", "compound", "--code", "NOPE")
    assert missing.returncode == 1 and "（--code）" in missing.stderr
    table = _wangge(database_url, "list")
    assert table.returncode == 0, table.stderr
    assert "纠错苑小区9幢" in table.stdout and "TFX-H1" in table.stdout
    assert table.stdout.rstrip().endswith("共 1 条")
    listed = _wangge(database_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    aliases = json.loads(listed.stdout)
    assert len(aliases) == 1
    assert aliases[0]["target"] == {"kind": "house_number", "code": "TFX-H1"}
    assert aliases[0]["created_by"] == "cli:gazetteer aliases add"
    removed = _wangge(database_url, "remove", str(aliases[0]["id"]))
    assert removed.returncode == 0, removed.stderr
    again = _wangge(database_url, "remove", str(aliases[0]["id"]))
    assert again.returncode == 1 and "没有编号为" in again.stderr
    assert json.loads(_wangge(database_url, "list", "--json").stdout) == []


# ---- finding the place, and the matcher learning the wording ----------------------------------

PLACES_URL = "/api/v1/geocode/places"


def test_places_are_found_by_name_with_their_grid(places, client, tokens):
    found = client.get(PLACES_URL, params={"q": "纠错苑", "limit": 3})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["query"] == "纠错苑"
    assert body["count"] == len(body["places"]) <= 3
    best = body["places"][0]
    assert (best["kind"], best["code"], best["name"]) == ("compound", "TFX-C1", "纠错苑")
    assert best["precision"] == "compound" and 0 < best["confidence"] <= 1
    assert best["grid"]["code"].startswith("320571005")  # the demo street's grid at its point
    school = client.get(PLACES_URL, params={"q": "纠错小学"}).json()["places"][0]
    assert (school["kind"], school["code"]) == ("poi", "TFX-P1")
    nothing = client.get(PLACES_URL, params={"q": "qqqq"}).json()
    assert (nothing["count"], nothing["places"]) == (0, [])
    assert nothing["reason"] in ("no_place", "not_found")


def test_bad_place_searches_are_refused_naming_where(places, client):
    cases = [
        ({"q": ""}, "empty_query", "query.q"),
        ({"q": "   "}, "empty_query", "query.q"),
        ({"q": "路" * 201}, "query_too_long", "query.q"),
        ({"q": "路" * 2001}, "validation_error", "query.q"),
        ({"q": "纠错苑", "limit": 0}, "validation_error", "query.limit"),
        ({"q": "纠错苑", "limit": 21}, "validation_error", "query.limit"),
        ({"q": "纠错\x00苑"}, "nul_character", "query.q"),
        ({}, "validation_error", "query.q"),
    ]
    for params, code, where in cases:
        response = client.get(PLACES_URL, params=params)
        error = response.json()["error"]
        assert (response.status_code, error["code"], error["where"]) == (422, code, where), params
    assert len(cases) == 8


def _answer_until(client, wording: str, done) -> dict:
    """/geocode/address for `wording` until `done(answer)`: the worker reloads its gazetteer when
    the alias table's revision changes (bounded; not a timing assert)."""
    answer: dict = {}
    for _ in range(150):
        answer = client.get("/api/v1/geocode/address", params={"q": wording}).json()
        if done(answer):
            break
        time.sleep(0.1)
    return answer


def test_a_saved_correction_is_what_the_matcher_answers_next_time(places, client, tokens):
    """纠错学堂 means the school: before the correction the matcher says otherwise, after it it
    answers the school (via the alias), and once the alias is removed it no longer does."""
    wording = "纠错学堂"

    def school(answer: dict) -> bool:
        return (answer.get("place") or {}).get("code") == "TFX-P1"

    before = client.get("/api/v1/geocode/address", params={"q": wording}).json()
    assert not school(before)
    saved = _post(client, tokens, text=wording, target={"kind": "poi", "code": "TFX-P1"})
    assert saved.status_code == 201, saved.text
    after = _answer_until(client, wording, school)
    assert school(after) and after["precision"] == "poi" and after["matched"] is True, after
    assert after["via_alias"] is True
    # The school's name, now that the gazetteer knows the alias's place.
    listed = client.get(ALIASES, headers=bearer(tokens["dispatcher"])).json()
    assert listed[0]["target"] == {"kind": "poi", "code": "TFX-P1", "name": "纠错小学"}
    removed = client.delete(f"{ALIASES}/{saved.json()['id']}", headers=bearer(tokens["admin"]))
    assert removed.status_code == 204
    forgotten = _answer_until(client, wording, lambda answer: not school(answer))
    assert not school(forgotten) and forgotten.get("via_alias") is not True, forgotten


def test_two_dispatchers_teaching_one_wording_at_once_get_one_alias(engine, places, client):
    """Saved concurrently for two places, one wins (created) and the other is refused (409):
    the unique normalised key decides, never the last writer."""
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def teach(code: str) -> None:
        barrier.wait()
        try:
            saved = corrections.add_alias(
                engine,
                text="老纠错厂北门",
                target_kind="poi" if code == "TFX-P1" else "compound",
                target_code=code,
                event_id=None,
                actor=f"tests:{code}",
                gazetteer=client.app.state.index_store.gazetteer,
            )
            outcomes.append(saved.created)
        except Conflict as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=teach, args=(code,)) for code in ("TFX-P1", "TFX-C1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, outcomes)) == ["True", "alias_taken"]
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM address_alias WHERE text = '老纠错厂北门'")
        ).scalar_one()
    assert stored == 1


# ---- what may not be taught (review finding 1) -----------------------------------------------

VAGUE = [
    "4栋",
    "3单元",
    "东门",
    "东门口",
    "A座",
    "4-2-301",
    "楼下",
    "第四栋",
    "湖东示范街道",
    "翠湖社区",
]


def test_wordings_without_place_words_are_refused(places, client, tokens):
    """Only a building/unit/room number, a direction or gate, or only a street or community:
    every ticket saying it would go to one place."""
    target = {"kind": "building", "code": "320571005004006015B06"}
    wrong = []
    for wording in VAGUE:
        response = _post(client, tokens, text=wording, target=target)
        error = response.json().get("error", {})
        if (response.status_code, error.get("code"), error.get("where")) != (
            422,
            "wording_too_vague",
            "body.text",
        ):
            wrong.append(f"{wording}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)
    assert len(VAGUE) == 10
    assert client.get(ALIASES, headers=bearer(tokens["admin"])).json() == []


def test_another_places_own_words_are_refused_and_the_target_itself_is_no_lesson(
    places, client, tokens
):
    """The reviewer's corrections: an official address, a POI's name or alias, a road's name —
    each would silently re-route every ticket saying it. 409 naming the place that holds it."""
    xincuiju = "320571005004006015"
    refused = [
        (
            "新翠居4栋",
            {"kind": "building", "code": f"{xincuiju}B05"},
            ("building", f"{xincuiju}B04"),
        ),
        ("星海小学", {"kind": "poi", "code": "320571005-P002"}, ("poi", "320571005-P001")),
        ("星海实验小学", {"kind": "poi", "code": "320571005-P002"}, ("poi", "320571005-P001")),
        ("淞江路", {"kind": "compound", "code": f"{xincuiju}-XQ"}, ("road", "320571005-R28")),
        # More than the compound's name, but the compound is finer than a POI: still refused.
        ("新翠居东门", {"kind": "poi", "code": "320571005-P001"}, ("compound", f"{xincuiju}-XQ")),
    ]
    for wording, target, (kind, code) in refused:
        response = _post(client, tokens, text=wording, target=target)
        assert response.status_code == 409, (wording, response.text)
        error = response.json()["error"]
        assert (error["code"], error["where"]) == ("official_name", "body.text")
        place = error["details"][0]["place"]
        assert (place["kind"], place["code"]) == (kind, code) and place["confidence"] >= 0.85
        assert place["name"] in error["message"] and wording in error["message"]
    # The target itself, found confidently: 200, nothing saved.
    same = _post(
        client, tokens, text="新翠居小区", target={"kind": "compound", "code": f"{xincuiju}-XQ"}
    )
    assert same.status_code == 200, same.text
    body = same.json()
    assert (body["id"], body["already_matches"], body["target"]["name"]) == (None, True, "新翠居")
    assert body["confidence"] >= 0.85 and "无需保存" in body["message"]
    # A finer place than the one the wording finds is a lesson: the plate at the gate.
    gate = _post(
        client,
        tokens,
        text="新翠居东门",
        target={"kind": "house_number", "code": f"{xincuiju}-MP1"},
    )
    assert gate.status_code == 201, gate.text
    stored = client.get(ALIASES, headers=bearer(tokens["admin"])).json()
    assert [a["text"] for a in stored] == ["新翠居东门"]
