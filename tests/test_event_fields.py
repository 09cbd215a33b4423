"""GET /api/v1/events?fields=: only the chosen properties, never more than the caller may see."""

from __future__ import annotations

from api.db.events import EVENT_PROPERTIES
from tests.conftest import bearer

EVENT = {
    "source": "hotline_12345",
    "external_id": "fields-1",
    "category_code": "E04",
    "description": "占道经营，门口堆放杂物",
    "lon": 120.7395,
    "lat": 31.3025,
    "crs": "gcj02",
    "reporter_name": "李四",
    "reporter_phone": "13900000000",
}
OPEN = {"status": "open", "with_unplaced": "true", "limit": 5000}


def _features(client, token=None, **params):
    headers = bearer(token) if token else {}
    response = client.get("/api/v1/events", params={**OPEN, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {f["properties"]["id"]: f for f in response.json()["features"]}


def test_fields_keep_only_the_chosen_properties(client, tokens):
    dispatcher = tokens["dispatcher"]
    created = client.post("/api/v1/events", json=EVENT, headers=bearer(dispatcher)).json()
    full = _features(client, dispatcher)
    assert len(full) >= 20 and created["id"] in full
    # The list of names a caller may choose from is every property a full feature has (18).
    assert len(EVENT_PROPERTIES) == 18
    assert all(set(f["properties"]) == set(EVENT_PROPERTIES) for f in full.values())

    chosen = ("status", "description", "due_at", "supervised")
    slim = _features(client, dispatcher, fields=" status,description,due_at,supervised,status")
    assert slim.keys() == full.keys()  # the same events, in the same pages
    for event_id, feature in slim.items():
        properties = feature["properties"]
        assert len(properties) == 5 and set(properties) == {"id", *chosen}
        assert properties == {k: full[event_id]["properties"][k] for k in ("id", *chosen)}
        assert feature["id"] == str(event_id) and feature["type"] == "Feature"
        whole = full[event_id]["geometry"]
        if whole is None:  # an unplaced event stays unplaced
            assert feature["geometry"] is None
            continue
        x, y = feature["geometry"]["coordinates"]
        assert (x, y) == (round(x, 6), round(y, 6))
        assert abs(x - whole["coordinates"][0]) <= 5e-7 and abs(y - whole["coordinates"][1]) <= 5e-7
    assert slim[created["id"]]["properties"]["description"] == EVENT["description"]

    # Nothing chosen: the id and the geometry only.
    bare = _features(client, dispatcher, fields="")
    assert bare.keys() == full.keys()
    assert all(list(f["properties"]) == ["id"] for f in bare.values())

    # With another datum and a warning filter the selection holds.
    shifted = client.get(
        "/api/v1/events",
        params={"out_crs": "gcj02", "fields": "warning", "warning": "red,yellow"},
        headers=bearer(dispatcher),
    ).json()
    assert shifted["numberReturned"] >= 1
    assert all(set(f["properties"]) == {"id", "warning"} for f in shifted["features"])
    assert all(f["properties"]["warning"] in ("red", "yellow") for f in shifted["features"])


def test_unknown_field_is_422_naming_query_fields(client, tokens):
    for fields in ("status,reporter_phone", "geometry", "address", "STATUS", "status;description"):
        response = client.get(
            "/api/v1/events", params={"fields": fields}, headers=bearer(tokens["dispatcher"])
        )
        assert response.status_code == 422, (fields, response.text)
        error = response.json()["error"]
        assert error["code"] == "unknown_fields" and error["where"] == "query.fields"
        assert "不认识" in error["message"]
    too_long = client.get("/api/v1/events", params={"fields": "status," * 100})
    assert too_long.status_code == 422


def test_choosing_a_personal_field_never_widens_access(client, tokens):
    created = client.post("/api/v1/events", json=EVENT, headers=bearer(tokens["admin"])).json()
    entitled = _features(client, tokens["dispatcher"], fields="description,status")
    assert entitled[created["id"]]["properties"]["description"] == EVENT["description"]
    described = [i for i, f in entitled.items() if f["properties"].get("description")]
    assert len(described) >= 2

    for token in (None, tokens["viewer"]):
        asked = _features(client, token, fields="description,status,grid_code,unit_code")
        assert asked.keys() == entitled.keys()
        assert all("description" not in f["properties"] for f in asked.values())
        assert all(f["properties"]["status"] for f in asked.values())

    # Scoped roles: exactly the events the full list shows them the text of, no more.
    for role in ("field_staff", "handler"):
        full = _features(client, tokens[role])
        slim = _features(client, tokens[role], fields="description")
        shown = {i for i, f in full.items() if "description" in f["properties"]}
        assert {i for i, f in slim.items() if "description" in f["properties"]} == shown
        assert len(shown) < len(described)
