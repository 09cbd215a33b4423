"""Lookup through the HTTP API as a calling system uses it."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from sqlalchemy import text

from spatial.crs import from_wgs84_xy
from tests.conftest import bearer


def _interior_point(engine, code: str) -> tuple[float, float]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE code = :c "
                    "AND generation_high = (SELECT max(generation_high) FROM grid)) s"
                ),
                {"c": code},
            ).one()
        )


def _shared_vertex(engine) -> tuple[float, float, list[str]]:
    """A vertex of micro-grid 320571005001001001 that other micro-grids share."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT ST_X(v), ST_Y(v), array_agg(g.code ORDER BY g.code) FROM (SELECT (ST_DumpPoints(geom)).geom v "
                "FROM grid WHERE code = '320571005001001001') p JOIN grid g ON g.level = 'micro_grid' "
                "AND ST_Covers(g.geom, p.v) GROUP BY v HAVING count(*) >= 2 LIMIT 1"
            )
        ).one()
    return row[0], row[1], list(row[2])


def test_single_lookup_in_every_crs(client, engine):
    lon, lat = _interior_point(engine, "320571005003002004")
    for crs in ("EPSG:4326", "4490", "EPSG:4549", "EPSG:3857", "gcj02", "bd09"):
        x, y = from_wgs84_xy(
            np.array([lon]),
            np.array([lat]),
            crs.upper() if crs[0].isalpha() and ":" not in crs else crs,
        )
        body = client.get("/api/v1/lookup", params={"lon": x[0], "lat": y[0], "crs": crs}).json()
        assert body["matched"] and body["grid"]["code"] == "320571005003002004", crs
        assert [p["level"] for p in body["path"]] == ["street", "community", "grid", "micro_grid"]
        assert abs(body["lon"] - lon) < 1e-7 and abs(body["lat"] - lat) < 1e-7
        assert body["distance_to_edge_m"] > 0 and body["on_boundary"] is False
        assert "staff" not in body  # anonymous callers never see contacts


def test_shared_edge_has_one_deterministic_answer(client, engine):
    lon, lat, owners = _shared_vertex(engine)
    answers = {
        client.get("/api/v1/lookup", params={"lon": lon, "lat": lat, "crs": "EPSG:4326"}).json()[
            "grid"
        ]["code"]
        for _ in range(3)
    }
    assert answers == {min(owners)}  # the smallest code wins
    body = client.get("/api/v1/lookup", params={"lon": lon, "lat": lat, "crs": "EPSG:4326"}).json()
    assert body["on_boundary"] is True and body["distance_to_edge_m"] == 0
    assert body["runner_up"]["code"] in owners and body["runner_up"]["distance_m"] == 0


def test_runner_up_near_an_edge_only(client, engine):
    lon, lat, owners = _shared_vertex(engine)
    inside_x, inside_y = _interior_point(engine, owners[0])
    # 2 m from the vertex towards the interior of the first owner: near the edge.
    direction = np.array([inside_x - lon, inside_y - lat])
    step = direction / np.linalg.norm(direction) * 2e-5
    body = client.get(
        "/api/v1/lookup", params={"lon": lon + step[0], "lat": lat + step[1], "crs": "4326"}
    ).json()
    assert body["runner_up"] is not None and body["runner_up"]["distance_m"] <= 5
    far = client.get(
        "/api/v1/lookup", params={"lon": inside_x, "lat": inside_y, "crs": "4326", "near_m": 1}
    ).json()
    assert far["runner_up"] is None


def test_outside_points_get_the_nearest_grid(client):
    body = client.get(
        "/api/v1/lookup", params={"lon": 120.80, "lat": 31.305, "crs": "EPSG:4326"}
    ).json()
    assert body["matched"] is False and body["grid"] is None and body["path"] == []
    assert body["nearest"]["level"] == "micro_grid" and 3000 < body["nearest"]["distance_m"] < 6000


def test_bad_coordinates_are_clear_422s(client):
    def error(params):
        response = client.get("/api/v1/lookup", params=params)
        assert response.status_code == 422, response.text
        return response.json()["error"]

    assert "颠倒" in error({"lon": 31.3, "lat": 120.73, "crs": "gcj02"})["message"]
    assert "超出范围" in error({"lon": 190, "lat": 31.3, "crs": "EPSG:4326"})["message"]
    assert error({"lon": 120.7, "lat": 31.3, "crs": "EPSG:99999"})["code"] == "unknown_crs"
    assert error({"lon": 120.7, "lat": 31.3})["where"] == "query.crs"  # crs is required
    assert error({"lon": "east", "lat": 31.3, "crs": "4326"})["where"] == "query.lon"


def test_at_uses_the_generation_active_then(client):
    assert (
        client.get(
            "/api/v1/lookup",
            params={"lon": 120.73, "lat": 31.3, "crs": "4326", "at": "2001-01-01T00:00:00Z"},
        ).status_code
        == 404
    )
    now = datetime.now(UTC).isoformat()
    assert (
        client.get(
            "/api/v1/lookup", params={"lon": 120.73, "lat": 31.3, "crs": "4326", "at": now}
        ).json()["generation"]
        == 1
    )


def test_staff_for_entitled_callers_only(client, engine, tokens):
    lon, lat = _interior_point(engine, "320571005001001001")
    params = {"lon": lon, "lat": lat, "crs": "4326"}
    dispatcher = client.get(
        "/api/v1/lookup", params=params, headers=bearer(tokens["dispatcher"])
    ).json()
    roles = [s["role_label"] for s in dispatcher["staff"]]
    assert roles[0] == "微网格联络员" and {"网格长", "专职网格员"} <= set(
        roles
    )  # finest grid first
    assert (
        "staff"
        not in client.get("/api/v1/lookup", params=params, headers=bearer(tokens["viewer"])).json()
    )
    assert (
        "staff"
        in client.get("/api/v1/lookup", params=params, headers=bearer(tokens["field_staff"])).json()
    )
    other = dict(zip(("lon", "lat"), _interior_point(engine, "320571005002001001"), strict=True))
    assert (
        "staff"
        not in client.get(
            "/api/v1/lookup", params=other | {"crs": "4326"}, headers=bearer(tokens["field_staff"])
        ).json()
    )


def test_batch_keeps_input_order(client, engine):
    codes = ["320571005008001001", "320571005001001001", "320571005004003002"]
    points = [
        {"lon": x, "lat": y, "id": f"p{i}"}
        for i, (x, y) in enumerate(_interior_point(engine, c) for c in codes)
    ]
    points.insert(1, {"lon": 31.3, "lat": 120.7, "id": "swapped"})
    body = client.post("/api/v1/lookup/batch", json={"crs": "EPSG:4326", "points": points}).json()
    assert [r["id"] for r in body["results"]] == ["p0", "swapped", "p1", "p2"]
    assert [r["grid"]["code"] for r in body["results"] if r.get("grid")] == codes
    assert body["results"][1]["error"]["code"] == "invalid_coordinates"
    too_many = client.post(
        "/api/v1/lookup/batch", json={"crs": "4326", "points": [{"lon": 1, "lat": 1}] * 100_001}
    )
    assert too_many.status_code in (413, 422)


def test_batch_files(client, engine):
    lon, lat = _interior_point(engine, "320571005006002003")
    gx, gy = from_wgs84_xy(np.array([lon]), np.array([lat]), "GCJ02")
    csv = f"编号,经度,纬度\nA,{gx[0]},{gy[0]}\nB,abc,31.3\n".encode()
    geojson = json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": "A",
                    "properties": {},
                    "geometry": {"type": "Point", "coordinates": [gx[0], gy[0]]},
                }
            ],
        }
    ).encode()
    buffer = io.BytesIO()
    pq.write_table(pa.table({"lng": [gx[0]], "lat": [gy[0]]}), buffer)
    for name, content, count in (
        ("p.csv", csv, 2),
        ("p.geojson", geojson, 1),
        ("p.parquet", buffer.getvalue(), 1),
    ):
        body = client.post(
            "/api/v1/lookup/batch/file", data={"crs": "gcj02"}, files={"file": (name, content)}
        ).json()
        assert body["count"] == count, name
        assert body["results"][0]["grid"]["code"] == "320571005006002003", name
    assert body["results"][0]["id"] == 1
    bad = client.post(
        "/api/v1/lookup/batch/file", data={"crs": "gcj02"}, files={"file": ("p.csv", b"a,b\n1,2\n")}
    )
    assert bad.status_code == 422 and "经度" in bad.json()["error"]["message"]


def test_address_matching(client):
    good = client.get(
        "/api/v1/geocode/address", params={"q": "苏州工业园区青丘街１号锦玉苑一栋301室"}
    ).json()
    assert good["matched"] and good["precision"] == "building"
    assert good["confidence"] >= good["threshold"]
    assert (
        good["building"]["address"].endswith("青丘街1号锦玉苑1幢")
        and good["grid"]["level"] == "micro_grid"
    )
    wrong_number = client.get("/api/v1/geocode/address", params={"q": "青丘街2号锦玉苑1幢"}).json()
    # The house number disagrees with the register: not that building, only its compound.
    assert wrong_number["precision"] == "compound" and wrong_number["building"] is None
    assert any(c["precision"] == "building" for c in wrong_number["candidates"])
    assert all(c["confidence"] < wrong_number["threshold"] for c in wrong_number["candidates"])
    nothing = client.get("/api/v1/geocode/address", params={"q": "人民路100号"}).json()
    assert nothing["matched"] is False


def test_index_follows_a_publish_within_a_second(client, engine, tokens):
    """Publish a redrawn grid through the API; the running service's index switches over."""
    lon, lat = _interior_point(engine, "320571005002003")
    assert (
        client.get("/api/v1/lookup", params={"lon": lon, "lat": lat, "crs": "4326"}).json()[
            "generation"
        ]
        == 1
    )
    layer = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "grid"}
    ).content
    data = json.loads(layer)
    for feature in data["features"]:
        if feature["properties"]["code"] == "320571005002003":
            feature["properties"]["name"] = "重新命名的网格"
    published = client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "grid"},
        files={"file": ("g.geojson", json.dumps(data).encode())},
    )
    assert published.status_code == 200 and published.json()["generation"] == 2
    started = time.monotonic()
    while time.monotonic() - started < 3:
        body = client.get("/api/v1/lookup", params={"lon": lon, "lat": lat, "crs": "4326"}).json()
        if body["generation"] == 2:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert body["generation"] == 2 and body["path"][2]["name"] == "重新命名的网格"
    assert elapsed < 1.5  # within a second of the publish (plus polling slack)
    assert shapely.Point(lon, lat)  # the same point, now answered from generation 2
