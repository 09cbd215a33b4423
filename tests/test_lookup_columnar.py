"""POST /api/v1/lookup/batch in columns: JSON arrays, Arrow IPC streams and Parquet.

Every form must give the codes PostGIS gives (ST_Covers with the tie-break) and the row form
gives; the answers are read back with pyarrow and with polars (an Arrow and Parquet
implementation of its own, in Rust). Bad input is refused before the index is touched.
"""

from __future__ import annotations

import io

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.db.grids import owners_by_postgis
from api.lookup.index_store import load_grid_index
from tests.conftest import bearer

URL = "/api/v1/lookup/batch"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
JSON = "application/json"
OWN_GRID = "320571005001001"  # the field_staff token's grid (tests/conftest.py)


def _active_generation(engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT generation_id FROM generation_activation ORDER BY activated_at DESC, id DESC LIMIT 1"
                )
            ).scalar_one()
        )


@pytest.fixture
def probes(engine):
    """Shared vertices (only the tie-break decides), points near edges, random points (some
    outside the street), and what PostGIS says of each."""
    generation = _active_generation(engine)
    with engine.begin() as connection:
        index = load_grid_index(connection, generation)
        micro = index.geometries[
            [i for i, r in enumerate(index.records) if r.level == "micro_grid"]
        ]
        rng = np.random.default_rng(15)
        vertices = np.unique(shapely.get_coordinates(shapely.boundary(micro)), axis=0)
        vertices = vertices[rng.choice(len(vertices), 400, replace=False)]
        edges = shapely.boundary(micro[rng.choice(len(micro), 800)])
        near = shapely.get_coordinates(
            shapely.line_interpolate_point(edges, rng.uniform(0, 1, 800), normalized=True)
        ) + rng.uniform(-8e-5, 8e-5, (800, 2))
        xmin, ymin, xmax, ymax = shapely.total_bounds(index.geometries)
        spread = rng.uniform((xmin - 0.01, ymin - 0.01), (xmax + 0.01, ymax + 0.01), (800, 2))
        points = np.concatenate([vertices, near, spread])
        expected = owners_by_postgis(connection, points[:, 0], points[:, 1], generation)
    assert len(points) == 2000 and 0 < expected.count(None) < 800
    return points[:, 0], points[:, 1], expected, generation


def _arrow(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _post(client, content: bytes, media: str, params=None, headers=None):
    return client.post(
        URL, content=content, params=params, headers={"Content-Type": media, **(headers or {})}
    )


def test_every_form_gives_the_codes_postgis_gives(client, probes):
    lon, lat, expected, generation = probes
    ids = [f"p{i}" for i in range(len(lon))]
    rows = client.post(
        URL,
        json={
            "crs": "EPSG:4326",
            "points": [
                {"lon": x, "lat": y, "id": i} for x, y, i in zip(lon, lat, ids, strict=True)
            ],
        },
    ).json()
    assert [r["id"] for r in rows["results"]] == ids
    assert [r["grid"]["code"] if r["grid"] else None for r in rows["results"]] == expected

    columns = client.post(
        URL, json={"crs": "EPSG:4326", "lon": lon.tolist(), "lat": lat.tolist(), "ids": ids}
    )
    assert columns.headers["content-type"] == "application/json"
    answer = columns.json()
    assert (answer["generation"], answer["count"], answer["ids"]) == (generation, 2000, ids)
    assert answer["code"] == expected
    assert answer["matched"] == [code is not None for code in expected]

    # Arrow written by pyarrow, answer read by pyarrow's stream reader and by polars.
    table = pa.table({"lon": lon, "lat": lat, "id": pa.array(range(len(lon)), pa.int32())})
    arrow = _post(client, _arrow(table), ARROW, {"crs": "4326"})
    assert arrow.headers["content-type"] == ARROW
    assert arrow.headers["x-wangge-generation"] == str(generation)
    read = pa.ipc.open_stream(arrow.content).read_all()
    assert read.column("code").to_pylist() == expected
    assert read.column("id").to_pylist() == list(range(len(lon)))
    assert read.schema.metadata[b"generation"] == str(generation).encode()
    assert pl.read_ipc_stream(io.BytesIO(arrow.content))["code"].to_list() == expected

    # Parquet written by polars, answer read by polars and by pyarrow.parquet.
    frame = pl.DataFrame({"lon": lon, "lat": lat, "id": ids})
    written = io.BytesIO()
    frame.write_parquet(written)
    parquet = _post(client, written.getvalue(), PARQUET, {"crs": "EPSG:4326"})
    assert parquet.headers["content-type"] == PARQUET
    assert pl.read_parquet(io.BytesIO(parquet.content))["code"].to_list() == expected
    assert pq.read_table(pa.BufferReader(parquet.content)).column("id").to_pylist() == ids

    # An Arrow stream written by polars; the answer in the form Accept asks for.
    stream = io.BytesIO()
    frame.write_ipc_stream(stream)
    for accept, read_back in (
        ("application/json", lambda r: r.json()["code"]),
        (PARQUET, lambda r: pl.read_parquet(io.BytesIO(r.content))["code"].to_list()),
        (
            f"text/html;q=0.9, {ARROW}",
            lambda r: pl.read_ipc_stream(io.BytesIO(r.content))["code"].to_list(),
        ),
    ):
        response = _post(client, stream.getvalue(), ARROW, {"crs": "4326"}, {"Accept": accept})
        assert response.status_code == 200, response.text
        assert read_back(response) == expected, accept
    # The row form answers in columns when it names fields or asks for Arrow.
    small = {
        "crs": "4326",
        "points": [{"lon": lon[0], "lat": lat[0]}, {"lon": lon[1], "lat": lat[1]}],
    }
    assert client.post(URL, json=small, params={"fields": "code"}).json()["code"] == expected[:2]
    as_arrow = client.post(URL, json=small, headers={"Accept": ARROW})
    assert (
        pa.ipc.open_stream(as_arrow.content).read_all().column("code").to_pylist() == expected[:2]
    )


FULL = "code,level,name,path,matched,distance_to_edge_m,on_boundary,runner_up,nearest,lon,lat"


def test_fields_choose_the_columns_and_agree_with_the_row_answer(client, probes):
    lon, lat, expected, _ = probes
    body = {"crs": "4326", "lon": lon.tolist(), "lat": lat.tolist()}
    default = client.post(URL, json=body).json()
    assert list(default) == [
        "generation",
        "count",
        "code",
        "level",
        "name",
        "matched",
        "error",
        "error_message",
    ]
    only_codes = client.post(URL, json=body, params={"fields": "code"}).json()
    assert list(only_codes) == ["generation", "count", "code", "error", "error_message"]
    full = client.post(URL, json=body, params={"fields": FULL}).json()
    assert len(full) == 2 + 13 + 2  # runner_up and nearest bring their distances
    rows = client.post(
        URL,
        json={
            "crs": "4326",
            "points": [{"lon": x, "lat": y} for x, y in zip(lon, lat, strict=True)],
        },
    ).json()["results"]
    for i, row in enumerate(rows):
        assert full["code"][i] == (row["grid"] and row["grid"]["code"]) == expected[i]
        assert full["path"][i] == ([p["code"] for p in row["path"]] if row["matched"] else None)
        assert full["level"][i] == (row["grid"] and row["grid"]["level"])
        assert full["distance_to_edge_m"][i] == row["distance_to_edge_m"]
        assert full["on_boundary"][i] == (row["on_boundary"] if row["matched"] else None)
        assert full["runner_up"][i] == (row["runner_up"] and row["runner_up"]["code"])
        assert full["runner_up_distance_m"][i] == (
            row["runner_up"] and row["runner_up"]["distance_m"]
        )
        assert full["nearest"][i] == (row["nearest"] and row["nearest"]["code"])
        assert (full["lon"][i], full["lat"][i]) == (row["lon"], row["lat"])
    assert sum(c is not None for c in full["runner_up"]) > 100  # edges and vertices have one
    assert sum(c is not None for c in full["nearest"]) == expected.count(None)
    # Arrow and Parquet carry the same columns, with types a reader can use.
    table = pa.ipc.open_stream(
        _post(
            client,
            _arrow(pa.table({"lon": lon, "lat": lat})),
            ARROW,
            {"crs": "4326", "fields": FULL},
        ).content
    ).read_all()
    assert table.num_columns == 15
    assert table.schema.field("path").type == pa.list_(pa.string())
    assert table.schema.field("distance_to_edge_m").type == pa.float64()
    assert table.column("runner_up").to_pylist() == full["runner_up"]
    assert table.column("on_boundary").to_pylist() == full["on_boundary"]


def test_invalid_points_and_other_crs(client, engine, probes):
    lon, lat, expected, _ = probes
    from spatial.crs import from_wgs84_xy

    inside = slice(1200, 1250)  # random points: none within centimetres of an edge
    x, y = from_wgs84_xy(lon[inside], lat[inside], "GCJ02")
    x, y = np.append(x, [31.3, 500.0]), np.append(y, [120.7, 1.0])  # swapped; out of range
    answer = client.post(
        URL,
        json={"crs": "gcj02", "lon": x.tolist(), "lat": y.tolist()},
        params={"fields": "code,matched"},
    ).json()
    assert answer["count"] == 52
    assert answer["code"] == [*expected[inside], None, None]
    assert answer["matched"][-2:] == [False, False]
    assert answer["error"] == [None] * 50 + ["invalid_coordinates"] * 2
    assert "颠倒" in answer["error_message"][50] and "超出范围" in answer["error_message"][51]
    parquet = pq.read_table(
        pa.BufferReader(
            _post(
                client, _parquet(pa.table({"lon": x, "lat": y})), PARQUET, {"crs": "gcj02"}
            ).content
        )
    )
    assert parquet.column("error").to_pylist() == answer["error"]
    assert parquet.column("code").to_pylist() == answer["code"]


def _inside(engine, code: str) -> tuple[float, float]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
                    "WHERE code = :c ORDER BY generation_high DESC LIMIT 1) s"
                ),
                {"c": code},
            ).one()
        )


def test_staff_only_for_callers_entitled(client, engine, tokens):
    own, other = _inside(engine, OWN_GRID + "001"), _inside(engine, "320571005008001001")
    body = {"crs": "4326", "lon": [own[0], other[0]], "lat": [own[1], other[1]]}
    seen = {}
    for caller in ("anonymous", "viewer", "handler", "field_staff", "dispatcher", "admin"):
        headers = bearer(tokens[caller]) if caller != "anonymous" else {}
        staff = client.post(
            URL, json=body, params={"fields": "code,staff"}, headers=headers
        ).json()["staff"]
        single = [
            client.get(
                "/api/v1/lookup", params={"lon": x, "lat": y, "crs": "4326"}, headers=headers
            )
            .json()
            .get("staff")
            for x, y in zip(body["lon"], body["lat"], strict=True)
        ]
        assert staff == single, caller  # exactly what the single lookup shows this caller
        seen[caller] = [s is not None for s in staff]
    assert seen == {
        "anonymous": [False, False],
        "viewer": [False, False],
        "handler": [False, False],
        "field_staff": [True, False],
        "dispatcher": [True, True],
        "admin": [True, True],
    }
    # In Arrow: a list of structs, and still nothing for anonymous callers.
    table = _arrow(pa.table({"lon": body["lon"], "lat": body["lat"]}))
    admin = pa.ipc.open_stream(
        _post(
            client, table, ARROW, {"crs": "4326", "fields": "staff"}, bearer(tokens["admin"])
        ).content
    ).read_all()
    assert admin.column("staff").to_pylist()[0][0]["grid_code"].startswith(OWN_GRID)
    anonymous = pa.ipc.open_stream(
        _post(client, table, ARROW, {"crs": "4326", "fields": "staff"}).content
    )
    assert anonymous.read_all().column("staff").to_pylist() == [None, None]


def _too_big(settings) -> bytes:
    return b"[" + b"0," * (settings.limits.max_request_bytes // 2) + b"0]"


def _bad_inputs(settings) -> list[tuple[str, dict, int, str, str | None]]:
    one = {"crs": "4326", "lon": [120.6], "lat": [31.3]}
    many = np.full(100_001, 120.6)
    raw = lambda text_: {"content": text_.encode(), "headers": {"Content-Type": "application/json"}}  # noqa: E731
    arrow = lambda table, **params: {  # noqa: E731
        "content": _arrow(table),
        "headers": {"Content-Type": ARROW},
        "params": {"crs": "4326", **params},
    }
    return [
        (
            "lengths differ",
            {"json": one | {"lat": [31.3, 31.4]}},
            422,
            "length_mismatch",
            "body.lat",
        ),
        ("ids length", {"json": one | {"ids": [1, 2]}}, 422, "length_mismatch", "body.ids"),
        (
            "NaN in JSON",
            raw('{"crs":"4326","lon":[120.6,NaN],"lat":[31.3,31.3]}'),
            422,
            "non_finite",
            "body.lon[1]",
        ),
        (
            "Infinity in JSON",
            raw('{"crs":"4326","lon":[120.6],"lat":[-Infinity]}'),
            422,
            "non_finite",
            "body.lat[0]",
        ),
        (
            "1e400 in JSON",
            raw('{"crs":"4326","lon":[1e400],"lat":[31.3]}'),
            422,
            "non_finite",
            "body.lon[0]",
        ),
        (
            "text in lon",
            {"json": one | {"lon": [120.6, "120.7"], "lat": [1, 2]}},
            422,
            "not_a_number",
            "body.lon[1]",
        ),
        (
            "NaN in Arrow",
            arrow(pa.table({"lon": [120.6, 120.6], "lat": [31.3, float("nan")]})),
            422,
            "non_finite",
            "body.lat[1]",
        ),
        (
            "null in Arrow",
            arrow(pa.table({"lon": [None, 120.6], "lat": [31.3, 31.3]})),
            422,
            "null_coordinate",
            "body.lon[0]",
        ),
        (
            "Arrow without lon",
            arrow(pa.table({"x": [120.6], "lat": [31.3]})),
            422,
            "invalid_schema",
            "body.lon",
        ),
        (
            "Arrow string lat",
            arrow(pa.table({"lon": [120.6], "lat": ["31.3"]})),
            422,
            "invalid_schema",
            "body.lat",
        ),
        (
            "Arrow float id",
            arrow(pa.table({"lon": [120.6], "lat": [31.3], "id": [1.5]})),
            422,
            "invalid_schema",
            "body.id",
        ),
        (
            "Arrow without crs",
            {**arrow(pa.table({"lon": [120.6], "lat": [31.3]})), "params": {}},
            422,
            "missing_crs",
            "query.crs",
        ),
        (
            "100,001 in JSON",
            {"json": {"crs": "4326", "lon": many.tolist(), "lat": many.tolist()}},
            422,
            "too_many_points",
            "body.lon",
        ),
        (
            "100,001 in Arrow",
            arrow(pa.table({"lon": many, "lat": many})),
            422,
            "too_many_points",
            "body",
        ),
        (
            "100,001 in compressed Arrow",
            {
                **arrow(pa.table({"lon": many, "lat": many})),
                "content": _arrow(pa.table({"lon": many, "lat": many}), "zstd"),
            },
            422,
            "too_many_points",
            "body",
        ),
        (
            "100,001 in Parquet",
            {
                "content": _parquet(pa.table({"lon": many, "lat": many})),
                "headers": {"Content-Type": PARQUET},
                "params": {"crs": "4326"},
            },
            422,
            "too_many_points",
            "body",
        ),
        (
            "100,001 rows",
            {"json": {"crs": "4326", "points": [{"lon": 1, "lat": 1}] * 100_001}},
            422,
            "validation_error",
            "body.points",
        ),
        (
            "unknown field",
            {"json": one, "params": {"fields": "code,colour"}},
            422,
            "unknown_field",
            "query.fields",
        ),
        ("unknown crs", {"json": one | {"crs": "EPSG:999999"}}, 422, "unknown_crs", "body.crs"),
        (
            "unknown Content-Type",
            {"content": b"lon,lat\n1,2\n", "headers": {"Content-Type": "text/csv"}},
            415,
            "unsupported_media_type",
            "header.Content-Type",
        ),
        (
            "unknown Accept",
            {"json": one, "headers": {"Accept": "text/csv"}},
            406,
            "not_acceptable",
            "header.Accept",
        ),
        (
            "over the size limit",
            {"content": _too_big(settings), "headers": {"Content-Type": "application/json"}},
            413,
            "payload_too_large",
            "body",
        ),
        (
            "corrupt Arrow",
            {
                "content": b"\xff\xff\xff\xffnot arrow at all",
                "headers": {"Content-Type": ARROW},
                "params": {"crs": "4326"},
            },
            422,
            "unreadable_arrow",
            "body",
        ),
        (
            "corrupt Parquet",
            {
                "content": b"PAR1" + b"\x00" * 64 + b"PAR1",
                "headers": {"Content-Type": PARQUET},
                "params": {"crs": "4326"},
            },
            422,
            "unreadable_parquet",
            "body",
        ),
        (
            "Parquet string lat",
            {
                "content": _parquet(pa.table({"lon": [120.6], "lat": ["31.3"]})),
                "headers": {"Content-Type": PARQUET},
                "params": {"crs": "4326"},
            },
            422,
            "invalid_schema",
            "body.lat",
        ),
        ("not JSON", raw('{"crs": "4326", "lon": [1,'), 422, "validation_error", None),
    ]


def test_bad_input_is_refused_before_any_lookup(client, settings):
    store = client.app.state.index_store
    lookups = []
    original = store.at
    store.at = lambda when: lookups.append(when) or original(when)
    cases = _bad_inputs(settings)
    for label, request, status, code, where in cases:
        response = client.post(URL, **request)
        assert response.status_code == status, (label, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (label, error)
        assert error["message"] and not error["message"].isascii(), label  # Chinese, for people
        if where is not None:
            assert error["where"] == where, (label, error)
    assert len(cases) == 26
    assert lookups == []  # not one of them reached the index
    assert client.post(URL, json={"crs": "4326", "lon": [120.6], "lat": [31.3]}).status_code == 200
    assert len(lookups) == 1


def test_compressed_arrow_is_measured_before_unpacking(settings):
    """50 MB of ids in a 2 KB ZSTD stream: refused from the headers, never unpacked."""
    limits = settings.limits.model_copy(update={"max_unpacked_bytes": 10_000_000})
    ids = ["x" * 5_000_000] * 10
    bomb = _arrow(pa.table({"lon": [120.6] * 10, "lat": [31.3] * 10, "id": ids}), "zstd")
    fine = _arrow(pa.table({"lon": [120.6], "lat": [31.3], "id": ["x" * 200]}), "lz4")
    assert len(bomb) < 10_000
    with TestClient(create_app(settings.model_copy(update={"limits": limits}))) as client:
        refused = _post(client, bomb, ARROW, {"crs": "4326"})
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == {
            "code": "payload_too_large",
            "message": "Arrow 流解压后超过 10000000 字节",
            "where": "body",
        }
        answer = pa.ipc.open_stream(_post(client, fine, ARROW, {"crs": "4326"}).content)
        assert answer.read_all().column("id").to_pylist() == ["x" * 200]


def test_row_form_answers_as_before(client, probes):
    lon, lat, expected, _ = probes
    nan = client.post(
        URL,
        content=b'{"crs":"4326","points":[{"lon":NaN,"lat":31.3},{"lon":%r,"lat":%r,"id":7}]}'
        % (float(lon[0]), float(lat[0])),
        headers={"Content-Type": "application/json"},
    ).json()["results"]
    assert nan[0]["error"]["code"] == "invalid_coordinates" and nan[0]["matched"] is False
    assert nan[1]["id"] == 7 and (nan[1]["grid"] and nan[1]["grid"]["code"]) == expected[0]
    assert set(nan[1]) >= {
        "matched",
        "lon",
        "lat",
        "generation",
        "grid",
        "path",
        "on_boundary",
        "distance_to_edge_m",
        "runner_up",
        "nearest",
    }
    missing = client.post(URL, json={"crs": "4326"})
    assert missing.status_code == 422 and missing.json()["error"]["where"] == "body.points"


def test_openapi_documents_every_form(client):
    operation = client.get("/api/v1/openapi.json").json()["paths"][URL]["post"]
    assert sorted(operation["requestBody"]["content"]) == sorted(
        ["application/json", ARROW, PARQUET]
    )
    assert sorted(operation["responses"]["200"]["content"]) == sorted(
        ["application/json", ARROW, PARQUET]
    )
    assert {"406", "413", "415", "422"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["fields", "crs", "at", "near_m"]
    assert len(orjson.dumps(operation)) < 20_000


# --- hostile bodies (outside review of the batch endpoint): each refused as a 4xx naming where


def _patched(body: bytes, old: bytes, new: bytes) -> bytes:
    assert body.count(old) == 1
    return body.replace(old, new)


def _claim_rows(rows: int) -> bytes:
    """A one-point stream whose record batch and field nodes claim `rows` rows over 8-byte
    lon/lat buffers (reading it unvalidated reads past the body)."""
    from api.lookup.arrow_limits import _int, _Table

    body = bytearray(_arrow(pa.table({"lon": [120.74], "lat": [31.3]})))
    messages = pa.ipc.MessageReader.open_stream(pa.BufferReader(bytes(body)))
    metadata = next(m for m in messages if m.type == "record batch").metadata.to_pybytes()
    at = bytes(body).find(metadata)
    batch = _Table(metadata, _int(metadata, 0, 4)).table(2)
    assert batch is not None
    length = batch.field(0)
    assert length is not None
    body[at + length : at + length + 8] = rows.to_bytes(8, "little")
    start, count = batch.vector(1)  # FieldNode { length: long; null_count: long }
    for i in range(count):
        body[at + start + 16 * i : at + start + 16 * i + 8] = rows.to_bytes(8, "little")
    return bytes(body)


def test_corrupt_arrow_streams_are_refused_unread(client):
    """Offsets past the body (a crash once), rows claimed over tiny buffers (read the heap
    once), invalid UTF-8 ids (a 500 once): all 422 unreadable_arrow, nothing read from them."""
    ids = ["abcd", "efgh", "ijkl", "mnop"]
    good = _arrow(pa.table({"lon": [120.74] * 4, "lat": [31.3] * 4, "id": ids}))
    offsets = np.array([0, 4, 8, 12, 16], dtype=np.int32).tobytes()
    far = np.array([0, 1_500_000_000, 8, 12, 16], dtype=np.int32).tobytes()
    negative = np.array([0, 4, -8, 12, 16], dtype=np.int32).tobytes()
    bodies = {
        "offset 1.5e9": _patched(good, offsets, far),
        "offset negative": _patched(good, offsets, negative),
        "invalid UTF-8": _patched(good, b"efgh", b"\xff\xfegh"),
        "1,000 rows claimed": _claim_rows(1_000),
        "100,000 rows claimed": _claim_rows(100_000),
    }
    for label, body in bodies.items():
        response = _post(client, body, ARROW, {"crs": "4326", "fields": "code,lon,lat"})
        assert response.status_code == 422, (label, response.text)
        error = response.json()["error"]
        assert (error["code"], error["where"]) == ("unreadable_arrow", "body"), label
        assert "nan" not in error["message"].lower(), label  # no value read from the heap
    assert len(bodies) == 5
    assert client.get("/api/v1/health").status_code == 200  # the worker lived


def test_unpacked_size_cannot_be_hidden(settings):
    """A dictionary page, string views of one region and a nested column before lon/lat once
    unpacked far past the limit from small bodies: ids are capped at 200 bytes, checked on the
    buffers before any cast, and Parquet sizes are summed over the leaves actually read."""
    long = pa.array(["x" * 10_000])
    dictionary = pa.DictionaryArray.from_arrays(pa.array(np.zeros(300, np.int32)), long)
    plain = pa.table({"lon": [120.74] * 300, "lat": [31.3] * 300})
    views = np.zeros((300, 4), np.int32)
    views[:, 0] = 10_000
    views[:, 1] = np.frombuffer(b"xxxx", np.int32)[0]
    region = pa.py_buffer(b"x" * 10_000)
    string_view = pa.Array.from_buffers(
        pa.string_view(), 300, [None, pa.py_buffer(views.tobytes()), region]
    )
    limits = settings.limits.model_copy(update={"max_unpacked_bytes": 100_000})
    nested = pa.table(
        {
            "meta": pa.array([{"a": 1, "b": 2, "c": 3}] * 1_000),
            "lon": [120.74] * 1_000,
            "lat": [31.3] * 1_000,
            "id": [f"{i:0>199}" for i in range(1_000)],  # 200 KB of ids under the 200-byte cap
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(nested, sink, use_dictionary=False, compression="zstd")
    with TestClient(create_app(settings.model_copy(update={"limits": limits}))) as client:
        cases = [
            (
                _parquet(plain.append_column("id", dictionary)),
                PARQUET,
                422,
                "id_too_long",
                "body.id",
            ),
            (
                _arrow(plain.append_column("id", string_view)),
                ARROW,
                422,
                "id_too_long",
                "body.id[0]",
            ),
            (_arrow(plain.append_column("id", dictionary)), ARROW, 422, "id_too_long", "body.id"),
            (sink.getvalue().to_pybytes(), PARQUET, 413, "payload_too_large", "body"),
        ]
        for body, media, status, code, where in cases:
            assert len(body) < 40_000
            response = _post(client, body, media, {"crs": "4326"})
            assert response.status_code == status, response.text
            assert (response.json()["error"]["code"], response.json()["error"]["where"]) == (
                code,
                where,
            )
        assert len(cases) == 4
        sink = pa.BufferOutputStream()  # without ids the nested file is read (lon, lat by path)
        pq.write_table(nested.drop_columns(["id"]), sink)
        answer = _post(
            client, sink.getvalue().to_pybytes(), PARQUET, {"crs": "4326"}, {"Accept": JSON}
        )
        assert answer.status_code == 200 and answer.json()["count"] == 1_000


def _varint(number: int, width: int | None = None) -> bytes:
    out = []
    while True:
        byte, number = number & 0x7F, number >> 7
        if number or (width and len(out) + 1 < width):
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    return bytes(out)


def test_parquet_footer_row_count_is_not_trusted(client):
    """Two row groups of 60,000 rows under a footer saying num_rows = 20: 120,000 points."""
    rows = 120_000
    sink = pa.BufferOutputStream()
    table = pa.table({"lon": np.full(rows, 120.74), "lat": np.full(rows, 31.3)})
    pq.write_table(table, sink, row_group_size=rows // 2, compression="zstd")
    body = bytearray(sink.getvalue().to_pybytes())
    footer_length = int.from_bytes(body[-8:-4], "little")
    start = len(body) - 8 - footer_length
    claim = b"\x16" + _varint(2 * rows)  # field 3 (num_rows, i64, zigzag)
    footer = bytes(body[start:-8])
    assert footer.count(claim) == 1
    at = start + footer.find(claim)
    body[at : at + len(claim)] = b"\x16" + _varint(2 * 20, width=len(claim) - 1)
    assert pq.ParquetFile(io.BytesIO(bytes(body))).metadata.num_rows == 20
    response = _post(client, bytes(body), PARQUET, {"crs": "4326", "fields": "code"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "too_many_points"
    assert response.json()["error"]["where"] == "body"


def test_ids_and_options_out_of_bounds_are_refused(client):
    one = {"crs": "EPSG:4326", "lon": [120.74], "lat": [31.3]}
    row = {"crs": "EPSG:4326", "points": [{"lon": 120.74, "lat": 31.3}]}
    surrogate = b'{"crs":"EPSG:4326","lon":[120.74],"lat":[31.3],"ids":["\\ud800"]}'
    row_surrogate = b'{"crs":"EPSG:4326","points":[{"lon":120.74,"lat":31.3,"id":"\\ud800"}]}'
    raw = b'{"crs":"EPSG:4326","lon":[120.74],"lat":[31.3],"ids":[123456789012345678901234567890]}'
    cases = [
        ({"content": surrogate}, "invalid_json", "body.ids[0]"),
        ({"content": row_surrogate}, "invalid_json", "body.points[0].id"),
        ({"json": one | {"ids": [2**63]}}, "id_out_of_range", "body.ids[0]"),
        ({"json": one | {"ids": [-(2**63) - 1]}}, "id_out_of_range", "body.ids[0]"),
        ({"content": raw}, "id_out_of_range", "body.ids[0]"),
        ({"json": one | {"ids": ["字" * 67]}}, "id_too_long", "body.ids[0]"),
        ({"json": one | {"at": 12}}, "invalid_time", "body.at"),
        ({"json": one | {"crs": 4326}}, "invalid_crs", "body.crs"),
        ({"json": one | {"crs": "EPSG:4978"}}, "unknown_crs", "body.crs"),
        ({"json": row | {"crs": "EPSG:4978"}}, "unknown_crs", "body.crs"),
    ]
    for request, code, where in cases:
        if "content" in request:
            request["headers"] = {"Content-Type": "application/json"}
        response = client.post(URL, **request)
        assert response.status_code == 422, (code, response.text)
        assert (response.json()["error"]["code"], response.json()["error"]["where"]) == (
            code,
            where,
        )
    assert len(cases) == 10
    for bad_id in (2**63, "x" * 201):
        points = [{"lon": 120.74, "lat": 31.3, "id": bad_id}]
        response = client.post(URL, json=row | {"points": points})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["where"] == "body.points.0.id"
    number_at = client.post(URL, json=row | {"at": 12})
    assert number_at.status_code == 422 and number_at.json()["error"]["where"] == "body.at"
    geocentric = _arrow(pa.table({"lon": [120.74], "lat": [31.3]}))
    response = _post(client, geocentric, ARROW, {"crs": "EPSG:4978"})
    assert response.status_code == 422 and response.json()["error"]["where"] == "query.crs"
    fits = client.post(URL, json=one | {"ids": [2**63 - 1], "at": None})
    assert fits.status_code == 200 and fits.json()["ids"] == [2**63 - 1]


def test_decimal_coordinates_and_categorical_ids_are_read(client):
    """DuckDB writes `SELECT 120.7395 AS lon` as a decimal; pandas writes categorical ids."""
    import decimal

    lon, lat = ["120.7395", "120.6"], ["31.3", "31.3"]
    floats = pa.table({"lon": [float(v) for v in lon], "lat": [float(v) for v in lat]})
    decimals = pa.table(
        {
            "lon": pa.array([decimal.Decimal(v) for v in lon]),
            "lat": pa.array([decimal.Decimal(v) for v in lat]),
            "id": pa.array(["a", "b"]).dictionary_encode(),
        }
    )
    expected = _post(client, _arrow(floats), ARROW, {"crs": "4326"}, {"Accept": "application/json"})
    for body, media in ((_arrow(decimals), ARROW), (_parquet(decimals), PARQUET)):
        answer = _post(client, body, media, {"crs": "4326"}, {"Accept": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["code"] == expected.json()["code"]
        assert answer.json()["ids"] == ["a", "b"]


def test_every_answer_form_names_its_generation(client, engine):
    generation = str(_active_generation(engine))
    rows = client.post(URL, json={"crs": "4326", "points": [{"lon": 120.74, "lat": 31.3}]})
    columns = client.post(URL, json={"crs": "4326", "lon": [120.74], "lat": [31.3]})
    assert "results" in rows.json() and "code" in columns.json()
    assert rows.headers["X-Wangge-Generation"] == generation
    assert columns.headers["X-Wangge-Generation"] == generation


def test_big_bodies_are_read_in_a_heavy_work_slot(client):
    """Unpacking a big body is heavy work too: with every slot taken, a 300 KB body of ten
    points waits for one (and is told the service is busy), while a small body is answered."""
    from api.limits import HeavyWork

    original = client.app.state.heavy
    client.app.state.heavy = heavy = HeavyWork(1, wait_seconds=0.2)
    lon, lat = [120.74] * 10, [31.3] * 10
    padded = _arrow(pa.table({"lon": lon, "lat": lat, "pad": [b"\0" * 30_000] * 10}))
    small = _arrow(pa.table({"lon": lon, "lat": lat}))
    assert len(padded) > 256 * 1024 > len(small)
    try:
        with heavy.slot():
            busy = _post(client, padded, ARROW, {"crs": "4326"}, {"Accept": JSON})
            light = _post(client, small, ARROW, {"crs": "4326"}, {"Accept": JSON})
        free = _post(client, padded, ARROW, {"crs": "4326"}, {"Accept": JSON})
    finally:
        client.app.state.heavy = original
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy", busy.text
    assert light.status_code == 200 and light.json()["count"] == 10
    assert free.status_code == 200 and free.json()["count"] == 10
