"""Who may do what, asked of the routes the app actually serves.

Two matrices, each expected from the rules and never from observed answers:
- every write operation in the OpenAPI document × every kind of caller (seven roles, anonymous, a
  bogus, an expired and a revoked token, and the map login cookie with and without the page
  header), against api/auth.py's ROLE_PERMISSIONS and the permission each operation needs;
- every read that can carry personal data × role, against api/privacy.py's rule restated here:
  admin, planner, dispatcher and supervisor see everything; handlers only the events of their unit; field staff only at and below their token's grid,
  judged on the active generation; viewers and anonymous callers nothing personal.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, text

from api.app import create_app
from api.auth import ROLE_PERMISSIONS, Permission, Role, create_token
from api.deps import PAGE_HEADER, TOKEN_COOKIE
from tests.conftest import TEMPLATE, bearer, create_database, drop_database
from tests.faults.service import service_settings

STREET, COMMUNITY = "320571005", "320571005001"
FIELD_GRID = "320571005001001"  # the field_staff token's grid
MICRO = "320571005001001001"  # one of its micro-grids
NEIGHBOUR, NEIGHBOUR_MICRO = "320571005001002", "320571005001002001"
MISSING = 999_999
HANDLER_UNIT = "community"  # the handler token's unit: it sees the events dispatched to it
GRID_ATTRIBUTES = {"楼长电话": "13600000000"}  # a free column of an imported grid file

# Every write (non-GET) operation the app serves, and the permission it needs. READ: open like a
# read (it only reads, through POST). PUBLIC: no token involved (the form checks its own token).
READ, PUBLIC = Permission.read, None
ALIAS_WRITERS = frozenset({Role.admin, Role.dispatcher, Role.supervisor})
ALIAS_REMOVERS = frozenset({Role.admin, Role.dispatcher})
NEEDS: dict[tuple[str, str], Permission | frozenset[Role] | None] = {
    ("post", "/api/v1/lookup/batch"): READ,
    ("post", "/api/v1/lookup/batch/file"): READ,
    ("post", "/api/v1/events"): Permission.write_events,
    ("post", "/api/v1/events/{event_id}/transitions"): Permission.work_events,
    ("post", "/api/v1/reports"): Permission.report_events,
    ("post", "/api/v1/patrols"): Permission.work_events,
    ("post", "/api/v1/patrols/upload"): Permission.work_events,
    ("post", "/api/v1/patrols/{patrol_id}/points"): Permission.work_events,
    ("post", "/api/v1/patrols/{patrol_id}/stop"): Permission.work_events,
    ("post", "/api/v1/events/{event_id}/attachments"): Permission.work_events,
    ("post", "/api/v1/points/{code}/alerts"): Permission.write_events,
    ("post", "/api/v1/import/{kind}"): Permission.write_grids,
    ("post", "/api/v1/coverage/checks"): Permission.write_grids,
    ("post", "/api/v1/coverage/checks/{check_id}/fix"): Permission.write_grids,
    ("post", "/api/v1/drafts"): Permission.write_grids,
    ("post", "/api/v1/drafts/suggest"): Permission.write_grids,
    ("put", "/api/v1/drafts/{draft_id}/grids/{code}"): Permission.write_grids,
    ("patch", "/api/v1/drafts/{draft_id}/grids/{code}"): Permission.write_grids,
    ("delete", "/api/v1/drafts/{draft_id}/grids/{code}"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/reshape"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/split"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/merge"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/grids"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/buildings/reassign"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/undo"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/publish"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/discard"): Permission.write_grids,
    ("post", "/api/v1/drafts/{draft_id}/rebase"): Permission.write_grids,
    ("post", "/api/v1/generations/{generation_id}/activate"): Permission.write_grids,
    ("post", "/api/v1/tokens"): Permission.manage_tokens,
    ("put", "/api/v1/calendar/{day}"): Permission.manage_tokens,
    ("put", "/api/v1/units/{code}"): Permission.manage_tokens,
    ("put", "/api/v1/dispatch-rules"): Permission.manage_tokens,
    ("delete", "/api/v1/calendar/{day}"): Permission.manage_tokens,
    ("delete", "/api/v1/tokens/{token_id}"): Permission.manage_tokens,
    ("post", "/api/v1/events/{event_id}/location"): ALIAS_WRITERS,  # 人工定位
    ("post", "/api/v1/geocode/addresses"): READ,
    # Address aliases: the dispatchers' corrections (api/routes/geocode_aliases.py), by role.
    ("post", "/api/v1/geocode/aliases"): ALIAS_WRITERS,
    ("delete", "/api/v1/geocode/aliases/{alias_id}"): ALIAS_REMOVERS,
    ("post", "/api/v1/levels"): Permission.manage_tokens,
    ("patch", "/api/v1/levels/{name}"): Permission.manage_tokens,
    ("delete", "/api/v1/levels/{name}"): Permission.manage_tokens,
    ("post", "/map/login"): PUBLIC,
    ("post", "/m/login"): PUBLIC,
    ("post", "/m/login/preview"): PUBLIC,
    ("post", "/api/v1/tokens/{token_id}/links"): Permission.manage_tokens,
    ("delete", "/api/v1/login-links/{link_id}"): Permission.manage_tokens,
    # OGC API Features Part 4: writes into a draft's grids collection (api/routes/ogc_edit.py).
    ("post", "/ogc/collections/{collectionId}/items"): Permission.write_grids,
    ("put", "/ogc/collections/{collectionId}/items/{featureId}"): Permission.write_grids,
    ("patch", "/ogc/collections/{collectionId}/items/{featureId}"): Permission.write_grids,
    ("delete", "/ogc/collections/{collectionId}/items/{featureId}"): Permission.write_grids,
}
WRITE_OPERATIONS_SERVED = 51  # a new write route must be added to NEEDS and PROBES

ROLES = [role.value for role in Role]
BAD_TOKENS = ("bogus", "expired", "revoked")
UNSCOPED = {
    role.value
    for role in Role
    if Permission.read_personal in ROLE_PERMISSIONS[role]
    and role not in (Role.field_staff, Role.handler)
}
MISSING_DRAFT_ITEMS = "/ogc/collections/drafts-999999-grids/items"
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[120.73, 31.30], [120.7301, 31.30], [120.7301, 31.3001], [120.73, 31.30]]],
}


@dataclass
class World:
    client: TestClient
    secrets: dict[str, str]  # role or bad-token kind → secret
    token_ids: dict[str, int]
    parents: dict[str, str | None] = field(default_factory=dict)

    def path(self, code: str | None) -> list[str]:
        """Root→leaf codes of today's grid `code` ([] when it is not a grid today)."""
        path: list[str] = []
        while code is not None and code in self.parents:
            path.insert(0, code)
            code = self.parents[code]
        return path


def _add_staff(connection, code: str, name: str) -> None:
    staff_id = connection.execute(
        text("INSERT INTO staff (name, phone) VALUES (:n, '13800000000') RETURNING id"), {"n": name}
    ).scalar_one()
    connection.execute(
        text(
            "INSERT INTO staff_assignment (staff_id, grid_code, role) VALUES (:s, :c, 'supervisor')"
        ),
        {"s": staff_id, "c": code},
    )


@pytest.fixture(scope="module")
def world(admin_url: str, template_url: str) -> Iterator[World]:
    """One demo database for the module, with supervisors on the street and the community (the
    demo staffs only grids and micro-grids), a free column on MICRO, a token per role and three
    unusable tokens."""
    name = f"wangge_roles_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=TEMPLATE)
    engine = create_engine(url)
    secrets: dict[str, str] = {}
    token_ids: dict[str, int] = {}
    with engine.begin() as connection:
        _add_staff(connection, STREET, "街道监督员")
        _add_staff(connection, COMMUNITY, "社区监督员")
        connection.execute(
            text("UPDATE grid SET attributes = CAST(:a AS jsonb) WHERE code = :c"),
            {"a": json.dumps(GRID_ATTRIBUTES), "c": MICRO},
        )
        for kind in [*ROLES, "expired", "revoked"]:
            role = Role(kind) if kind in ROLES else Role.admin
            created = create_token(
                connection,
                name=f"test-{kind}",
                role=role,
                grid_codes=(FIELD_GRID,) if role == Role.field_staff else (),
                unit_code=HANDLER_UNIT if role == Role.handler else None,
                expires_at=datetime.now(UTC) - timedelta(days=1) if kind == "expired" else None,
                actor="tests",
            )
            secrets[kind], token_ids[kind] = created.secret, created.id
    secrets["bogus"] = "wg_" + uuid.uuid4().hex
    try:
        with TestClient(create_app(service_settings(url))) as client:
            revoked = bearer(secrets["revoked"])
            assert client.get("/api/v1/tokens", headers=revoked).status_code == 200  # now cached
            response = client.delete(
                f"/api/v1/tokens/{token_ids['revoked']}", headers=bearer(secrets["admin"])
            )
            assert response.status_code == 204
            grids = client.get("/api/v1/grids", params={"limit": 5000}).json()["features"]
            parents = {f["properties"]["code"]: f["properties"]["parent_code"] for f in grids}
            yield World(client, secrets, token_ids, parents)
    finally:
        engine.dispose()
        drop_database(admin_url, name)


def _call(world: World, method: str, path: str, **kwargs: Any):
    """One request; the client's cookie jar is emptied after it, so no caller inherits a login."""
    response = world.client.request(method, path, follow_redirects=False, **kwargs)
    world.client.cookies.clear()
    return response


def _headers(world: World, caller: str) -> dict[str, str]:
    """Caller kinds: a role or bad token (Bearer), `cookie+page:ROLE`, `cookie:ROLE`, anonymous."""
    if caller == "anonymous":
        return {}
    if caller.startswith("cookie"):
        kind, role = caller.split(":")
        cookie = {"Cookie": f"{TOKEN_COOKIE}={world.secrets[role]}"}
        return {**cookie, PAGE_HEADER: "1"} if kind == "cookie+page" else cookie
    return bearer(world.secrets[caller])


def _expected(
    caller: str, need: Permission | frozenset[Role] | None, method: str
) -> tuple[int, str] | None:
    """(status, error code) the permission table demands, or None for "let through"."""
    if need is PUBLIC:
        return None
    if caller.startswith("cookie:") and method != "get":
        caller = "anonymous"  # a cookie alone never authorises a write
    caller = caller.split(":")[-1]
    if caller in BAD_TOKENS:
        return 401, "invalid_token"
    if caller == "anonymous":
        return None if need == READ else (401, "token_required")
    if isinstance(need, frozenset):  # a route open to named roles, not to a permission
        return None if Role(caller) in need else (403, "insufficient_role")
    return None if need in ROLE_PERMISSIONS[Role(caller)] else (403, "insufficient_role")


def _hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def _probe_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _probe(world: World, method: str, path: str, serial: int) -> tuple[str, dict[str, Any], int]:
    """A request that passes validation, and what the handler answers once let through."""
    events = {"source": "tests", "external_id": f"roles-{serial}", "lon": 120.735, "lat": 31.305}
    csv = b"code,name,lon,lat\nCAM-R1,roles,120.73,31.30\n"
    draft = {"version": 0, "code": FIELD_GRID}
    ogc_feature = {"type": "Feature", "geometry": SQUARE, "properties": {}, "draft_version": 0}
    probes: dict[tuple[str, str], tuple[str, dict[str, Any], int]] = {
        ("post", "/api/v1/lookup/batch"): (
            path,
            {"json": {"crs": "EPSG:4326", "points": [{"lon": 120.735, "lat": 31.305}]}},
            200,
        ),
        ("post", "/api/v1/lookup/batch/file"): (
            path,
            {"data": {"crs": "EPSG:4326"}, "files": {"file": ("p.csv", b"lon,lat\n120.7,31.3\n")}},
            200,
        ),
        ("post", "/api/v1/events"): (path, {"json": {**events, "crs": "EPSG:4326"}}, 201),
        ("post", "/api/v1/events/{event_id}/attachments"): (
            path,
            {
                "files": {"file": ("probe.png", _probe_png(), "image/png")},
                "data": {"stage": "after"},
            },
            404,
        ),
        ("post", "/api/v1/points/{code}/alerts"): (
            path,
            {"json": {"alert_id": f"roles-{serial}"}},
            404,
        ),
        ("post", "/api/v1/patrols"): (
            path,
            {
                "json": {
                    "client_id": f"roles-{serial:06d}",
                    "started_at": _hour_ago(),
                }
            },
            201,
        ),
        ("post", "/api/v1/patrols/upload"): (
            path,
            {"files": {"file": ("track.gpx", b"not a track", "application/gpx+xml")}},
            422,
        ),
        ("post", "/api/v1/patrols/{patrol_id}/points"): (
            path,
            {"json": {"points": [{"t": _hour_ago(), "lon": 120.735, "lat": 31.305}]}},
            404,
        ),
        ("post", "/api/v1/patrols/{patrol_id}/stop"): (
            path,
            {"json": {"ended_at": _hour_ago()}},
            404,
        ),
        ("post", "/api/v1/reports"): (
            path,
            {
                "json": {
                    "client_id": f"roles-{serial:06d}",
                    "category_code": "ZZZ",
                    "lon": 120.735,
                    "lat": 31.305,
                }
            },
            422,
        ),
        ("post", "/api/v1/events/{event_id}/transitions"): (
            path,
            {"json": {"action": "accept", "version": 1}},
            404,
        ),
        ("post", "/api/v1/import/{kind}"): (
            "/api/v1/import/points",
            {"data": {"crs": "EPSG:4326", "dry_run": "true"}, "files": {"file": ("c.csv", csv)}},
            200,
        ),
        ("post", "/api/v1/coverage/checks"): (path, {"json": {"generation": MISSING}}, 404),
        ("post", "/api/v1/drafts"): (path, {"json": {"name": f"roles {serial}"}}, 201),
        ("post", "/api/v1/drafts/suggest"): (path, {"json": {"community": "320571005999"}}, 404),
        ("put", "/api/v1/drafts/{draft_id}/grids/{code}"): (
            path,
            {"json": {"version": 0, "geometry": SQUARE}},
            404,
        ),
        ("patch", "/api/v1/drafts/{draft_id}/grids/{code}"): (
            path,
            {"json": {"version": 0, "name": "改名"}},
            404,
        ),
        ("delete", "/api/v1/drafts/{draft_id}/grids/{code}"): (
            path,
            {"params": {"version": 0}},
            404,
        ),
        ("post", "/api/v1/drafts/{draft_id}/reshape"): (
            path,
            {"json": {**draft, "geometry": SQUARE}},
            404,
        ),
        ("post", "/api/v1/drafts/{draft_id}/split"): (
            path,
            {"json": {**draft, "line": {"type": "LineString", "coordinates": [[120.7, 31.3]] * 2}}},
            404,
        ),
        ("post", "/api/v1/drafts/{draft_id}/merge"): (
            path,
            {"json": {"version": 0, "codes": [FIELD_GRID, NEIGHBOUR]}},
            404,
        ),
        ("post", "/api/v1/drafts/{draft_id}/grids"): (
            path,
            {
                "json": {
                    "version": 0,
                    "name": "新网格",
                    "level": "grid",
                    "parent_code": COMMUNITY,
                    "geometry": SQUARE,
                }
            },
            404,
        ),
        ("post", "/api/v1/drafts/{draft_id}/buildings/reassign"): (
            path,
            {"json": {"version": 0, "buildings": [f"{MICRO}B01"], "grid_code": FIELD_GRID}},
            404,
        ),
        ("post", "/api/v1/drafts/{draft_id}/rebase"): (path, {"json": {"version": 0}}, 404),
        ("post", "/api/v1/geocode/addresses"): (path, {"json": {"addresses": ["青丘街1号"]}}, 200),
        ("post", "/api/v1/events/{event_id}/location"): (
            path,
            {"json": {"version": 1, "grid_code": FIELD_GRID}},
            404,
        ),
        ("post", "/api/v1/geocode/aliases"): (
            path,
            {"json": {"text": "老地方", "target": {"kind": "poi", "code": "NO-SUCH-POI"}}},
            404,
        ),
        ("post", "/api/v1/levels"): (
            path,
            {"json": {"name": "grid", "rank": 3, "label_zh": "网格"}},
            409,
        ),
        ("patch", "/api/v1/levels/{name}"): (
            "/api/v1/levels/no_such_level",
            {"json": {"label_zh": "无"}},
            404,
        ),
        ("delete", "/api/v1/levels/{name}"): ("/api/v1/levels/no_such_level", {}, 404),
        ("put", "/api/v1/calendar/{day}"): (path, {"json": {"workday": True}}, 200),
        ("put", "/api/v1/units/{code}"): (
            f"/api/v1/units/roles{serial}",
            {"json": {"name": "测试单位", "kind": "chengguan", "tier": 1}},
            201,
        ),
        ("put", "/api/v1/dispatch-rules"): (
            path,
            {"json": {"tier": 3, "unit_kind": "community", "accept_hours": 2, "handle_amount": 3}},
            200,
        ),
        ("post", "/api/v1/tokens"): (
            path,
            {"json": {"name": f"roles {serial}", "role": "viewer"}},
            201,
        ),
        ("post", "/api/v1/tokens/{token_id}/links"): (path, {"json": {"link_days": 1}}, 404),
        ("delete", "/api/v1/login-links/{link_id}"): ("/api/v1/login-links/999999", {}, 404),
        ("post", "/m/login"): (path, {"data": {"code": "A" * 24}}, 404),
        ("post", "/m/login/preview"): (path, {"json": {"code": "A" * 24}}, 404),
        ("post", "/map/login"): (
            path,
            {"data": {"token": world.secrets["viewer"], "next": "/map/street"}},
            303,
        ),
        ("post", "/ogc/collections/{collectionId}/items"): (
            MISSING_DRAFT_ITEMS,
            {"json": {**ogc_feature, "properties": {"name": "新网格", "level": "grid"}}},
            404,
        ),
        ("put", "/ogc/collections/{collectionId}/items/{featureId}"): (
            f"{MISSING_DRAFT_ITEMS}/{FIELD_GRID}",
            {"json": {**ogc_feature, "properties": {"name": "改名"}}},
            404,
        ),
        ("patch", "/ogc/collections/{collectionId}/items/{featureId}"): (
            f"{MISSING_DRAFT_ITEMS}/{FIELD_GRID}",
            {"json": {"properties": {"name": "改名"}, "draft_version": 0}},
            404,
        ),
        ("delete", "/ogc/collections/{collectionId}/items/{featureId}"): (
            f"{MISSING_DRAFT_ITEMS}/{FIELD_GRID}",
            {"params": {"draft_version": 0}},
            404,
        ),
    }
    # The remaining operations act on one thing named in the path, which does not exist.
    url, kwargs, status = probes.get((method, path), (path, {"json": {"version": 0}}, 404))
    for name in (
        "draft_id",
        "check_id",
        "generation_id",
        "token_id",
        "event_id",
        "patrol_id",
        "alias_id",
    ):
        url = url.replace("{" + name + "}", str(MISSING))
    url = url.replace("{day}", "2031-01-06")  # no exception that day until the PUT probes
    return url.replace("{code}", FIELD_GRID), kwargs, status


def _write_operations(world: World) -> list[tuple[str, str]]:
    paths = world.client.get("/api/v1/openapi.json").json()["paths"]
    return sorted(
        (method, path)
        for path, operations in paths.items()
        for method in operations
        if method in ("post", "put", "patch", "delete")
    )


def test_every_write_operation_served_is_in_the_matrix(world):
    served = _write_operations(world)
    assert len(served) == WRITE_OPERATIONS_SERVED
    assert set(served) == set(NEEDS)


WRITE_CALLERS = [
    *ROLES,
    "anonymous",
    *BAD_TOKENS,
    *(f"cookie+page:{role}" for role in ROLES),
    *(f"cookie:{role}" for role in ROLES),
]


def test_write_matrix(world):
    """Every (write operation × caller) answers exactly as the permission table says."""
    wrong: list[str] = []
    pairs = 0
    for method, path in _write_operations(world):
        for caller in WRITE_CALLERS:
            pairs += 1
            url, kwargs, reached = _probe(world, method, path, pairs)
            headers = {**kwargs.pop("headers", {}), **_headers(world, caller)}
            response = _call(world, method, url, headers=headers, **kwargs)
            expected = _expected(caller, NEEDS[(method, path)], method)
            if expected is None:
                if response.status_code != reached:
                    wrong.append(
                        f"{method} {path} as {caller}: {response.status_code}, not {reached}"
                    )
                continue
            answer = (response.status_code, response.json()["error"]["code"])
            if answer != expected:
                wrong.append(f"{method} {path} as {caller}: {answer}, not {expected}")
    assert pairs == WRITE_OPERATIONS_SERVED * len(WRITE_CALLERS) == 51 * 25
    assert not wrong, "\n".join(wrong)


# ---- personal data ------------------------------------------------------------------------------

READ_CALLERS = [*ROLES, "anonymous", "bogus"]


def _visible(caller: str, path: list[str]) -> list[str]:
    """The part of a root→leaf path (today's grids) whose personal data the caller may see."""
    if caller in UNSCOPED:
        return path
    if caller == Role.field_staff.value and FIELD_GRID in path:
        return path[path.index(FIELD_GRID) :]
    return []


def _personal(caller: str, path: list[str]) -> bool:
    """May the caller see personal data of a thing placed at the end of `path` (or unplaced)?"""
    return caller in UNSCOPED if not path else path[-1] in _visible(caller, path)


def _read(world: World, caller: str, url: str, **kwargs: Any):
    """A read as `caller`; a bogus token is refused whatever is read."""
    response = _call(
        world, kwargs.pop("method", "get"), url, headers=_headers(world, caller), **kwargs
    )
    if caller == "bogus":
        assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_token")
        return None
    assert response.status_code == 200, (caller, url, response.text)
    return response.json()


def _inside(world: World, code: str) -> shapely.Point:
    feature = world.client.get(f"/api/v1/grids/{code}").json()
    return shapely.from_geojson(json.dumps(feature["geometry"])).representative_point()


@dataclass
class Placed:
    """Things with personal data, placed in the field staff's grid, next door, or nowhere."""

    events: dict[str, int]  # in / out / unplaced → event id
    points: dict[str, shapely.Point]  # in / out → a point inside MICRO / NEIGHBOUR_MICRO
    staffed: dict[str, int]  # grid code → how many staff it has (admin's view)
    draft_id: int


@pytest.fixture(scope="module")
def placed(world: World) -> Placed:
    dispatcher, planner = bearer(world.secrets["dispatcher"]), bearer(world.secrets["planner"])
    points = {"in": _inside(world, MICRO), "out": _inside(world, NEIGHBOUR_MICRO)}
    events = {}
    for where, location in [
        *((name, {"lon": p.x, "lat": p.y, "crs": "EPSG:4326"}) for name, p in points.items()),
        ("unplaced", {"address": "火星基地一号"}),
    ]:
        response = world.client.post(
            "/api/v1/events",
            headers=dispatcher,
            json={
                "source": "tests",
                "external_id": f"personal-{where}",
                "description": "楼道堆物，住户张三反映",
                "reporter_name": "张三",
                "reporter_phone": "13900000000",
                "address": location.pop("address", "青丘街1号"),
                **location,
            },
        )
        assert response.status_code == 201, response.text
        events[where] = response.json()["id"]
    assert [
        world.client.get(f"/api/v1/events/{events[w]}").json()["grid_code"] for w in events
    ] == [
        MICRO,
        NEIGHBOUR_MICRO,
        None,
    ]
    admin = bearer(world.secrets["admin"])
    staffed = {
        code: len(world.client.get(f"/api/v1/grids/{code}/staff", headers=admin).json()["staff"])
        for code in world.parents
        if code.startswith(COMMUNITY) or code == STREET
    }
    draft = world.client.post("/api/v1/drafts", headers=planner, json={"name": "谁起的草"})
    edited = world.client.patch(
        f"/api/v1/drafts/{draft.json()['id']}/grids/{MICRO}",
        headers=planner,
        json={"version": 0, "name": "改名的微网格"},
    )
    assert edited.status_code == 200, edited.text
    return Placed(events, points, staffed, draft.json()["id"])


def _check_staff(caller: str, path: list[str], answer: dict[str, Any], placed: Placed) -> None:
    """`staff` appears iff the caller may see some of the path, with exactly those grids' staff."""
    visible = _visible(caller, path)
    if not visible:
        assert "staff" not in answer, (caller, path)
        return
    expected = sorted(code for code in visible for _ in range(placed.staffed[code]))
    assert sorted(person["grid_code"] for person in answer["staff"]) == expected, (caller, path)
    assert all(person["name"] and person["phone"] for person in answer["staff"])


def test_grid_staff_matrix(world, placed):
    """/grids/{code}/staff: a token with read_personal, and for field staff a code in scope."""
    codes = [STREET, COMMUNITY, FIELD_GRID, MICRO, NEIGHBOUR, NEIGHBOUR_MICRO]
    pairs = 0
    for code in codes:
        for caller in READ_CALLERS:
            pairs += 1
            response = _call(
                world, "get", f"/api/v1/grids/{code}/staff", headers=_headers(world, caller)
            )
            if caller == "anonymous":
                expected: tuple[int, str | None] = (401, "token_required")
            elif caller == "bogus":
                expected = (401, "invalid_token")
            elif Permission.read_personal not in ROLE_PERMISSIONS[Role(caller)]:
                expected = (403, "insufficient_role")
            elif _personal(caller, world.path(code)):
                expected = (200, None)
            else:
                expected = (403, "outside_token_scope")
            body = response.json()
            assert (response.status_code, body.get("error", {}).get("code")) == expected, (
                code,
                caller,
            )
            if expected[0] == 200:
                assert len(body["staff"]) == placed.staffed[code] > 0
    assert pairs == len(codes) * len(READ_CALLERS) == 54


def test_event_matrix(world, placed):
    """/events/{id}: citizen's text, reporter, staff and history actors by the rule."""
    dispatcher_actor = f"token:{world.token_ids['dispatcher']}:test-dispatcher"
    pairs = 0
    for where, event_id in placed.events.items():
        for caller in READ_CALLERS:
            body = _read(world, caller, f"/api/v1/events/{event_id}")
            pairs += 1
            if body is None:
                continue
            path = world.path(body["grid_code"])
            personal = _personal(caller, path)
            for name in ("description", "address", "reporter"):
                assert (name in body) == personal, (where, caller, name)
            if personal:
                assert body["reporter"] == {"name": "张三", "phone": "13900000000"}
            _check_staff(caller, path, body, placed)
            actor = dispatcher_actor if caller in UNSCOPED else dispatcher_actor.rsplit(":", 1)[0]
            assert [(h["actor"], h["note"] is not None) for h in body["history"]] == [
                (actor, True) if personal else (None, False)
            ], (where, caller)
    assert pairs == 3 * len(READ_CALLERS) == 27


def test_event_map_layer_matrix(world, placed):
    """/events GeoJSON: `description` only on events the caller may see personal data of."""
    shown, totals = {}, set()
    for caller in READ_CALLERS:
        body = _read(world, caller, "/api/v1/events", params={"status": "all", "limit": 5000})
        if body is None:
            continue
        features = body["features"]
        assert not body["hasMore"]
        totals.add(len(features))
        for feature in features:
            properties = feature["properties"]
            expected = _personal(caller, world.path(properties["grid_code"])) or (
                caller == Role.handler.value and properties["unit_code"] == HANDLER_UNIT
            )
            assert ("description" in properties) == expected, (caller, properties["id"])
            assert "reporter" not in properties and "address" not in properties
        shown[caller] = sum("description" in f["properties"] for f in features)
    [total] = totals
    assert total > 3000  # the demo's events and those posted here
    assert shown["admin"] == shown["planner"] == shown["dispatcher"] == total
    assert 0 < shown["field_staff"] < total and shown["viewer"] == shown["anonymous"] == 0
    assert 0 < shown["handler"] < total


def test_lookup_matrix(world, placed):
    """/lookup and /lookup/batch: staff of the visible part of the point's path, or none."""
    points = [*placed.points.values(), shapely.Point(121.5, 31.2)]  # the last one is off the street
    pairs = 0
    for caller in READ_CALLERS:
        batch = _read(
            world,
            caller,
            "/api/v1/lookup/batch",
            method="post",
            json={"crs": "EPSG:4326", "points": [{"lon": p.x, "lat": p.y} for p in points]},
        )
        for number, point in enumerate(points):
            single = _read(
                world,
                caller,
                "/api/v1/lookup",
                params={"lon": point.x, "lat": point.y, "crs": "4326"},
            )
            pairs += 1
            if single is None:
                continue
            path = [step["code"] for step in single["path"]] if single["matched"] else []
            assert path == world.path(path[-1] if path else None)
            _check_staff(caller, path, single, placed)
            _check_staff(caller, path, batch["results"][number], placed)
    assert pairs == 3 * len(READ_CALLERS) == 27


def test_address_matrix(world, placed):
    """/geocode/address: a matched address carries staff by the same rule as a lookup."""
    pairs = 0
    for code in (MICRO, NEIGHBOUR_MICRO):
        address = world.client.get(f"/api/v1/buildings?grid={code}&limit=1").json()["features"][0][
            "properties"
        ]["address"]
        for caller in READ_CALLERS:
            answer = _read(world, caller, "/api/v1/geocode/address", params={"q": address})
            pairs += 1
            if answer is None:
                continue
            assert answer["matched"] and answer["grid"]["code"] == code, answer
            _check_staff(caller, world.path(code), answer, placed)
    assert pairs == 2 * len(READ_CALLERS) == 18


def test_draft_actor_matrix(world, placed):
    """Drafts name their author as token:ID, with the token's name only for unscoped roles."""
    author = f"token:{world.token_ids['planner']}:test-planner"
    pairs = 0
    for caller in READ_CALLERS:
        listed = _read(world, caller, "/api/v1/drafts")
        one = _read(world, caller, f"/api/v1/drafts/{placed.draft_id}")
        pairs += 1
        if listed is None:
            continue
        expected = author if caller in UNSCOPED else author.rsplit(":", 1)[0]
        [mine] = [d for d in listed["drafts"] if d["id"] == placed.draft_id]
        assert mine["created_by"] == one["created_by"] == expected, caller
        assert [e["actor"] for e in one["edits"]] == [expected], caller
    assert pairs == len(READ_CALLERS)


@pytest.fixture(scope="module")
def buildings_with_owners(world: World, placed: Placed) -> dict[str, str]:
    """Two imported buildings whose file carried an owner's phone: in MICRO and next door."""
    features = []
    for where, point in placed.points.items():
        footprint = point.buffer(0.00002, cap_style="square")
        features.append(
            {
                "type": "Feature",
                "geometry": json.loads(shapely.to_geojson(footprint)),
                "properties": {
                    "code": f"ROLES-{where}",
                    "name": "测试楼",
                    "业主电话": "13700000000",
                },
            }
        )
    response = world.client.post(
        "/api/v1/import/buildings",
        headers=bearer(world.secrets["planner"]),
        data={"crs": "EPSG:4326"},
        files={
            "file": (
                "owners.geojson",
                json.dumps({"type": "FeatureCollection", "features": features}),
            )
        },
    )
    assert response.status_code == 200, response.text
    return {"in": MICRO, "out": NEIGHBOUR_MICRO}


def _owner_columns(world: World, caller: str, placed: Placed, where: str) -> dict[str, Any] | None:
    point = placed.points[where]
    bbox = f"{point.x - 1e-4},{point.y - 1e-4},{point.x + 1e-4},{point.y + 1e-4}"
    body = _read(world, caller, "/api/v1/buildings", params={"bbox": bbox})
    if body is None:
        return None
    [found] = [f for f in body["features"] if f["properties"]["code"] == f"ROLES-{where}"]
    return found["properties"]


def test_free_attributes_matrix(world, placed, buildings_with_owners):
    """The free columns of imported files (`attributes` of buildings and grids) only for the
    unscoped roles: unvetted and listed without a grid, they never reach field staff."""
    pairs = 0
    for where in buildings_with_owners:
        for caller in READ_CALLERS:
            properties = _owner_columns(world, caller, placed, where)
            pairs += 1
            if properties is None:
                continue
            if caller in UNSCOPED:
                assert properties["attributes"] == {"业主电话": "13700000000"}, caller
            else:
                assert "attributes" not in properties, (where, caller)
    for caller in READ_CALLERS:
        one = _read(world, caller, f"/api/v1/grids/{MICRO}")
        listed = _read(world, caller, "/api/v1/grids", params={"parent": FIELD_GRID})
        pairs += 1
        if one is None:
            continue
        [same] = [f for f in listed["features"] if f["properties"]["code"] == MICRO]
        for properties in (one["properties"], same["properties"]):
            if caller in UNSCOPED:
                assert properties["attributes"] == GRID_ATTRIBUTES, caller
            else:
                assert "attributes" not in properties, caller
    assert pairs == 3 * len(READ_CALLERS) == 27


RECODED = "320571005001099"


def test_scope_follows_a_recode_and_is_judged_on_todays_grids(client, tokens, engine):
    """After a publish recodes the field staff's grid, their token's scope follows it to the
    new code (issue 16); `generation=` does not bring the old code back and `at=` never
    carries staff."""
    admin, planner = bearer(tokens["admin"]), bearer(tokens["planner"])
    field_staff = bearer(tokens["field_staff"])  # FIELD_GRID
    created = client.post(
        "/api/v1/tokens",
        headers=admin,
        json={"name": "隔壁网格员", "role": "field_staff", "grid_codes": [NEIGHBOUR]},
    )
    neighbour_staff = bearer(created.json()["token"])
    with engine.connect() as connection:
        closed_event = connection.execute(
            text("SELECT min(id) FROM event WHERE grid_code LIKE :g AND status = 'closed'"),
            {"g": FIELD_GRID + "%"},
        ).scalar_one()
    point = _grid_point(client, MICRO)
    neighbour_point = _grid_point(client, NEIGHBOUR_MICRO)
    posted = client.post(
        "/api/v1/events",
        headers=bearer(tokens["dispatcher"]),
        json={"source": "tests", "external_id": "open-1", "description": "井盖缺失"}
        | {"lon": point.x, "lat": point.y, "crs": "EPSG:4326"},
    )
    open_event = posted.json()["id"]
    yesterday = datetime.now(UTC).isoformat()

    draft = client.post("/api/v1/drafts", headers=planner, json={"name": "改编码"}).json()
    recode = client.patch(
        f"/api/v1/drafts/{draft['id']}/grids/{FIELD_GRID}",
        headers=planner,
        json={"version": 0, "code": RECODED},
    )
    assert recode.status_code == 200, recode.text
    published = client.post(
        f"/api/v1/drafts/{draft['id']}/publish",
        headers=planner,
        json={"version": 1, "acknowledge_warnings": True},
    )
    assert published.status_code == 200, published.text
    _wait_for_generation(client, point, published.json()["generation"])

    def staff_answer(code, headers, **params):
        response = client.get(f"/api/v1/grids/{code}/staff", headers=headers, params=params)
        return response.status_code, response.json().get("error", {}).get("code")

    for params in ({}, {"generation": 1}):
        assert staff_answer(FIELD_GRID, field_staff, **params) == (404, "grid_not_found")
        assert staff_answer(FIELD_GRID, admin, **params) == (404, "grid_not_found")
        assert staff_answer(RECODED, field_staff, **params) == (200, None)
        assert staff_answer(RECODED, admin, **params) == (200, None)
        assert staff_answer(NEIGHBOUR, neighbour_staff, **params) == (200, None)

    def lookup(where, headers, **params):
        query = {"lon": where.x, "lat": where.y, "crs": "4326", **params}
        return client.get("/api/v1/lookup", headers=headers, params=query).json()

    assert lookup(point, admin)["path"][2]["code"] == RECODED and lookup(point, admin)["staff"]
    assert lookup(point, field_staff)["staff"]  # their grid, under its new code
    assert lookup(neighbour_point, neighbour_staff)["staff"]
    for headers in (admin, field_staff, neighbour_staff):
        for where in (point, neighbour_point):
            then = lookup(where, headers, at=yesterday)
            assert then["generation"] == 1 and "staff" not in then
    assert lookup(point, admin, at=yesterday)["path"][2]["code"] == FIELD_GRID

    for event_id in (closed_event, open_event):
        assert "description" in client.get(f"/api/v1/events/{event_id}", headers=admin).json()
    # The open event moved onto the recoded grid with its staff: the scope that followed sees
    # it. A closed event keeps the path of its day (the old code): not theirs any more.
    seen = client.get(f"/api/v1/events/{open_event}", headers=field_staff).json()
    assert "description" in seen and "staff" in seen, seen
    closed = client.get(f"/api/v1/events/{closed_event}", headers=field_staff).json()
    assert "description" not in closed and "staff" not in closed, closed
    moved = client.get(f"/api/v1/events/{open_event}").json()
    assert moved["generation"] == published.json()["generation"]
    assert [step["code"] for step in moved["assignment"]["path"]][:3] == [
        STREET,
        COMMUNITY,
        RECODED,
    ]


def _grid_point(client: TestClient, code: str) -> shapely.Point:
    feature = client.get(f"/api/v1/grids/{code}").json()
    return shapely.from_geojson(json.dumps(feature["geometry"])).representative_point()


def _wait_for_generation(client: TestClient, point: shapely.Point, generation: int) -> None:
    for _ in range(100):
        query = {"lon": point.x, "lat": point.y, "crs": "4326"}
        if client.get("/api/v1/lookup", params=query).json()["generation"] == generation:
            return
        time.sleep(0.05)
    raise AssertionError(f"lookups did not switch to generation {generation}")


def test_login_cookie_reads_and_writes_only_with_the_page_header(world):
    """The cookie POST /map/login sets: HttpOnly, SameSite=Strict; it authorises GET requests,
    and a write only together with X-Wangge-Page: 1 (a cross-site form cannot send that)."""
    client = world.client
    login = client.post(
        "/map/login",
        data={"token": world.secrets["planner"], "next": "/map/street"},
        follow_redirects=False,
    )
    try:
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{TOKEN_COOKIE}=") and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert client.cookies.get(TOKEN_COOKIE) == world.secrets["planner"]

        assert client.get(f"/api/v1/grids/{NEIGHBOUR}/staff").status_code == 200
        draft = {"name": "用 cookie 起草"}
        refused = client.post("/api/v1/drafts", json=draft)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "token_required")
        wrong = client.post("/api/v1/drafts", json=draft, headers={PAGE_HEADER: "0"})
        assert wrong.status_code == 401
        made = client.post("/api/v1/drafts", json=draft, headers={PAGE_HEADER: "1"})
        assert made.status_code == 201, made.text
        assert made.json()["created_by"] == f"token:{world.token_ids['planner']}:test-planner"
    finally:
        client.cookies.clear()
    after = client.get(f"/api/v1/grids/{NEIGHBOUR}/staff")
    assert (after.status_code, after.json()["error"]["code"]) == (401, "token_required")
