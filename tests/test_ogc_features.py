"""OGC API – Features (read) under /ogc, against the demo street in a real PostGIS.

Every count a test asserts is computed again independently in SQL. One database copy serves the
module (the reads do not change it; the few writes are noted where they happen). The fixtures here
are shared with tests/test_ogc_gdal.py (a live server for GDAL's OAPIF driver).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Engine, create_engine, text

from api.app import create_app
from api.auth import Role, create_token
from api.ogc import conformance
from api.ogc.collections import BUILDINGS, EVENTS, MONITORING_POINTS
from api.ogc.errors import install
from api.settings import Settings, WorkflowSettings
from tests.conftest import TEMPLATE, _roles, as_role, bearer, create_database, drop_database

PUBLIC_IDS = [
    "grids-street",
    "grids-community",
    "grids-grid",
    "grids-micro_grid",
    "buildings",
    "monitoring-points",
    "events",
]
# What a citizen told us, who handled it, and the free columns of imported files.
FORBIDDEN_KEYS = {
    "description",
    "address_text",
    "reporter",
    "reporter_name",
    "reporter_phone",
    "actor",
    "actors",
    "history",
    "photos",
    "attachments",
    "attributes",
    "assignee_id",
    "unit_code",
    "external_id",
    "raw_x",
    "raw_y",
    "note",
}
EVENT_KEYS = {
    "id",
    "source",
    "category_code",
    "category_name",
    "status",
    "tier",
    "grid_code",
    "reported_at",
    "due_at",
    "closed_at",
    "warning_level",
}
GRID_KEYS = {
    "code",
    "name",
    "level",
    "level_label",
    "kind",
    "parent_code",
    "households",
    "population",
    "generation",
}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"


def mounted(app: FastAPI) -> FastAPI:
    """The app as api/app.py builds it: /ogc mounted, OGC errors installed (idempotent)."""
    install(app)
    return app


@pytest.fixture(scope="module")
def ogc_database(admin_url: str, template_url: str) -> Iterator[str]:
    name = f"wangge_test_ogc_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name, template=TEMPLATE)
    yield url
    drop_database(admin_url, name)


@pytest.fixture(scope="module")
def ogc_engine(ogc_database: str) -> Iterator[Engine]:
    engine = create_engine(ogc_database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def ogc_settings(ogc_database: str) -> Settings:
    roles = _roles()
    service = as_role(ogc_database, roles[1]) if roles is not None else ogc_database
    return Settings(
        database_url=service,
        owner_database_url=ogc_database,
        workflow=WorkflowSettings(sweep_seconds=0),
    )


@pytest.fixture(scope="module")
def ogc_app(ogc_settings: Settings) -> FastAPI:
    return mounted(create_app(ogc_settings))


@pytest.fixture(scope="module")
def ogc_tokens(ogc_engine: Engine) -> dict[str, str]:
    with ogc_engine.begin() as connection:
        return {
            role.value: create_token(
                connection, name=f"ogc-{role.value}", role=role, actor="tests"
            ).secret
            for role in (Role.admin, Role.planner, Role.viewer, Role.dispatcher)
        }


@pytest.fixture(scope="module")
def ogc(ogc_app: FastAPI, ogc_tokens: dict[str, str]) -> Iterator[TestClient]:
    """A client, with one open draft made by a planner (so drafts-{id}-grids exists)."""
    with TestClient(ogc_app) as client:
        made = client.post(
            "/api/v1/drafts", json={"name": "OGC 草稿"}, headers=bearer(ogc_tokens["planner"])
        )
        assert made.status_code == 201, made.text
        client.draft = made.json()  # type: ignore[attr-defined]
        yield client


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def active(engine: Engine) -> int:
    return int(
        scalar(
            engine,
            "SELECT generation_id FROM generation_activation ORDER BY activated_at DESC, id DESC "
            "LIMIT 1",
        )
    )


def grid_count(engine: Engine, level: str, extra: str = "true", **params: Any) -> int:
    return int(
        scalar(
            engine,
            f"SELECT count(*) FROM grid t WHERE t.level = :level AND t.generation_low <= :g "
            f"AND t.generation_high >= :g AND ({extra})",
            level=level,
            g=active(engine),
            **params,
        )
    )


def items(client: TestClient, collection: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/ogc/collections/{collection}/items", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    return response.json()


def matched(client: TestClient, collection: str, **params: Any) -> int:
    return int(items(client, collection, limit=1, **params)["numberMatched"])


def ogc_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The OGC exception JSON, with our own error fields kept."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["error"]["code"] == code, body
    assert body["description"] == body["error"]["message"] and body["description"]
    assert body["status"] == status
    return body


# --- Part 1: core, GeoJSON, HTML -------------------------------------------------------------


def test_landing_page_and_conformance(ogc: TestClient) -> None:
    landing = ogc.get("/ogc")
    assert landing.status_code == 200 and landing.headers["content-type"] == "application/json"
    rels = {entry["rel"] for entry in landing.json()["links"]}
    assert {"self", "alternate", "service-desc", "service-doc", "conformance", "data"} <= rels
    service = next(e for e in landing.json()["links"] if e["rel"] == "service-desc")
    api = ogc.get(service["href"].removeprefix("http://testserver")).json()
    assert api["servers"] == [{"url": "http://testserver/ogc"}]
    parameters = api["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    names = {p["name"] for p in parameters}
    assert {"bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang", "limit"} <= names
    language = next(p for p in parameters if p["name"] == "filter-lang")["schema"]["enum"]
    assert language == ["cql2-text", "cql2-json", "cql-text"]  # GDAL asks for cql-text

    classes = ogc.get("/ogc/conformance").json()["conformsTo"]
    assert len(conformance.CLASSES) == 17
    assert classes[: len(conformance.CLASSES)] == conformance.CLASSES
    assert len(classes) == len(set(classes))


def test_collections_listed_for_each_caller(
    ogc: TestClient, ogc_tokens: dict[str, str], ogc_engine: Engine
) -> None:
    draft_id = ogc.draft["id"]  # type: ignore[attr-defined]
    anonymous = ogc.get("/ogc/collections").json()
    assert [c["id"] for c in anonymous["collections"]] == PUBLIC_IDS
    viewer = ogc.get("/ogc/collections", headers=bearer(ogc_tokens["viewer"])).json()
    assert [c["id"] for c in viewer["collections"]] == PUBLIC_IDS
    planner = ogc.get("/ogc/collections", headers=bearer(ogc_tokens["planner"])).json()
    assert [c["id"] for c in planner["collections"]] == [*PUBLIC_IDS, f"drafts-{draft_id}-grids"]

    for described in anonymous["collections"]:
        assert described["itemType"] == "feature"
        assert described["crs"][0] == CRS84 and len(described["crs"]) == 3 + 42
        minx, miny, maxx, maxy = described["extent"]["spatial"]["bbox"][0]
        assert 120 < minx < maxx < 121 and 31 < miny < maxy < 32
        rels = {(link["rel"], link["type"]) for link in described["links"]}
        assert ("items", "application/geo+json") in rels and ("items", "text/html") in rels
    one = ogc.get("/ogc/collections/grids-grid").json()
    assert {(e["rel"], e["type"]) for e in one["links"]} >= {
        ("self", "application/json"),
        ("alternate", "text/html"),
    }
    assert one["extent"]["temporal"]["interval"][0][1] is None  # the active generation: open

    # The draft's grids: every level of its generation (same read rule as GET /api/v1/drafts/{id}).
    generation = ogc.draft["generation_id"]  # type: ignore[attr-defined]
    expected = scalar(
        ogc_engine,
        "SELECT count(*) FROM grid WHERE generation_low <= :g AND generation_high >= :g",
        g=generation,
    )
    assert matched(ogc, f"drafts-{draft_id}-grids") == expected > 1000
    levels = items(ogc, f"drafts-{draft_id}-grids", limit=10000)
    assert {f["properties"]["level"] for f in levels["features"]} == {
        "street",
        "community",
        "grid",
        "micro_grid",
    }
    ogc_error(ogc.get(f"/ogc/collections/drafts-{draft_id + 1}-grids"), 404, "collection_not_found")


def test_paging_through_every_micro_grid(ogc: TestClient, ogc_engine: Engine) -> None:
    expected = grid_count(ogc_engine, "micro_grid")
    url = "/ogc/collections/grids-micro_grid/items?limit=250"
    seen: list[str] = []
    pages = 0
    while url:
        page = ogc.get(url.removeprefix("http://testserver")).json()
        pages += 1
        assert page["numberMatched"] == expected
        assert page["numberReturned"] == len(page["features"])
        assert page["timeStamp"].endswith("Z")
        rels = {link["rel"] for link in page["links"]}
        assert {"self", "alternate", "collection"} <= rels
        assert ("prev" in rels) == (pages > 1)
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), "")
    assert len(seen) == len(set(seen)) == expected > 1000
    assert pages == -(-expected // 250)
    first = items(ogc, "grids-micro_grid", limit=1)["features"][0]
    assert set(first["properties"]) == GRID_KEYS and first["geometry"]["type"] == "MultiPolygon"
    assert first["properties"]["generation"] == active(ogc_engine)
    assert len(items(ogc, "grids-micro_grid")["features"]) == 10  # the default limit


def test_one_feature_and_unknown_ones(ogc: TestClient, ogc_engine: Engine) -> None:
    code = scalar(ogc_engine, "SELECT min(code) FROM grid WHERE level = 'grid'")
    response = ogc.get(f"/ogc/collections/grids-grid/items/{code}")
    assert response.status_code == 200
    assert response.headers["content-crs"] == f"<{CRS84}>"
    feature = response.json()
    assert feature["id"] == code and feature["properties"]["code"] == code
    assert {link["rel"] for link in feature["links"]} >= {"self", "alternate", "collection"}
    event_id = scalar(ogc_engine, "SELECT min(id) FROM event")
    assert ogc.get(f"/ogc/collections/events/items/{event_id}").json()["id"] == event_id
    ogc_error(ogc.get("/ogc/collections/events/items/abc"), 404, "feature_not_found")
    ogc_error(ogc.get("/ogc/collections/grids-grid/items/NOPE"), 404, "feature_not_found")
    ogc_error(ogc.get("/ogc/collections/nope/items"), 404, "collection_not_found")
    assert ogc.get("/ogc/nothing-here").json()["code"] == "not_found"


def test_html_views_are_escaped_chinese_pages(ogc: TestClient, ogc_engine: Engine) -> None:
    hostile = "<script>alert('网格')</script>"
    code = scalar(ogc_engine, "SELECT min(code) FROM grid WHERE level = 'micro_grid'")
    old = scalar(ogc_engine, "SELECT name FROM grid WHERE code = :c", c=code)
    with ogc_engine.begin() as connection:  # writes: the name of one micro-grid, put back below
        connection.execute(
            text("UPDATE grid SET name = :n WHERE code = :c"), {"n": hostile, "c": code}
        )
    try:
        pages = {
            "/ogc?f=html": "OGC API",
            "/ogc/conformance?f=html": "符合的标准类",
            "/ogc/collections?f=html": "要素集合",
            "/ogc/collections/grids-micro_grid?f=html": "属性",
            "/ogc/collections/grids-micro_grid/queryables?f=html": "可查询属性",
            f"/ogc/collections/grids-micro_grid/items?f=html&code={code}": "共 1 个",
            f"/ogc/collections/grids-micro_grid/items/{code}?f=html": "网格编码",
        }
        for url, label in pages.items():
            response = ogc.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith("text/html"), url
            assert label in response.text, url
            assert "<script>alert" not in response.text and "cdn" not in response.text.lower()
        browser = ogc.get("/ogc/collections", headers={"Accept": "text/html,*/*;q=0.8"})
        assert browser.headers["content-type"].startswith("text/html")
        page = ogc.get(f"/ogc/collections/grids-micro_grid/items?f=html&code={code}").text
        assert "&lt;script&gt;alert(" in page
    finally:
        with ogc_engine.begin() as connection:
            connection.execute(
                text("UPDATE grid SET name = :n WHERE code = :c"), {"n": old, "c": code}
            )


def test_etags_answer_304_until_the_collection_changes(ogc: TestClient, ogc_engine: Engine) -> None:
    url = "/ogc/collections/buildings/items?limit=5"
    first = ogc.get(url)
    etag = first.headers["etag"]
    assert ogc.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert ogc.get(url + "&offset=5", headers={"If-None-Match": etag}).status_code == 200
    assert (
        ogc.get(
            "/ogc/collections",
            headers={"If-None-Match": ogc.get("/ogc/collections").headers["etag"]},
        ).status_code
        == 304
    )
    with ogc_engine.begin() as connection:  # writes: one building's timestamp
        connection.execute(
            text(
                "UPDATE building SET updated_at = now() WHERE code = (SELECT min(code) FROM building)"
            )
        )
    assert ogc.get(url, headers={"If-None-Match": etag}).status_code == 200


# --- bbox, datetime, Part 2 CRS --------------------------------------------------------------


def test_bbox_in_crs84_epsg4326_and_a_gauss_kruger_zone(
    ogc: TestClient, ogc_engine: Engine
) -> None:
    box = (120.725, 31.295, 120.74, 31.305)
    in_box = "ST_Intersects(t.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"
    params = dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))
    expected = grid_count(ogc_engine, "micro_grid", in_box, **params)
    assert 0 < expected < grid_count(ogc_engine, "micro_grid")
    crs84 = items(ogc, "grids-micro_grid", limit=10000, bbox=",".join(map(str, box)))
    assert crs84["numberMatched"] == len(crs84["features"]) == expected
    lat_lon = items(
        ogc,
        "grids-micro_grid",
        limit=10000,
        bbox=f"{box[1]},{box[0]},{box[3]},{box[2]}",
        **{"bbox-crs": EPSG.format(4326)},
    )
    assert {f["id"] for f in lat_lon["features"]} == {f["id"] for f in crs84["features"]}

    # The same box in CGCS2000 / 3-degree Gauss-Kruger CM 120E (northing first, as EPSG says).
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True)
    east0, north0 = to_gk.transform(box[0], box[1])
    east1, north1 = to_gk.transform(box[2], box[3])
    gk_box = f"{north0},{east0},{north1},{east1}"
    gauss = items(ogc, "grids-micro_grid", limit=10000, bbox=gk_box, **{"bbox-crs": "EPSG:4549"})
    in_gk = "ST_Intersects(t.geom, ST_Transform(ST_MakeEnvelope(:e0, :n0, :e1, :n1, 4549), 4326))"
    exact = grid_count(ogc_engine, "micro_grid", in_gk, e0=east0, n0=north0, e1=east1, n1=north1)
    assert gauss["numberMatched"] == exact
    # The box's corners agree; its edges differ by metres only, so nearly the same grids.
    ours, theirs = {f["id"] for f in gauss["features"]}, {f["id"] for f in crs84["features"]}
    assert len(ours & theirs) >= 0.9 * len(theirs)


def test_crs_answers_in_lat_lon_and_gauss_kruger_order(ogc: TestClient, ogc_engine: Engine) -> None:
    code = scalar(ogc_engine, "SELECT min(code) FROM monitoring_point")
    lon, lat = json.loads(
        scalar(
            ogc_engine, "SELECT ST_AsGeoJSON(geom) FROM monitoring_point WHERE code = :c", c=code
        )
    )["coordinates"]
    url = f"/ogc/collections/monitoring-points/items/{code}"
    plain = ogc.get(url)
    assert plain.headers["content-crs"] == f"<{CRS84}>"
    assert plain.json()["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-6)
    wgs84 = ogc.get(url, params={"crs": EPSG.format(4326)})
    assert wgs84.headers["content-crs"] == f"<{EPSG.format(4326)}>"
    assert wgs84.json()["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-6)
    cgcs = ogc.get(url, params={"crs": "EPSG:4490"}).json()["geometry"]["coordinates"]
    assert cgcs == pytest.approx([lat, lon], abs=1e-5)
    east, north = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True).transform(lon, lat)
    gk = ogc.get(url, params={"crs": EPSG.format(4549)})
    assert gk.headers["content-crs"] == f"<{EPSG.format(4549)}>"
    assert gk.json()["geometry"]["coordinates"] == pytest.approx([north, east], abs=0.01)
    page = items(ogc, "monitoring-points", crs="EPSG:4326", limit=10000)
    for found in page["features"]:
        first, second = found["geometry"]["coordinates"]
        assert 31 < first < 32 and 120 < second < 121
    gcj = ogc.get(url, params={"crs": "gcj02"})
    assert gcj.headers["content-crs"] == "<gcj02>"
    shifted = gcj.json()["geometry"]["coordinates"]
    assert 0.001 < abs(shifted[0] - lon) + abs(shifted[1] - lat) < 0.02  # hundreds of metres


def test_datetime_selects_a_generation_or_reported_at(ogc: TestClient, ogc_engine: Engine) -> None:
    everything = grid_count(ogc_engine, "grid")
    first = scalar(ogc_engine, "SELECT min(activated_at) FROM generation_activation")
    before = (first.replace(year=first.year - 1)).isoformat()
    assert matched(ogc, "grids-grid", datetime=before) == 0
    assert matched(ogc, "grids-grid", datetime=f"../{before}") == 0
    assert matched(ogc, "grids-grid", datetime=f"{before}/..") == everything
    assert matched(ogc, "grids-grid", datetime="2099-01-01T00:00:00Z") == everything

    start, end = "2026-01-01T00:00:00Z", "2026-06-30T23:59:59Z"
    expected = scalar(
        ogc_engine,
        "SELECT count(*) FROM event WHERE reported_at >= :a AND reported_at <= :b",
        a=start,
        b=end,
    )
    assert matched(ogc, "events", datetime=f"{start}/{end}") == expected
    after = scalar(ogc_engine, "SELECT count(*) FROM event WHERE reported_at >= :a", a=start)
    assert matched(ogc, "events", datetime=f"{start}/..") == after > 0
    assert matched(ogc, "buildings", datetime=start) == scalar(
        ogc_engine, "SELECT count(*) FROM building"
    )


# --- Part 3: queryables and CQL2 -------------------------------------------------------------


def test_queryables_are_the_public_properties(ogc: TestClient) -> None:
    for collection in (EVENTS, BUILDINGS, MONITORING_POINTS):
        response = ogc.get(f"/ogc/collections/{collection.id}/queryables")
        assert response.headers["content-type"] == "application/schema+json"
        schema = response.json()
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["properties"]) == {"geometry", *(p.name for p in collection.properties)}
        assert not set(schema["properties"]) & FORBIDDEN_KEYS
    events = ogc.get("/ogc/collections/events/queryables").json()["properties"]
    assert set(events) == {"geometry", *EVENT_KEYS}
    assert events["reported_at"] == {"title": "上报时间", "type": "string", "format": "date-time"}
    assert events["geometry"]["format"] == "geometry-point"


def _sql_events(engine: Engine, where: str, **params: Any) -> int:
    return int(
        scalar(
            engine,
            f"SELECT count(*) FROM event t LEFT JOIN event_category c ON c.code = t.category_code "
            f"WHERE {where}",
            **params,
        )
    )


def test_cql2_text_and_json_filters_count_as_sql(ogc: TestClient, ogc_engine: Engine) -> None:
    status = scalar(
        ogc_engine, "SELECT status FROM event GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    )
    median = scalar(
        ogc_engine,
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY households) FROM grid "
        "WHERE level = 'micro_grid'",
    )
    cases: list[tuple[str, str | dict[str, Any], int]] = [
        (
            "events",
            f"status = '{status}' AND tier >= 2",
            _sql_events(ogc_engine, "t.status = :s AND t.tier >= 2", s=status),
        ),
        (
            "events",
            {
                "op": "and",
                "args": [
                    {"op": "=", "args": [{"property": "status"}, status]},
                    {"op": ">=", "args": [{"property": "tier"}, 2]},
                ],
            },
            _sql_events(ogc_engine, "t.status = :s AND t.tier >= 2", s=status),
        ),
        (
            "events",
            "category_code IN ('E01', 'E03') OR NOT (source <> 'app')",
            _sql_events(ogc_engine, "t.category_code IN ('E01', 'E03') OR t.source = 'app'"),
        ),
        (
            "events",
            {
                "op": "or",
                "args": [
                    {"op": "in", "args": [{"property": "category_code"}, ["E01", "E03"]]},
                    {"op": "not", "args": [{"op": "<>", "args": [{"property": "source"}, "app"]}]},
                ],
            },
            _sql_events(ogc_engine, "t.category_code IN ('E01', 'E03') OR t.source = 'app'"),
        ),
        (
            "events",
            "closed_at IS NULL AND reported_at >= TIMESTAMP('2026-01-01T00:00:00Z')",
            _sql_events(
                ogc_engine, "t.closed_at IS NULL AND t.reported_at >= '2026-01-01T00:00:00Z'"
            ),
        ),
        (
            "events",
            {
                "op": "and",
                "args": [
                    {"op": "isNull", "args": [{"property": "closed_at"}]},
                    {
                        "op": ">=",
                        "args": [
                            {"property": "reported_at"},
                            {"timestamp": "2026-01-01T00:00:00Z"},
                        ],
                    },
                ],
            },
            _sql_events(
                ogc_engine, "t.closed_at IS NULL AND t.reported_at >= '2026-01-01T00:00:00Z'"
            ),
        ),
        (
            "events",
            "CASEI(source) = CASEI('APP')",
            _sql_events(ogc_engine, "lower(t.source) = 'app'"),
        ),
        (
            "events",
            {
                "op": "=",
                "args": [
                    {"op": "casei", "args": [{"property": "source"}]},
                    {"op": "casei", "args": ["APP"]},
                ],
            },
            _sql_events(ogc_engine, "lower(t.source) = 'app'"),
        ),
        (
            "events",
            "category_name LIKE '%管理' AND tier BETWEEN 2 AND 3",
            _sql_events(ogc_engine, "c.name_zh LIKE '%管理' AND t.tier BETWEEN 2 AND 3"),
        ),
        (
            "events",
            {
                "op": "and",
                "args": [
                    {"op": "like", "args": [{"property": "category_name"}, "%管理"]},
                    {"op": "between", "args": [{"property": "tier"}, 2, 3]},
                ],
            },
            _sql_events(ogc_engine, "c.name_zh LIKE '%管理' AND t.tier BETWEEN 2 AND 3"),
        ),
        (
            "grids-micro_grid",
            f"households > {median} AND name LIKE '%1_微网格'",
            grid_count(
                ogc_engine, "micro_grid", "households > :m AND name LIKE '%1_微网格'", m=median
            ),
        ),
        (  # property–property
            "grids-micro_grid",
            "population <= households",
            grid_count(ogc_engine, "micro_grid", "population <= households"),
        ),
        (
            "grids-micro_grid",
            {"op": "<=", "args": [{"property": "population"}, {"property": "households"}]},
            grid_count(ogc_engine, "micro_grid", "population <= households"),
        ),
    ]
    for collection, expression, expected in cases:
        if isinstance(expression, dict):
            params = {"filter": json.dumps(expression), "filter-lang": "cql2-json"}
        else:
            params = {"filter": expression}
        got = items(ogc, collection, limit=10000, **params)
        assert got["numberMatched"] == len(got["features"]) == expected, (expression, expected)
    counts = [expected for _, _, expected in cases]
    assert all(count > 0 for count in counts[:11]), counts  # each filter keeps something…
    assert all(count < 3000 for count in counts[:10]), counts  # …and drops something


def test_spatial_functions_count_as_postgis(ogc: TestClient, ogc_engine: Engine) -> None:
    code = scalar(ogc_engine, "SELECT min(code) FROM grid WHERE level = 'grid'")
    with ogc_engine.connect() as connection:
        wkt, hull, x, y, box = connection.execute(
            text(
                "SELECT ST_AsText(geom), ST_AsText(ST_ConvexHull(geom)), "
                "ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), "
                "ARRAY[ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom)] "
                "FROM grid WHERE code = :c AND level = 'grid'"
            ),
            {"c": code},
        ).one()

    def postgis(table: str, predicate: str, where: str = "true", **params: Any) -> int:
        return int(
            scalar(
                ogc_engine,
                f"SELECT count(*) FROM {table} t WHERE {where} AND {predicate}",
                **params,
            )
        )

    grids = "t.level = 'micro_grid' AND t.generation_low <= :g AND t.generation_high >= :g"
    g = active(ogc_engine)
    literal = "ST_GeomFromText(:w, 4326)"
    bbox = ",".join(str(v) for v in box)
    cases = [
        (
            "buildings",
            f"S_INTERSECTS(geometry, BBOX({bbox}))",
            "building",
            "ST_Intersects(t.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))",
            "true",
            dict(zip(("x0", "y0", "x1", "y1"), box, strict=True)),
        ),
        (
            "buildings",
            f"S_INTERSECTS(geometry, {hull})",
            "building",
            f"ST_Intersects(t.geom, {literal})",
            "true",
            {"w": hull},
        ),
        (
            "monitoring-points",
            f"S_WITHIN(geometry, {hull})",
            "monitoring_point",
            f"ST_Within(t.geom, {literal})",
            "true",
            {"w": hull},
        ),
        (
            "grids-micro_grid",
            f"S_WITHIN(geometry, {wkt})",
            "grid",
            f"ST_Within(t.geom, {literal})",
            grids,
            {"w": wkt, "g": g},
        ),
        (
            "grids-micro_grid",
            f"S_CONTAINS(geometry, POINT({x} {y}))",
            "grid",
            "ST_Contains(t.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))",
            grids,
            {"x": x, "y": y, "g": g},
        ),
        (
            "grids-micro_grid",
            f"S_DISJOINT(geometry, {hull})",
            "grid",
            f"ST_Disjoint(t.geom, {literal})",
            grids,
            {"w": hull, "g": g},
        ),
        (
            "grids-micro_grid",
            f"S_TOUCHES(geometry, {wkt})",
            "grid",
            f"ST_Touches(t.geom, {literal})",
            grids,
            {"w": wkt, "g": g},
        ),
        (
            "grids-micro_grid",
            f"S_OVERLAPS(geometry, {hull})",
            "grid",
            f"ST_Overlaps(t.geom, {literal})",
            grids,
            {"w": hull, "g": g},
        ),
        (
            "grids-micro_grid",
            f"S_EQUALS(geometry, {wkt})",
            "grid",
            f"ST_Equals(t.geom, {literal})",
            grids,
            {"w": wkt, "g": g},
        ),
        (
            "buildings",
            f"S_CROSSES(geometry, LINESTRING({box[0]} {y}, {box[2]} {y}))",
            "building",
            "ST_Crosses(t.geom, ST_SetSRID(ST_MakeLine(ST_MakePoint(:x0, :y), ST_MakePoint(:x1, :y)), 4326))",
            "true",
            {"x0": box[0], "x1": box[2], "y": y},
        ),
    ]
    counts = []
    for collection, expression, table, predicate, where, params in cases:
        expected = postgis(table, predicate, where, **params)
        got = items(ogc, collection, limit=10000, filter=expression)
        assert got["numberMatched"] == len(got["features"]) == expected, (expression, expected)
        counts.append(expected)
    assert counts[4] == 1 and all(c > 0 for c in counts[:4]), counts
    json_filter = {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(box)}]}
    got = items(
        ogc, "buildings", limit=1, filter=json.dumps(json_filter), **{"filter-lang": "cql2-json"}
    )
    assert got["numberMatched"] == counts[0]
    geojson_filter = {
        "op": "s_contains",
        "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [x, y]}],
    }
    contains = items(
        ogc, "grids-micro_grid", filter=json.dumps(geojson_filter), **{"filter-lang": "cql2-json"}
    )
    assert contains["numberMatched"] == 1

    # filter-crs: the same point in Gauss-Kruger CM 120E, northing first.
    east, north = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True).transform(x, y)
    in_gk = items(
        ogc,
        "grids-micro_grid",
        filter=f"S_CONTAINS(geometry, POINT({north} {east}))",
        **{"filter-crs": EPSG.format(4549)},
    )
    assert [f["id"] for f in in_gk["features"]] == [f["id"] for f in contains["features"]]
    lat_lon = items(
        ogc,
        "grids-micro_grid",
        filter=f"S_CONTAINS(geometry, POINT({y} {x}))",
        **{"filter-crs": "EPSG:4326"},
    )
    assert [f["id"] for f in lat_lon["features"]] == [f["id"] for f in contains["features"]]


def test_queryables_as_query_parameters(ogc: TestClient, ogc_engine: Engine) -> None:
    status = scalar(ogc_engine, "SELECT status FROM event GROUP BY 1 ORDER BY count(*) LIMIT 1")
    expected = _sql_events(ogc_engine, "t.status = :s AND t.tier = 3", s=status)
    assert matched(ogc, "events", status=status, tier=3) == expected
    both = matched(ogc, "events", status=status, filter="tier = 3")
    assert both == expected
    ogc_error(ogc.get("/ogc/collections/events/items?tier=abc"), 400, "type_mismatch")


# --- bad input and privacy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code", "where"),
    [
        ({"bbox": "121,32,120,31"}, "invalid_bbox", "query.bbox"),
        ({"bbox": "120,31,121"}, "invalid_bbox", "query.bbox"),
        ({"bbox": "31,120,32,121"}, "invalid_bbox", "query.bbox"),  # lat/lon read as CRS84 ≠
        ({"bbox": "120,31,121,32", "bbox-crs": "EPSG:3857"}, "unknown_crs", "query.bbox-crs"),
        ({"crs": "EPSG:999999"}, "unknown_crs", "query.crs"),
        ({"crs": "+proj=longlat"}, "unknown_crs", "query.crs"),
        ({"filter": "status = "}, "invalid_filter", "query.filter"),
        ({"filter": "nosuch = 1"}, "unknown_property", "query.filter"),
        ({"filter": "description LIKE '%'"}, "unknown_property", "query.filter"),
        ({"filter": "tier = 'abc'"}, "type_mismatch", "query.filter"),
        ({"filter": "reported_at > 'yesterday'"}, "invalid_filter", "query.filter"),
        ({"filter": "S_INTERSECTS(status, POINT(1 2))"}, "invalid_filter", "query.filter"),
        ({"filter": "tier + 1 > 2"}, "unsupported_filter", "query.filter"),
        ({"filter": "NOT (" * 1000 + "tier = 1" + ")" * 1000}, "invalid_filter", "query.filter"),
        ({"filter": "{not json", "filter-lang": "cql2-json"}, "invalid_filter", "query.filter"),
        (
            {"filter": '{"op": "t_before", "args": []}', "filter-lang": "cql2-json"},
            "unsupported_filter",
            "query.filter",
        ),
        ({"filter": "tier = 1", "filter-lang": "ecql"}, "invalid_filter_lang", "query.filter-lang"),
        (
            {"filter": "S_INTERSECTS(geometry, POINT(1 2))", "filter-crs": "EPSG:1"},
            "unknown_crs",
            "query.filter-crs",
        ),
        ({"bbox": "0,0,1e12,1e12", "bbox-crs": "EPSG:4549"}, "invalid_bbox", "query.bbox"),
        (
            {"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 0 0)))"},
            "invalid_geometry",
            "query.filter",
        ),
        (
            {"filter": "S_INTERSECTS(geometry, POLYGON((120 31, 121 32, 121 31, 120 32, 120 31)))"},
            "invalid_geometry",
            "query.filter",
        ),
        (
            {"filter": "S_INTERSECTS(geometry, POINT(1e12 1e12))", "filter-crs": "EPSG:4549"},
            "invalid_geometry",
            "query.filter",
        ),
        (
            {
                "filter": '{"op": "=", "args": [{"property": "status"}, "\\u0000"]}',
                "filter-lang": "cql2-json",
            },
            "nul_character",
            "query.filter",
        ),
        ({"limit": "0"}, "invalid_limit", "query.limit"),
        ({"limit": "10001"}, "invalid_limit", "query.limit"),
        ({"limit": "ten"}, "invalid_limit", "query.limit"),
        ({"offset": "-1"}, "invalid_offset", "query.offset"),
        ({"datetime": "yesterday"}, "invalid_datetime", "query.datetime"),
        ({"datetime": "2026-02-01/2026-01-01"}, "invalid_datetime", "query.datetime"),
        ({"f": "xml"}, "invalid_format", "query.f"),
    ],
)
def test_bad_input_is_an_ogc_400(
    ogc: TestClient, query: dict[str, str], code: str, where: str
) -> None:
    response = ogc.get(f"/ogc/collections/events/items?{urlencode(query)}")
    body = ogc_error(response, 400, code)
    assert body["where"] == body["error"]["where"] == where


def test_anonymous_and_planners_see_only_public_fields(
    ogc: TestClient, ogc_tokens: dict[str, str], ogc_engine: Engine
) -> None:
    description = scalar(
        ogc_engine, "SELECT description FROM event WHERE description <> '' LIMIT 1"
    )
    for headers in ({}, bearer(ogc_tokens["planner"]), bearer(ogc_tokens["admin"])):
        page = ogc.get("/ogc/collections/events/items?limit=10000", headers=headers)
        features = page.json()["features"]
        assert len(features) == scalar(ogc_engine, "SELECT count(*) FROM event")
        keys = set().union(*(f["properties"] for f in features))
        assert keys == EVENT_KEYS and not keys & FORBIDDEN_KEYS
        assert description not in page.text
        html_page = ogc.get("/ogc/collections/events/items?f=html&limit=500", headers=headers)
        assert description not in html_page.text
    for collection, allowed in (
        ("buildings", {p.name for p in BUILDINGS.properties}),
        ("monitoring-points", {p.name for p in MONITORING_POINTS.properties}),
        ("grids-micro_grid", GRID_KEYS),
    ):
        features = items(ogc, collection, limit=10000)["features"]
        keys = set().union(*(f["properties"] for f in features))
        assert keys == allowed and "attributes" not in keys, collection


def test_openapi_document_validates(ogc: TestClient) -> None:
    from openapi_spec_validator import validate

    document = ogc.get("/api/v1/openapi.json").json()
    assert "/ogc/collections/{collectionId}/items" in document["paths"]
    validate(document)
    validate(ogc.get("/ogc/api").json())


# Each declared conformance class and the tests that prove it: a class declared without a test
# here fails the suite, and each test named must exist.
HONOURED_BY = {
    "ogcapi-features-1/1.0/conf/core": [
        "test_landing_page_and_conformance",
        "test_collections_listed_for_each_caller",
        "test_paging_through_every_micro_grid",
        "test_one_feature_and_unknown_ones",
        "test_bbox_in_crs84_epsg4326_and_a_gauss_kruger_zone",
        "test_datetime_selects_a_generation_or_reported_at",
        "test_bad_input_is_an_ogc_400",
    ],
    "ogcapi-features-1/1.0/conf/geojson": ["test_paging_through_every_micro_grid"],
    "ogcapi-features-1/1.0/conf/html": ["test_html_views_are_escaped_chinese_pages"],
    "ogcapi-features-2/1.0/conf/crs": [
        "test_bbox_in_crs84_epsg4326_and_a_gauss_kruger_zone",
        "test_crs_answers_in_lat_lon_and_gauss_kruger_order",
    ],
    "ogcapi-features-3/1.0/conf/queryables": ["test_queryables_are_the_public_properties"],
    "ogcapi-features-3/1.0/conf/queryables-query-parameters": [
        "test_queryables_as_query_parameters"
    ],
    "ogcapi-features-3/1.0/conf/filter": ["test_cql2_text_and_json_filters_count_as_sql"],
    "ogcapi-features-3/1.0/conf/features-filter": ["test_cql2_text_and_json_filters_count_as_sql"],
    "cql2/1.0/conf/cql2-text": ["test_cql2_text_and_json_filters_count_as_sql"],
    "cql2/1.0/conf/cql2-json": ["test_cql2_text_and_json_filters_count_as_sql"],
    "cql2/1.0/conf/basic-cql2": ["test_cql2_text_and_json_filters_count_as_sql"],
    "cql2/1.0/conf/advanced-comparison-operators": ["test_cql2_text_and_json_filters_count_as_sql"],
    "cql2/1.0/conf/case-insensitive-comparison": ["test_cql2_text_and_json_filters_count_as_sql"],
    "cql2/1.0/conf/basic-spatial-functions": ["test_spatial_functions_count_as_postgis"],
    "cql2/1.0/conf/basic-spatial-functions-plus": ["test_spatial_functions_count_as_postgis"],
    "cql2/1.0/conf/spatial-functions": ["test_spatial_functions_count_as_postgis"],
    "cql2/1.0/conf/property-property": ["test_cql2_text_and_json_filters_count_as_sql"],
}


def test_every_declared_class_has_its_tests() -> None:
    declared = {c.removeprefix("http://www.opengis.net/spec/") for c in conformance.CLASSES}
    assert declared == set(HONOURED_BY)
    for names in HONOURED_BY.values():
        for name in names:
            assert callable(globals().get(name)), name
