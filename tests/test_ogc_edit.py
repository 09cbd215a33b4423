"""OGC API – Features Part 4 on a draft's grids (`/ogc/collections/drafts-{id}-grids/items`):
create, replace, update (merge patch) and delete through the drafts API's edits, the draft
version as If-Match / draft_version (428, 412), bad input refused with nothing written, roles,
OPTIONS/Allow, and OWSLib (a published client) inserting, updating and deleting in a draft that
is then published and answers lookups."""

from __future__ import annotations

import json
import time

import pytest
import requests
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.ogc.transactions import CONFORMANCE
from tests.conftest import bearer

COMMUNITY = "320571005001"
GRID = COMMUNITY + "001"  # a grid with micro-grids
GRID_LEVEL_ERRORS = ("overlaps", "gaps", "invalid_edges", "outside_parent", "invalid_geometries")
GEOJSON = {"Content-Type": "application/geo+json"}


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


@pytest.fixture
def draft(client, planner):
    return client.post("/api/v1/drafts", json={"name": "OGC 编辑"}, headers=planner).json()


def _items(draft_id: int) -> str:
    return f"/ogc/collections/drafts-{draft_id}-grids/items"


def _tag(draft_id: int, version: int) -> dict[str, str]:
    return {"If-Match": f'"draft-{draft_id}-v{version}"'}


def _shape(geojson):
    return shapely.from_geojson(json.dumps(geojson))


def _geojson(shape):
    return json.loads(shapely.to_geojson(shape))


def _grids(client, generation, **params):
    features = client.get("/api/v1/grids", params={"generation": generation, **params}).json()[
        "features"
    ]
    return {f["properties"]["code"]: (f["properties"], _shape(f["geometry"])) for f in features}


def _neighbours(grids):
    """Two grids of one parent sharing a long edge."""
    items = sorted(grids.items())
    for code, (props, shape) in items:
        for other, (other_props, other_shape) in items:
            if (
                other > code
                and props["parent_code"] == other_props["parent_code"]
                and shape.intersection(other_shape).length > 5e-4
            ):
                return code, other
    raise AssertionError("no neighbours")


def _swapped(shape):
    """The same shape, latitude (northing) first."""
    return shapely.transform(shape, lambda xy: xy[:, ::-1])


def _feature(shape, **properties):
    return {"type": "Feature", "geometry": _geojson(shape), "properties": properties}


def _state(engine, draft_id):
    """The draft's version, and every row of its generation (geometry as a digest)."""
    with engine.connect() as connection:
        version, generation = connection.execute(
            text("SELECT version, generation_id FROM draft WHERE id = :id"), {"id": draft_id}
        ).one()
        rows = connection.execute(
            text(
                "SELECT code, name, kind, parent_code, households, population, "
                "md5(ST_AsBinary(geom)) FROM grid WHERE generation_low <= :g "
                "AND generation_high >= :g ORDER BY code"
            ),
            {"g": generation},
        ).all()
    return version, [tuple(r) for r in rows]


def _row(engine, generation, code):
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT name, kind, parent_code, households, population, ST_AsBinary(geom) AS wkb "
                "FROM grid WHERE code = :c AND generation_low <= :g AND generation_high >= :g"
            ),
            {"c": code, "g": generation},
        ).first()


def _refused(response, status: int, code: str, where: str | None = None) -> dict:
    """The OGC exception JSON (code, description, status), with our `error` object too."""
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["status"], body["error"]["code"]) == (code, status, code), body
    assert body["description"] == body["error"]["message"]
    if where is not None:
        assert body["where"] == where, body
    return body["error"]


def _coverage_errors(client, planner, generation):
    check = client.post(
        "/api/v1/coverage/checks", json={"generation": generation}, headers=planner
    ).json()
    return {kind: [f["message"] for f in check[kind]] for kind in GRID_LEVEL_ERRORS if check[kind]}


def test_conformance_declares_part4_when_the_writes_are_served(client):
    assert CONFORMANCE == [
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    ]
    declared = client.get("/ogc/conformance").json()["conformsTo"]
    assert [c for c in declared if "ogcapi-features-4" in c] == CONFORMANCE


def test_create_replace_update_delete_one_draft_version_each(client, planner, draft, engine):
    draft_id, generation = draft["id"], draft["generation_id"]
    active_before = _state(engine, draft_id)[1]  # the draft starts as the active generation's copy
    grids = _grids(client, generation, level="micro_grid", parent=GRID)
    a, b = _neighbours(grids)
    (props_a, shape_a), (_, shape_b) = grids[a], grids[b]
    parent = props_a["parent_code"]

    # POST: a micro-grid across the shared edge; both neighbours give up what it covers.
    across = shape_a.intersection(shape_b).centroid.buffer(1e-4, quad_segs=2)
    created = client.post(
        _items(draft_id),
        headers={**planner, **GEOJSON, **_tag(draft_id, 0)},
        json=_feature(across, name="新建小区", level="micro_grid", parent_code=parent),
    )
    assert created.status_code == 201, created.text
    new = created.json()["code"]
    assert new.startswith(parent) and created.json()["created"] == [new]
    assert created.headers["Location"].endswith(f"{_items(draft_id)}/{new}")
    assert created.headers["ETag"] == f'"draft-{draft_id}-v1"'
    row = _row(engine, generation, new)
    assert row.name == "新建小区" and row.parent_code == parent
    assert shapely.hausdorff_distance(shapely.from_wkb(bytes(row.wkb)), across) < 1e-6
    assert _row(engine, 1, new) is None  # never in the active generation
    read = client.get(f"{_items(draft_id)}/{new}", headers=planner)  # the OGC read side
    assert read.status_code == 200 and read.json()["properties"]["name"] == "新建小区"
    diff = client.get(f"/api/v1/drafts/{draft_id}/diff").json()
    assert new in json.dumps(diff, ensure_ascii=False)

    # PUT: a new name and counts (the same outline, as a client round-trips it).
    replaced = client.put(
        f"{_items(draft_id)}/{new}",
        headers={**planner, **GEOJSON, **_tag(draft_id, 1)},
        json=_feature(
            across,
            name="新建小区（更名）",
            level="micro_grid",
            kind="other",
            parent_code=parent,
            households=12,
            population=30,
            level_label="微网格",
            generation=generation,
        ),
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["ETag"] == f'"draft-{draft_id}-v2"'
    row = _row(engine, generation, new)
    assert (row.name, row.households, row.population) == ("新建小区（更名）", 12, 30)

    # PATCH (merge patch): null clears, absent stays; draft_version in the body.
    patched = client.patch(
        f"{_items(draft_id)}/{new}",
        headers={**planner, "Content-Type": "application/merge-patch+json"},
        content=json.dumps({"properties": {"households": None}, "draft_version": 2}),
    )
    assert patched.status_code == 200, patched.text
    row = _row(engine, generation, new)
    assert (row.name, row.households, row.population) == ("新建小区（更名）", None, 30)

    # PATCH geometry only: a reshape — a takes a strip of b, the pair's area is conserved.
    shape_a = shapely.from_wkb(bytes(_row(engine, generation, a).wkb))
    shape_b = shapely.from_wkb(bytes(_row(engine, generation, b).wkb))
    strip = shape_b.intersection(shape_a.buffer(2e-4, join_style="mitre"))
    reshaped = client.patch(
        f"{_items(draft_id)}/{a}",
        headers={**planner, **_tag(draft_id, 3)},
        json={"geometry": _geojson(shape_a.union(strip))},
    )
    assert reshaped.status_code == 200, reshaped.text
    assert {a, b} <= {t["code"] for t in reshaped.json()["touched"]}
    after_a = shapely.from_wkb(bytes(_row(engine, generation, a).wkb))
    after_b = shapely.from_wkb(bytes(_row(engine, generation, b).wkb))
    assert after_a.area > shape_a.area and after_b.area < shape_b.area
    assert after_a.area + after_b.area == pytest.approx(shape_a.area + shape_b.area, rel=1e-9)
    assert _coverage_errors(client, planner, generation) == {}

    # DELETE: gone from the draft, and from the diff.
    deleted = client.delete(f"{_items(draft_id)}/{new}", headers={**planner, **_tag(draft_id, 4)})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["removed"] == [new] and deleted.headers["ETag"].endswith('-v5"')
    assert _row(engine, generation, new) is None
    _refused(client.get(f"{_items(draft_id)}/{new}", headers=planner), 404, "feature_not_found")
    stats = client.get(f"/api/v1/drafts/{draft_id}/stats", params={"codes": [a, b]}).json()
    assert stats["version"] == 5 and {g["code"] for g in stats["grids"]} == {a, b}

    log = client.get(f"/api/v1/drafts/{draft_id}").json()["edits"]
    assert [e["operation"] for e in reversed(log)] == [
        "create",
        "replace",
        "update",
        "update",
        "delete",
    ]
    with engine.connect() as connection:
        active = connection.execute(
            text(
                "SELECT code, name, kind, parent_code, households, population, "
                "md5(ST_AsBinary(geom)) FROM grid WHERE generation_low <= 1 "
                "AND generation_high >= 1 ORDER BY code"
            )
        ).all()
    assert [tuple(r) for r in active] == active_before  # the active generation never changed


def test_the_draft_version_is_required_and_checked(client, planner, draft, engine, tokens):
    draft_id, generation = draft["id"], draft["generation_id"]
    grids = _grids(client, generation, level="micro_grid", parent=GRID)
    code = sorted(grids)[0]
    item = f"{_items(draft_id)}/{code}"
    rename = {"properties": {"name": "改名"}}
    before = _state(engine, draft_id)

    assert client.patch(item, headers=planner, json=rename).status_code == 428
    _refused(client.patch(item, headers=planner, json=rename), 428, "version_required")
    _refused(client.delete(item, headers={**planner, "If-Match": "*"}), 428, "version_required")
    feature = _feature(grids[code][1], name="改名", level="micro_grid")
    _refused(client.put(item, headers=planner, json=feature), 428, "version_required")
    _refused(client.post(_items(draft_id), headers=planner, json=feature), 428, "version_required")
    stale = _refused(
        client.patch(item, headers={**planner, **_tag(draft_id, 7)}, json=rename),
        412,
        "stale_draft",
        "header.If-Match",
    )
    assert stale["details"] == [{"current_version": 0}]
    for refused in (
        {"If-Match": f'W/"draft-{draft_id}-v0"'},  # a weak tag never matches
        {"If-Match": f'"draft-{draft_id + 1}-v0"'},  # another draft's tag
        {"If-Match": '"nonsense"'},
    ):
        _refused(
            client.patch(item, headers={**planner, **refused}, json=rename), 412, "stale_draft"
        )
    _refused(
        client.patch(item, headers=planner, json={**rename, "draft_version": 3}),
        412,
        "stale_draft",
        "body.draft_version",
    )
    _refused(
        client.patch(item, headers=planner, json={**rename, "draft_version": "0"}),
        422,
        "invalid_version",
    )
    _refused(
        client.delete(item, headers=planner, params={"draft_version": 2}),
        412,
        "stale_draft",
        "query.draft_version",
    )
    assert _state(engine, draft_id) == before  # nothing written

    # Accepted: a list naming the current tag, a bare version, the read side's revision.
    listed = client.patch(
        item,
        headers={**planner, "If-Match": f'"draft-{draft_id}-v9", "draft-{draft_id}-v0"'},
        json=rename,
    )
    assert listed.status_code == 200 and listed.headers["ETag"] == f'"draft-{draft_id}-v1"'
    bare = client.patch(item, headers={**planner, "If-Match": '"1"'}, json=rename)
    assert bare.status_code == 200
    revision = client.patch(
        item, headers={**planner, "If-Match": f'"d{draft_id}.{generation}.2"'}, json=rename
    )
    assert revision.status_code == 200 and _state(engine, draft_id)[0] == 3

    # A colleague saved first: the second writer at the same version gets 412.
    first = client.patch(item, headers={**planner, **_tag(draft_id, 3)}, json=rename)
    second = client.patch(
        item, headers={**bearer(tokens["admin"]), **_tag(draft_id, 3)}, json=rename
    )
    assert first.status_code == 200 and second.status_code == 412

    # Read, then write with the ETag the read gave: the write lands on the version read, once.
    read = client.get(item, headers=planner)
    etag = read.headers["ETag"]
    assert read.status_code == 200 and etag.startswith(f'"d{draft_id}.{generation}.4-')
    assert client.patch(item, headers={**planner, "If-Match": etag}, json=rename).status_code == 200
    again = client.patch(item, headers={**planner, "If-Match": etag}, json=rename)
    assert again.status_code == 412 and _state(engine, draft_id)[0] == 5
    assert client.get(item, headers=planner).headers["ETag"] != etag


def test_bad_input_is_refused_and_nothing_is_written(client, planner, draft, engine):
    draft_id, generation = draft["id"], draft["generation_id"]
    grids = _grids(client, generation, level="micro_grid", parent=GRID)
    code = sorted(grids)[0]
    props, shape = grids[code]
    parent = props["parent_code"]
    inside = shape.centroid.buffer(5e-5, quad_segs=2)
    far_away = shapely.affinity.translate(inside, xoff=0.5)
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    good = {"name": "新", "level": "micro_grid", "parent_code": parent}
    lat_lon = _swapped(inside)
    items, item = _items(draft_id), f"{_items(draft_id)}/{code}"
    headers = {**planner, **_tag(draft_id, 0)}
    before = _state(engine, draft_id)

    cases = [
        ("post", items, {"json": _feature(far_away, **good)}, 422, "outside_parent"),
        (
            "post",
            items,
            {"json": _feature(inside, **{**good, "level": "block"})},
            422,
            "unknown_level",
            "body.properties.level",
        ),
        (
            "post",
            items,
            {"json": {**_feature(inside, **good), "geometry": bowtie}},
            422,
            "invalid_geometry",
            "body.geometry",
        ),
        (
            "post",
            items,
            {"json": _feature(shapely.Point(120.73, 31.3), **good)},
            422,
            "invalid_geometry",
            "body.geometry",
        ),
        (
            "post",
            items,
            {"json": _feature(lat_lon, **good)},
            422,
            "invalid_geometry",
            "body.geometry",
        ),  # latitude first without saying so
        (
            "post",
            items,
            {"json": _feature(inside, **good, colour="红")},
            422,
            "unknown_property",
            "body.properties.colour",
        ),
        (
            "post",
            items,
            {"json": _feature(inside, **good, households=-1)},
            422,
            "invalid_property",
            "body.properties.households",
        ),
        (
            "post",
            items,
            {"json": _feature(inside, **{**good, "kind": "castle"})},
            422,
            "unknown_kind",
            "body.properties.kind",
        ),
        (
            "post",
            items,
            {"json": {"type": "FeatureCollection", "features": []}},
            422,
            "invalid_feature",
            "body.type",
        ),
        (
            "post",
            items,
            {"json": {**_feature(inside, **good), "crs": {"type": "name"}}},
            422,
            "unknown_crs",
            "body.crs",
        ),
        (
            "post",
            items,
            {
                "json": _feature(inside, **good),
                "headers": {"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/3857>"},
            },
            422,
            "unknown_crs",
            "header.Content-Crs",
        ),
        (
            "post",
            items,
            {"content": b"<Feature/>", "headers": {"Content-Type": "text/xml"}},
            415,
            "unsupported_media_type",
        ),
        ("post", items, {"content": b"{not json", "headers": GEOJSON}, 400, "unreadable_body"),
        ("put", item, {"json": _feature(shape, name="x", level="grid")}, 422, "level_immutable"),
        (
            "put",
            item,
            {"json": _feature(shape, level="micro_grid")},
            422,
            "invalid_property",
            "body.properties.name",
        ),
        (
            "put",
            f"{items}/{GRID}999",
            {"json": _feature(shape, name="x")},
            404,
            "feature_not_found",
        ),
        ("patch", item, {"json": {"properties": {"name": None}}}, 422, "invalid_property"),
        ("patch", item, {"json": {"geometry": None}}, 422, "invalid_geometry"),
        ("patch", item, {"json": {}}, 422, "nothing_to_change"),
        ("patch", item, {"json": {"colour": 1}}, 422, "unknown_property", "body.colour"),
        (
            "patch",
            item,
            {"json": {"properties": {"parent_code": COMMUNITY + "002"}}},
            422,
            "outside_parent",
            "body.properties.parent_code",
        ),
        ("delete", f"{items}/{GRID}", {}, 422, "has_children", "query.with_children"),
        (
            "post",
            "/ogc/collections/grids-grid/items",
            {"json": _feature(inside, **good)},
            405,
            "read_only_collection",
        ),
        (
            "post",
            "/ogc/collections/rivers/items",
            {"json": _feature(inside, **good)},
            404,
            "collection_not_found",
        ),
        (
            "post",
            "/ogc/collections/drafts-999999-grids/items",
            {"json": _feature(inside, **good)},
            404,
            "draft_not_found",
        ),
    ]
    assert len(cases) == 25
    for method, path, kwargs, status, error_code, *where in cases:
        extra = kwargs.pop("headers", {})
        response = client.request(method, path, headers={**headers, **extra}, **kwargs)
        _refused(response, status, error_code, *where)
    assert _state(engine, draft_id) == before


def test_content_crs_gauss_kruger_and_latitude_first(client, planner, draft, engine):
    from spatial.crs import transform

    draft_id, generation = draft["id"], draft["generation_id"]
    grids = _grids(client, generation, level="micro_grid", parent=GRID)
    a, b = _neighbours(grids)
    across = grids[a][1].intersection(grids[b][1]).centroid.buffer(1e-4, quad_segs=2)
    # CGCS2000 / 3-degree Gauss-Kruger CM 120E: northing first, as its URI says.
    projected = _swapped(transform(across, "EPSG:4326", "EPSG:4549"))
    created = client.post(
        _items(draft_id),
        headers={
            **planner,
            **_tag(draft_id, 0),
            "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4549>",
        },
        json=_feature(
            projected,
            name="投影坐标新建",
            level="micro_grid",
            parent_code=grids[a][0]["parent_code"],
        ),
    )
    assert created.status_code == 201, created.text
    new = created.json()["code"]
    stored = shapely.from_wkb(bytes(_row(engine, generation, new).wkb))
    assert shapely.hausdorff_distance(stored, across) < 1e-7
    # EPSG:4326 by URI is latitude first: the same outline again changes nothing but the name.
    latitude_first = _swapped(stored)
    again = client.patch(
        f"{_items(draft_id)}/{new}",
        headers={
            **planner,
            **_tag(draft_id, 1),
            "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4326>",
        },
        json={"geometry": _geojson(latitude_first), "properties": {"name": "纬度在前"}},
    )
    assert again.status_code == 200, again.text
    row = _row(engine, generation, new)
    assert row.name == "纬度在前" and shapely.from_wkb(bytes(row.wkb)).equals(stored)


def test_closed_drafts_and_roles_write_nothing(client, planner, draft, engine, tokens):
    draft_id, generation = draft["id"], draft["generation_id"]
    code = sorted(_grids(client, generation, level="micro_grid", parent=GRID))[0]
    item = f"{_items(draft_id)}/{code}"
    rename = {"properties": {"name": "改名"}, "draft_version": 0}
    before = _state(engine, draft_id)
    callers = {
        "anonymous": ({}, 401),
        "bogus": (bearer("wg_bogus"), 401),
        "viewer": (bearer(tokens["viewer"]), 403),
        "dispatcher": (bearer(tokens["dispatcher"]), 403),
    }
    for headers, status in callers.values():
        for method, path, kwargs in (
            ("post", _items(draft_id), {"json": {"type": "Feature"}}),
            ("put", item, {"json": {"type": "Feature"}}),
            ("patch", item, {"json": rename}),
            ("delete", item, {"params": {"draft_version": 0}}),
        ):
            assert client.request(method, path, headers=headers, **kwargs).status_code == status
    assert _state(engine, draft_id) == before

    # OPTIONS: what this caller may do here.
    assert client.options(_items(draft_id), headers=planner).headers["Allow"] == (
        "GET, HEAD, POST, OPTIONS"
    )
    assert client.options(item, headers=planner).headers["Allow"] == (
        "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
    )
    assert client.options(item).headers["Allow"] == "GET, HEAD, OPTIONS"
    assert (
        client.options("/ogc/collections/grids-grid/items", headers=planner).headers["Allow"]
        == "GET, HEAD, OPTIONS"
    )
    _refused(client.options(f"{_items(draft_id)}/nope", headers=planner), 404, "feature_not_found")

    discarded = client.post(
        f"/api/v1/drafts/{draft_id}/discard", json={"version": 0}, headers=planner
    )
    assert discarded.status_code == 200
    _refused(client.patch(item, headers=planner, json=rename), 409, "draft_closed")
    _refused(client.options(item, headers=planner), 409, "draft_closed")
    assert _state(engine, draft_id)[1] == before[1]


# The probes for tests/test_roles.py (PROBES, one per write): a draft that does not exist, so a
# caller let through gets 404 draft_not_found and nothing is written.
MISSING_DRAFT_ITEMS = "/ogc/collections/drafts-999999-grids/items"
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[120.73, 31.30], [120.7301, 31.30], [120.7301, 31.3001], [120.73, 31.30]]],
}
ROLE_PROBES = {
    ("post", "/ogc/collections/{collectionId}/items"): (
        MISSING_DRAFT_ITEMS,
        {
            "json": {
                "type": "Feature",
                "geometry": SQUARE,
                "properties": {"name": "新网格", "level": "grid", "parent_code": COMMUNITY},
                "draft_version": 0,
            }
        },
        404,
    ),
    ("put", "/ogc/collections/{collectionId}/items/{featureId}"): (
        f"{MISSING_DRAFT_ITEMS}/{GRID}",
        {
            "json": {
                "type": "Feature",
                "geometry": SQUARE,
                "properties": {"name": "改名"},
                "draft_version": 0,
            }
        },
        404,
    ),
    ("patch", "/ogc/collections/{collectionId}/items/{featureId}"): (
        f"{MISSING_DRAFT_ITEMS}/{GRID}",
        {"json": {"properties": {"name": "改名"}, "draft_version": 0}},
        404,
    ),
    ("delete", "/ogc/collections/{collectionId}/items/{featureId}"): (
        f"{MISSING_DRAFT_ITEMS}/{GRID}",
        {"params": {"draft_version": 0}},
        404,
    ),
}


def test_role_probes_reach_the_handler_only_for_planners(client, tokens):
    assert len(ROLE_PROBES) == 4
    for (method, _), (url, kwargs, reached) in ROLE_PROBES.items():
        for caller, expected in (
            ("planner", (reached, "draft_not_found")),
            ("admin", (reached, "draft_not_found")),
            ("viewer", (403, "insufficient_role")),
            ("dispatcher", (403, "insufficient_role")),
            ("anonymous", (401, "token_required")),
        ):
            headers = bearer(tokens[caller]) if caller != "anonymous" else {}
            response = client.request(method, url, headers=headers, **kwargs)
            assert (response.status_code, response.json()["error"]["code"]) == expected


# --- a published client ---------------------------------------------------------------------
@pytest.fixture
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


def test_owslib_inserts_updates_deletes_then_publish_answers_lookups(
    no_proxy,
    live_server,
    tokens,
    engine,
):
    from owslib import ogcapi
    from owslib.ogcapi.features import Features

    planner = bearer(tokens["planner"])
    draft = requests.post(
        f"{live_server}/api/v1/drafts", json={"name": "OWSLib 草稿"}, headers=planner, timeout=30
    ).json()
    draft_id, generation = draft["id"], draft["generation_id"]
    collection = f"drafts-{draft_id}-grids"
    grids = {
        f["properties"]["code"]: (f["properties"], _shape(f["geometry"]))
        for f in requests.get(
            f"{live_server}/api/v1/grids",
            params={"generation": generation, "level": "micro_grid", "parent": GRID},
            timeout=30,
        ).json()["features"]
    }
    b = _neighbours(grids)[1]
    props_b, shape_b = grids[b]
    parent, households = props_b["parent_code"], props_b["households"]
    shared = dict(ogcapi.REQUEST_HEADERS)  # OWSLib shares one header dict between clients
    try:
        client = Features(  # reads the landing page
            f"{live_server}/ogc", headers={**planner, "If-Match": f'"draft-{draft_id}-v0"'}
        )
        assert any(link["rel"] == "conformance" for link in client.links)
        # Delete b: its area is left uncovered (the coverage check would say so)…
        assert client.collection_item_delete(collection, b) is True
        client.headers["If-Match"] = client.response_headers["ETag"]
        # …insert a new micro-grid (a new code) that covers it again…
        feature = _feature(shape_b, name="OWSLib 新建", level="micro_grid", parent_code=parent)
        assert client.collection_item_create(collection, feature) is True
        new = client.response_headers["Location"].rsplit("/", 1)[-1]
        client.headers["If-Match"] = client.response_headers["ETag"]
        # …and update it (PUT, the whole feature): a new name and its households.
        feature["properties"] |= {"name": "OWSLib 更名", "households": households}
        assert client.collection_item_update(collection, new, feature) is True
        assert client.response_headers["ETag"] == f'"draft-{draft_id}-v3"'
        # OWSLib has no PATCH: the merge patch goes over HTTP with requests.
        patched = requests.patch(
            f"{live_server}/ogc/collections/{collection}/items/{new}",
            data=json.dumps({"properties": {"population": 99}}),
            headers={
                **planner,
                "If-Match": client.response_headers["ETag"],
                "Content-Type": "application/merge-patch+json",
            },
            timeout=30,
        )
        assert patched.status_code == 200 and patched.headers["ETag"].endswith('-v4"')
        # The read side (through OWSLib): the collection is listed, the feature reads back, and
        # the Part 4 classes exercised here are declared.
        assert collection in client.feature_collections()
        read = client.collection_item(collection, new)
        assert read["id"] == new and read["properties"]["name"] == "OWSLib 更名"
        assert read["properties"]["population"] == 99
        assert set(CONFORMANCE) <= set(client.conformance()["conformsTo"])
        assert [
            e["operation"]
            for e in reversed(
                requests.get(f"{live_server}/api/v1/drafts/{draft_id}", timeout=30).json()["edits"]
            )
        ] == ["delete", "create", "replace", "update"]
        published = requests.post(
            f"{live_server}/api/v1/drafts/{draft_id}/publish",
            json={"version": 4, "acknowledge_warnings": True},
            headers=planner,
            timeout=60,
        )
        assert published.status_code == 200, published.text
        # A published draft takes no more writes.
        with pytest.raises(RuntimeError, match="draft_closed"):
            client.collection_item_delete(collection, new)
    finally:
        ogcapi.REQUEST_HEADERS.clear()
        ogcapi.REQUEST_HEADERS.update(shared)

    inside = shape_b.representative_point()
    deadline = time.monotonic() + 5
    while True:
        answer = requests.get(
            f"{live_server}/api/v1/lookup",
            params={"lon": inside.x, "lat": inside.y, "crs": "4326"},
            timeout=30,
        ).json()
        if answer["generation"] == generation or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer["generation"] == generation and answer["grid"]["code"] == new != b
    assert answer["grid"]["name"] == "OWSLib 更名"
    assert requests.get(f"{live_server}/api/v1/grids/{b}", timeout=30).status_code == 404
    assert (
        requests.get(f"{live_server}/api/v1/grids/{new}", timeout=30).json()["properties"][
            "households"
        ]
        == households
    )


# --- fuzzed: never a 500, every answer as documented -----------------------------------------
FUZZ_OPERATIONS = [
    "POST /ogc/collections/{collectionId}/items",
    "OPTIONS /ogc/collections/{collectionId}/items",
    "PUT /ogc/collections/{collectionId}/items/{featureId}",
    "PATCH /ogc/collections/{collectionId}/items/{featureId}",
    "DELETE /ogc/collections/{collectionId}/items/{featureId}",
    "OPTIONS /ogc/collections/{collectionId}/items/{featureId}",
]


def test_fuzzed_writes_answer_as_documented(settings, tokens, draft, client):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    document = client.get("/api/v1/openapi.json").json()
    served = [
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
        if method != "get" and path.startswith("/ogc/collections/")
    ]
    assert len(served) == 6 and sorted(served) == sorted(FUZZ_OPERATIONS)
    schema = schemathesis.openapi.from_dict(document)
    code = sorted(_grids(client, draft["generation_id"], level="micro_grid", parent=GRID))[0]
    callers = {"planner": bearer(tokens["planner"]), "viewer": bearer(tokens["viewer"]), "none": {}}
    seen = 0
    with TestClient(create_app(settings), raise_server_exceptions=False) as fuzzed:
        for label in FUZZ_OPERATIONS:
            operation = schema.find_operation_by_label(label)
            cases = st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE),
                operation.as_strategy(GenerationMode.NEGATIVE),
            )

            @hypothesis_settings(
                max_examples=40,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases, caller=st.sampled_from(sorted(callers)), real=st.booleans())
            def fuzz(case, caller, real):
                nonlocal seen
                seen += 1
                if real and case.path_parameters is not None:  # reach the draft's own grids
                    case.path_parameters["collectionId"] = f"drafts-{draft['id']}-grids"
                    if "featureId" in case.path_parameters:
                        case.path_parameters["featureId"] = code
                kwargs = case.as_transport_kwargs(
                    base_url="http://testserver", headers=callers[caller]
                )
                kwargs.pop("base_url", None)
                if not kwargs.get("cookies"):
                    kwargs.pop("cookies", None)
                if isinstance(kwargs.get("data"), str | bytes):
                    kwargs["content"] = kwargs.pop("data")
                response = fuzzed.request(follow_redirects=False, **kwargs)
                case.validate_response(response, checks=checks)

            fuzz()
    assert seen >= 6 * 40
