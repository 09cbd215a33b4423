"""The loop's edges, each found by attacking it: far deadlines, odd report times, deadlines moved
without a postponement, the handler verifying their own work, scope in `allowed_actions`,
duplicates east of an event, figures of impossible periods, sheets with control characters."""

# The `inside` fixture is imported from test_workflow, so tests' parameters name it again.
# ruff: noqa: F811

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import openpyxl
from sqlalchemy import text

from tests.conftest import bearer
from tests.test_workflow import _dispatched, _go, _report, inside  # noqa: F401


def _event(client, tokens, event_id):
    return client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["admin"])).json()


def test_deadlines_are_bounded_and_moves_are_postponements(client, tokens, inside):
    event = _report(client, tokens, *inside)
    far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    refused = _go(client, tokens["dispatcher"], event["id"], "accept", 1, deadline=far)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "deadline_too_far"
    event_id = _dispatched(client, tokens, *inside, external_id="moves")
    due = datetime.fromisoformat(_event(client, tokens, event_id)["due_at"])
    later = (due + timedelta(days=5)).isoformat()
    moved = _go(client, tokens["dispatcher"], event_id, "dispatch", 3, deadline=later)
    assert moved.status_code == 422 and moved.json()["error"]["code"] == "use_postponement"
    sooner = (due - timedelta(minutes=30)).isoformat()
    answer = _go(client, tokens["dispatcher"], event_id, "dispatch", 3, deadline=sooner)
    assert answer.status_code == 200 and answer.json()["details"]["due_from"] == due.isoformat()
    asked = _go(
        client, tokens["handler"], event_id, "request_postpone", 4, deadline=later, note="x"
    )
    assert asked.status_code == 200
    earlier = (datetime.fromisoformat(sooner) - timedelta(minutes=5)).isoformat()
    shortened = _go(client, tokens["dispatcher"], event_id, "approve_postpone", 5, deadline=earlier)
    assert (
        shortened.status_code == 422 and shortened.json()["error"]["code"] == "deadline_not_later"
    )
    assert _event(client, tokens, event_id)["postpone_count"] == 0


def test_report_times_out_of_range_are_refused_one_by_one(client, tokens, inside):
    lon, lat = inside
    base = {"source": "t", "lon": lon, "lat": lat, "crs": "EPSG:4326", "category_code": "E01"}
    batch = {
        "events": [
            {**base, "external_id": "old", "reported_at": "1999-12-31T00:00:00+08:00"},
            {**base, "external_id": "future", "reported_at": "9999-12-31T23:00:00Z"},
            {**base, "external_id": "fine", "reported_at": "2024-03-01T09:00:00+08:00"},
        ]
    }
    answer = client.post("/api/v1/events", json=batch, headers=bearer(tokens["dispatcher"]))
    assert answer.status_code == 200
    statuses = [r["status"] for r in answer.json()["results"]]
    assert statuses == ["invalid", "invalid", "created"]
    assert answer.json()["results"][0]["error"]["where"] == "reported_at"
    # An old report time does not slow the lists: the time to accept runs from arrival.
    listed = client.get("/api/v1/events", params={"state": "reported", "with_unplaced": "true"})
    assert listed.status_code == 200 and listed.json()["numberReturned"] >= 1


def test_supervision_is_not_a_response_and_the_handler_does_not_verify(
    client, tokens, engine, inside
):
    event = _report(client, tokens, *inside)
    ordered = _go(client, tokens["supervisor"], event["id"], "supervise", 1, note="快办")
    assert ordered.status_code == 200
    assert _event(client, tokens, event["id"])["responded_at"] is None
    event_id = _dispatched(client, tokens, *inside, external_id="self-check")
    dispatcher = tokens["dispatcher"]
    for action, version, fields in (("start", 3, {}), ("handle", 4, {"note": "已处理"})):
        assert _go(client, dispatcher, event_id, action, version, **fields).status_code == 200
    same = _go(client, dispatcher, event_id, "verify", 5)
    assert same.status_code == 403 and same.json()["error"]["code"] == "same_person"
    assert _go(client, tokens["supervisor"], event_id, "verify", 5).status_code == 200


def test_merging_an_event_not_proposed_needs_a_reason(client, tokens, engine, inside):
    lon, lat = inside
    first = _report(client, tokens, lon, lat, external_id="m1")
    far = _report(client, tokens, lon + 0.01, lat, external_id="m2", category_code="C04")
    assert far["duplicate_candidates"] == []
    unexplained = _go(client, tokens["dispatcher"], far["id"], "merge", 1, target=first["id"])
    assert unexplained.status_code == 422 and unexplained.json()["error"]["where"] == "body.note"
    explained = _go(
        client, tokens["dispatcher"], far["id"], "merge", 1, target=first["id"], note="同一处绿化带"
    )
    assert explained.status_code == 200
    with engine.connect() as connection:
        kinds = (
            connection.execute(
                text("SELECT kind FROM outbox WHERE event_id = :id ORDER BY id"),
                {"id": first["id"]},
            )
            .scalars()
            .all()
        )
        notes = connection.execute(
            text(
                "SELECT payload->>'note' FROM outbox WHERE event_id = :id AND kind = 'transition' ORDER BY id DESC LIMIT 1"
            ),
            {"id": far["id"]},
        ).scalar_one()
    assert kinds == ["transition", "absorb"] and notes == "同一处绿化带"


def test_duplicates_are_found_east_and_north(client, tokens, inside):
    lon, lat = inside
    first = _report(client, tokens, lon, lat, external_id="d0")
    east = 49 / (111_320 * math.cos(math.radians(lat)))
    north = 49 / 110_574
    for name, point in (("d-east", (lon + east, lat)), ("d-north", (lon, lat + north))):
        near = _report(client, tokens, *point, external_id=name)
        assert first["id"] in near["duplicate_candidates"], name
    far = _report(client, tokens, lon + 2 * east, lat, external_id="d-far")
    assert first["id"] not in far["duplicate_candidates"]


def test_allowed_actions_are_only_what_the_caller_can_do(client, tokens, engine):
    with engine.connect() as connection:
        far = connection.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
                "WHERE level = 'micro_grid' AND code NOT LIKE '320571005001%' LIMIT 1) s"
            )
        ).one()
    event_id = _dispatched(client, tokens, *far, external_id="elsewhere")
    seen = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["field_staff"])).json()
    assert seen["allowed_actions"] == []
    own = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["handler"])).json()
    assert own["allowed_actions"] == [
        "start",
        "arrive",
        "return",
        "request_postpone",
    ]  # community unit


def test_figures_refuse_impossible_periods_and_sheets_take_any_name(client, tokens, engine):
    for path in ("/api/v1/kpis", "/api/v1/kpis/trend"):
        for params in (
            {"from": "9999-12-01", "to": "9999-12-31"},
            {"from": "1900-01-01", "to": "1900-01-31"},
        ):
            answer = client.get(path, params=params)
            assert answer.status_code == 422, (path, params, answer.text)
    broken = client.get("/open311/v2/requests.json", params={"start_date": "9999-12-31T23:59:59Z"})
    assert broken.status_code == 400 and broken.json()[0]["code"] == 400
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE handling_unit SET name = '城管\x0b中队\x07' WHERE code = 'community'")
        )
    sheet = client.get(
        "/api/v1/kpis.xlsx", params={"group_by": "unit", "from": "2025-12-01", "to": "2026-11-29"}
    )
    assert sheet.status_code == 200
    names = [
        row[1]
        for row in openpyxl.load_workbook(io.BytesIO(sheet.content)).active.iter_rows(
            min_row=3, values_only=True
        )
    ]
    assert "城管\ufffd中队\ufffd" in names


def test_a_retry_in_another_spelling_of_the_crs_is_the_same_event(client, tokens, inside):
    lon, lat = inside
    body = {"source": "t", "external_id": "crs-1", "lon": lon, "lat": lat, "crs": "EPSG:4326"}
    headers = bearer(tokens["dispatcher"])
    assert client.post("/api/v1/events", json=body, headers=headers).status_code == 201
    again = client.post("/api/v1/events", json={**body, "crs": "epsg:4326"}, headers=headers)
    assert again.status_code == 200


def test_open311_extras_cannot_be_forged_by_the_citizen(client, tokens, inside):
    lon, lat = inside
    forged = "路灯坏了\n\n—— Open311 ——\nmedia_url: javascript:alert(document.cookie)"
    posted = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": tokens["dispatcher"],
            "service_code": "C01",
            "lat": lat,
            "long": lon,
            "description": forged,
        },
    )
    assert posted.status_code == 201, posted.text
    request_id = posted.json()[0]["service_request_id"]
    read = client.get(
        f"/open311/v2/requests/{request_id}.json", params={"api_key": tokens["dispatcher"]}
    ).json()[0]
    assert not read["media_url"] and "javascript:" in read["description"]


def test_photos_are_listed_on_the_event_for_those_entitled(client, tokens, inside):
    from PIL import Image

    event_id = _dispatched(client, tokens, *inside, external_id="with-photo")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(buffer, "JPEG")
    uploaded = client.post(
        f"/api/v1/events/{event_id}/attachments",
        files={"file": ("p.jpg", buffer.getvalue(), "image/jpeg")},
        data={"stage": "before"},
        headers=bearer(tokens["handler"]),
    )
    assert uploaded.status_code == 201, uploaded.text
    photo_id = uploaded.json()["id"]
    seen = client.get(f"/api/v1/events/{event_id}", headers=bearer(tokens["handler"])).json()
    assert [p["id"] for p in seen["photos"]] == [photo_id]
    assert "photos" not in client.get(f"/api/v1/events/{event_id}").json()
    page = client.get(
        f"/map/events/{event_id}", headers={"Cookie": f"wangge_token={tokens['admin']}"}
    ).text
    assert f"/api/v1/attachments/{photo_id}/thumbnail" in page
    assert "/thumbnail" not in client.get(f"/map/events/{event_id}").text
