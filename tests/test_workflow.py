"""The event loop end to end through the API: every step, the checks, and nothing changed on error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from api.workflow.machine import ACTIONS, State, allowed_actions
from tests.conftest import bearer

FIELD_GRID = "320571005001001"  # the field_staff token's grid


@pytest.fixture
def inside(engine) -> tuple[float, float]:
    """A WGS84 point inside the field_staff token's grid."""
    with engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid "
                "WHERE code = :code) s"
            ),
            {"code": FIELD_GRID},
        ).one()
    return lon, lat


def _report(client, tokens, lon, lat, **overrides):
    body = {
        "source": "hotline_12345",
        "external_id": "loop-1",
        "category_code": "E01",
        "description": "楼下垃圾堆放",
        "lon": lon,
        "lat": lat,
        "crs": "EPSG:4326",
        "reporter_name": "王五",
        "reporter_phone": "13800000000",
    }
    body.update(overrides)
    answer = client.post("/api/v1/events", json=body, headers=bearer(tokens["dispatcher"]))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _go(client, token, event_id, action, version, **fields):
    return client.post(
        f"/api/v1/events/{event_id}/transitions",
        json={"action": action, "version": version, **fields},
        headers=bearer(token),
    )


def _counts(engine, event_id):
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT (SELECT version FROM event WHERE id = :id), "
                "(SELECT count(*) FROM event_history WHERE event_id = :id), "
                "(SELECT count(*) FROM outbox WHERE event_id = :id)"
            ),
            {"id": event_id},
        ).one()


def test_a_ticket_travels_the_whole_loop(client, tokens, engine, inside):
    event = _report(client, tokens, *inside)
    assert event["status"] == "reported" and event["tier"] == 3 and event["version"] == 1
    assert event["proposal"]["tier"] == 3 and event["proposal"]["unit_code"] == "community"
    assert event["proposal"]["assignee_id"] is not None  # the grid's full-time worker
    assert event["allowed_actions"] == ["accept", "reject", "cancel", "merge"]
    event_id = event["id"]
    steps = [
        ("dispatcher", "accept", {}),
        ("dispatcher", "dispatch", {}),
        ("handler", "start", {}),
        (
            "handler",
            "handle",
            {"note": "已清运", "lon": inside[0], "lat": inside[1], "crs": "EPSG:4326"},
        ),
        ("field_staff", "verify", {}),
        ("dispatcher", "evaluate", {"satisfaction": 5}),
    ]
    version = 1
    for role, action, fields in steps:
        answer = _go(client, tokens[role], event_id, action, version, **fields)
        assert answer.status_code == 200, (action, answer.text)
        assert answer.json()["version"] == version + 1
        version += 1
    final = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["admin"])).json()
    assert final["status"] == "evaluated" and final["satisfaction"] == 5
    assert final["unit_code"] == "community"  # tier 3: the community's unit, proposed by the rules
    assert final["assignee_id"] is not None  # and the grid's full-time worker
    assert final["handling_hours"] is not None and final["warning"] is None
    actions = [h["action"] for h in final["history"]]
    assert actions == ["report", "accept", "dispatch", "start", "handle", "verify", "evaluate"]
    handled = final["history"][4]
    assert handled["note"] == "已清运" and handled["lon"] == pytest.approx(inside[0])
    assert _counts(engine, event_id) == (7, 7, 7)  # version, history lines, notifications


def test_bad_transitions_change_nothing(client, tokens, engine, inside):
    event = _report(client, tokens, *inside)
    event_id = event["id"]
    before = _counts(engine, event_id)
    cases = [
        (tokens["dispatcher"], {"action": "fly", "version": 1}, 422, "unknown_action"),
        (tokens["dispatcher"], {"action": "accept", "version": 7}, 409, "stale_version"),
        (tokens["dispatcher"], {"action": "verify", "version": 1}, 409, "illegal_transition"),
        (tokens["viewer"], {"action": "accept", "version": 1}, 403, "insufficient_role"),
        (tokens["handler"], {"action": "accept", "version": 1}, 403, "insufficient_role"),
        (tokens["dispatcher"], {"action": "reject", "version": 1}, 422, "missing_field"),
        (
            tokens["dispatcher"],
            {"action": "accept", "version": 1, "deadline": "2020-01-01T00:00:00Z"},
            422,
            "deadline_in_past",
        ),
        (
            tokens["dispatcher"],
            {"action": "accept", "version": 1, "category_code": "ZZZ"},
            422,
            "unknown_category",
        ),
    ]
    for token, body, status, code in cases:
        answer = client.post(
            f"/api/v1/events/{event_id}/transitions", json=body, headers=bearer(token)
        )
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"]["code"] == code, body
    assert len(cases) == 8
    illegal = _go(client, tokens["dispatcher"], event_id, "verify", 1).json()["error"]
    assert illegal["details"][0]["allowed"] == ["accept", "reject", "cancel", "merge"]
    anonymous = client.post(
        f"/api/v1/events/{event_id}/transitions", json={"action": "accept", "version": 1}
    )
    assert anonymous.status_code == 401
    assert _counts(engine, event_id) == before


def test_finished_events_take_no_more_steps(client, tokens, inside):
    first = _report(client, tokens, *inside)
    second = _report(client, tokens, *inside, external_id="loop-2")
    assert second["duplicate_candidates"] == [first["id"]]  # same category, same place
    merged = _go(client, tokens["dispatcher"], second["id"], "merge", 1, target=first["id"])
    assert merged.status_code == 200, merged.text
    for action in ("accept", "cancel", "supervise"):
        refused = _go(client, tokens["admin"], second["id"], action, 2, note="x")
        assert refused.status_code == 409 and refused.json()["error"]["details"][0]["allowed"] == []
    original = client.get(f"/api/v1/events/{first['id']}", headers=bearer(tokens["admin"])).json()
    assert [h["action"] for h in original["history"]] == ["report", "absorb"]
    self_merge = _go(client, tokens["dispatcher"], first["id"], "merge", 1, target=first["id"])
    assert self_merge.status_code == 422


def _dispatched(client, tokens, lon, lat, **overrides):
    event = _report(client, tokens, lon, lat, **overrides)
    event_id = event["id"]
    assert _go(client, tokens["dispatcher"], event_id, "accept", 1).status_code == 200
    answer = _go(client, tokens["dispatcher"], event_id, "dispatch", 2)
    assert answer.status_code == 200, answer.text
    return event_id


def test_postponement_rework_and_supervision(client, tokens, engine, inside):
    event_id = _dispatched(client, tokens, *inside)
    before = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["admin"])).json()
    later = (datetime.fromisoformat(before["due_at"]) + timedelta(days=3)).isoformat()
    earlier = (datetime.fromisoformat(before["due_at"]) - timedelta(minutes=1)).isoformat()
    assert _go(client, tokens["handler"], event_id, "start", 3).status_code == 200
    not_later = _go(
        client, tokens["handler"], event_id, "request_postpone", 4, deadline=earlier, note="等材料"
    )
    assert (
        not_later.status_code == 422 and not_later.json()["error"]["code"] == "deadline_not_later"
    )
    asked = _go(
        client, tokens["handler"], event_id, "request_postpone", 4, deadline=later, note="等材料"
    )
    assert asked.status_code == 200, asked.text
    again = _go(
        client, tokens["handler"], event_id, "request_postpone", 5, deadline=later, note="x"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "postpone_pending"
    assert _go(client, tokens["handler"], event_id, "approve_postpone", 5).status_code == 403
    assert _go(client, tokens["dispatcher"], event_id, "approve_postpone", 5).status_code == 200
    ordered = _go(
        client, tokens["supervisor"], event_id, "supervise", 6, note="群众反映强烈，限期办结"
    )
    assert ordered.status_code == 200, ordered.text
    assert _go(client, tokens["handler"], event_id, "handle", 7, note="已处理").status_code == 200
    assert (
        _go(client, tokens["supervisor"], event_id, "rework", 8, note="仍有垃圾").status_code == 200
    )
    event = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["admin"])).json()
    assert event["status"] == "processing" and event["rework_count"] == 1
    assert (
        event["postpone_count"] == 1
        and event["due_at"] == datetime.fromisoformat(later).astimezone(UTC).isoformat()
    )
    assert (
        len(event["supervisions"]) == 1
        and event["supervisions"][0]["reason"] == "群众反映强烈，限期办结"
    )
    # Citizens see none of it: no history notes, no supervision reasons.
    public = client.get(f"/api/v1/events/{event_id}").json()
    assert public["supervisions"][0]["reason"] is None and "reporter" not in public
    assert all(h["note"] is None for h in public["history"])


def test_scope_of_handlers_and_field_staff(client, tokens, engine, inside):
    # Outside the field worker's grid: another community's grid.
    with engine.connect() as connection:
        far = connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
                "WHERE level = 'micro_grid' AND code NOT LIKE '320571005001%' LIMIT 1) s"
            )
        ).one()
    event_id = _dispatched(client, tokens, *far, external_id="far-1")
    refused = _go(client, tokens["field_staff"], event_id, "start", 3)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "out_of_scope"
    # Escalated to the street, dispatched to the street's unit: the community handler is out.
    assert (
        _go(client, tokens["dispatcher"], event_id, "escalate", 3, note="需执法").status_code == 200
    )
    answer = _go(client, tokens["dispatcher"], event_id, "dispatch", 4)
    assert answer.json()["details"]["unit"] == "street_office"
    refused = _go(client, tokens["handler"], event_id, "start", 5)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "out_of_scope"
    # The handler of the community unit sees the citizen's text only of its own events.
    own = _dispatched(client, tokens, *inside, external_id="own-1")
    seen = client.get(f"/api/v1/events/{own}", headers=bearer(tokens["handler"])).json()
    assert seen["reporter"]["phone"] == "13800000000" and "staff" not in seen
    unseen = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["handler"])).json()
    assert "reporter" not in unseen and "description" not in unseen


def test_state_machine_table_is_complete():
    """Every state is reachable and every open state has a way out; finished ones none (but evaluate)."""
    reachable = {State.reported}
    for action in ACTIONS.values():
        if action.target is not None:
            reachable.add(action.target)
    assert reachable == set(State)
    assert len(ACTIONS) == 17
    for state in (State.rejected, State.evaluated, State.cancelled, State.merged):
        assert allowed_actions(state) == []
    assert allowed_actions(State.closed) == ["evaluate"]


def test_units_and_rules_are_data_that_admins_change(client, tokens, inside):
    admin = bearer(tokens["admin"])
    community = "320571005001"
    unit = {"name": "园区城管一中队", "kind": "chengguan", "tier": 1, "areas": [community]}
    assert (
        client.put(
            "/api/v1/units/cg-1", json=unit, headers=bearer(tokens["dispatcher"])
        ).status_code
        == 403
    )
    bad = client.put("/api/v1/units/cg-1", json={**unit, "areas": ["999"]}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["where"] == "body.areas"
    assert client.put("/api/v1/units/cg-1", json=unit, headers=admin).status_code == 201
    assert client.put("/api/v1/units/cg-1", json=unit, headers=admin).status_code == 200
    assert "cg-1" in {u["code"] for u in client.get("/api/v1/units").json()}
    # An event in that community escalated to the district goes to the unit answering for it,
    # not to the district-wide one.
    event_id = _dispatched(client, tokens, *inside, external_id="cg-event", category_code="E04")
    assert (
        _go(
            client, tokens["dispatcher"], event_id, "escalate", 3, note="需执法", tier=1
        ).status_code
        == 200
    )
    answer = _go(client, tokens["dispatcher"], event_id, "dispatch", 4).json()
    assert answer["details"]["unit"] == "cg-1" and answer["details"]["proposed_unit"] == "cg-1"
    # A faster rule for E01 at tier 3: one working hour to accept.
    rule = {
        "category_code": "E01",
        "tier": 3,
        "unit_kind": "community",
        "accept_hours": 1,
        "handle_amount": 2,
        "handle_unit": "hours",
    }
    assert client.put("/api/v1/dispatch-rules", json=rule, headers=admin).status_code == 200
    rules = client.get("/api/v1/dispatch-rules").json()
    assert sum(1 for r in rules if r["category_code"] == "E01" and r["tier"] == 3) == 1
    unknown = client.put(
        "/api/v1/dispatch-rules", json={**rule, "category_code": "ZZ"}, headers=admin
    )
    assert unknown.status_code == 422
