"""Monitoring-point alerts (监控点告警) become events at the point, idempotently."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conftest import bearer

SENSOR = "SENSOR-WATER-01"


@pytest.fixture
def camera(engine) -> dict:
    """A demo camera, with the codes of the grids that cover it."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT m.code, ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat, "
                    "array_agg(g.code) AS grids FROM monitoring_point m "
                    "JOIN grid g ON ST_Covers(g.geom, m.geom) WHERE m.kind = 'camera' "
                    "GROUP BY m.code, m.geom ORDER BY m.code LIMIT 1"
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


@pytest.fixture
def sensor(engine, camera) -> str:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO monitoring_point (code, name, kind, geom) VALUES "
                "(:code, '积水传感器', 'sensor', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            ),
            {"code": SENSOR, "lon": camera["lon"], "lat": camera["lat"]},
        )
    return SENSOR


def _alert(client, token, code, **body):
    return client.post(f"/api/v1/points/{code}/alerts", json=body, headers=bearer(token))


def test_a_camera_alert_becomes_an_event_at_the_camera(client, tokens, engine, camera):
    body = {"alert_id": "A-1001", "category_code": "E01", "at": "2024-09-20T10:30:00+08:00"}
    answer = _alert(client, tokens["dispatcher"], camera["code"], **body, description="占道经营")
    assert answer.status_code == 201, answer.text
    event = answer.json()
    assert (event["source"], event["external_id"]) == ("video", f"{camera['code']}:A-1001")
    assert event["lon"] == pytest.approx(camera["lon"], abs=1e-9)
    assert event["lat"] == pytest.approx(camera["lat"], abs=1e-9)
    assert event["raw"]["crs"] == "EPSG:4326"
    assert event["reported_at"] == "2024-09-20T02:30:00+00:00"
    assert event["status"] == "reported" and event["description"] == "占道经营"
    path = [step["code"] for step in event["assignment"]["path"]]
    assert path[-1] == event["grid_code"] and set(path) <= set(camera["grids"])
    # The platform retries: the same event, not a second one.
    again = _alert(client, tokens["admin"], camera["code"], **body, description="占道经营")
    assert again.status_code == 200 and again.json()["id"] == event["id"]
    # Another alert under the same id is refused, never merged.
    other = _alert(client, tokens["dispatcher"], camera["code"], **body, description="违章停车")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "external_id_conflict"
    assert other.json()["error"]["where"] == "body.alert_id"
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM event WHERE source = 'video' AND external_id = :id"),
            {"id": f"{camera['code']}:A-1001"},
        ).scalar()
    assert stored == 1


def test_the_source_follows_the_point_or_the_alert(client, tokens, camera, sensor):
    sensed = _alert(client, tokens["dispatcher"], sensor, alert_id="S-1")
    assert sensed.status_code == 201 and sensed.json()["source"] == "sensor"
    overridden = _alert(client, tokens["dispatcher"], camera["code"], alert_id="X-1", kind="sensor")
    assert overridden.status_code == 201 and overridden.json()["source"] == "sensor"
    # The same alert id on two points: two events.
    elsewhere = _alert(client, tokens["dispatcher"], sensor, alert_id="X-1")
    assert elsewhere.status_code == 201 and elsewhere.json()["id"] != overridden.json()["id"]


def test_bad_alerts_answer_4xx_naming_where(client, tokens, camera):
    code = camera["code"]
    cases = [
        ("NO-SUCH-POINT", {"alert_id": "1"}, 404, "point_not_found", "path.code"),
        (
            code,
            {"alert_id": "1", "category_code": "ZZ99"},
            422,
            "unknown_category",
            "body.category_code",
        ),
        (code, {}, 422, "validation_error", "body.alert_id"),
        (code, {"alert_id": "x" * 64}, 422, "validation_error", "body.alert_id"),
        (code, {"alert_id": "a\nb"}, 422, "validation_error", "body.alert_id"),
        (code, {"alert_id": "1", "kind": "radar"}, 422, "validation_error", "body.kind"),
        (code, {"alert_id": "1", "at": "yesterday"}, 422, "validation_error", "body.at"),
        (code, {"alert_id": "1\u0000"}, 422, "nul_character", "body"),
    ]
    wrong = []
    for point, body, status, error_code, where in cases:
        answer = _alert(client, tokens["dispatcher"], point, **body)
        error = answer.json().get("error", {})
        if (answer.status_code, error.get("code"), error.get("where")) != (
            status,
            error_code,
            where,
        ):
            wrong.append(f"{body}: {answer.status_code} {error}")
    assert not wrong, "\n".join(wrong)
    assert len(cases) == 8


def test_only_event_intake_roles_post_alerts(client, tokens, camera):
    wrong = []
    for role in tokens:
        answer = _alert(client, tokens[role], camera["code"], alert_id=f"R-{role}")
        expected = 201 if role in ("admin", "dispatcher") else 403
        if answer.status_code != expected:
            wrong.append(f"{role}: {answer.status_code}")
    anonymous = client.post(f"/api/v1/points/{camera['code']}/alerts", json={"alert_id": "anon"})
    assert anonymous.status_code == 401
    assert not wrong, "\n".join(wrong)
    assert len(tokens) == 7
