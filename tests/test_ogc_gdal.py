"""GDAL's OAPIF driver (the GDAL inside pyogrio) against a live wangge server.

A real client, not our own requests: it lists every collection, pages through every feature,
sends attribute filters and boxes to the server, and asks for a Gauss-Kruger CRS. Counts and
attributes are checked against SQL; the URLs GDAL asked for are recorded, so a filter GDAL would
have applied itself (after downloading everything) does not pass for a server-side one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from pyogrio.raw import read
from pyproj import Transformer
from sqlalchemy import Engine, text

from api.ogc.collections import BUILDINGS, EVENTS, MONITORING_POINTS
from api.settings import Settings
from api.transfer import guard
from tests.test_ogc_features import (  # noqa: F401 (fixtures, named again by the tests)
    GRID_KEYS,
    PUBLIC_IDS,
    active,
    grid_count,
    ogc,
    ogc_app,
    ogc_database,
    ogc_engine,
    ogc_settings,
    ogc_tokens,
    scalar,
)

ROOT = Path(__file__).resolve().parent.parent

# GDAL honours proxy variables: never send the loopback through one.
for variable in ("NO_PROXY", "no_proxy"):
    os.environ[variable] = "127.0.0.1,localhost"


class Recorder:
    """An ASGI wrapper that appends the path and query of every request to a file."""

    def __init__(self, app: Any, log: str) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with open(self.log, "a", encoding="utf-8") as out:
                out.write(f"{scope['path']}?{scope['query_string'].decode()}\n")
        await self.app(scope, receive, send)


class Requests:
    """What GDAL asked the server for (read from the server's request log)."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def clear(self) -> None:
        self.log.write_text("", encoding="utf-8")

    def all(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines()

    def queries(self, path: str) -> list[dict[str, list[str]]]:
        return [parse_qs(urlsplit(r).query) for r in self.all() if urlsplit(r).path == path]


# GDAL's OAPIF reader holds the GIL while it fetches pages, so the server runs in a process of
# its own (a thread in this one would never get to answer).
SERVER = """
import os, uvicorn
from api.app import create_app
from api.settings import Settings, WorkflowSettings
from tests.test_ogc_features import mounted
from tests.test_ogc_gdal import Recorder
settings = Settings(
    database_url=os.environ["OGC_SERVICE_URL"],
    owner_database_url=os.environ["OGC_OWNER_URL"],
    workflow=WorkflowSettings(sweep_seconds=0),
)
app = Recorder(mounted(create_app(settings)), os.environ["OGC_REQUEST_LOG"])
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["OGC_PORT"]), log_level="warning")
"""


@pytest.fixture(scope="module")
def network_on() -> Iterator[None]:
    """Importing the app turns GDAL's network off for uploads (api/transfer/guard.py: a dead
    proxy, 1 s timeouts); these tests are GDAL as a client, so lift it and put it back after."""
    pyogrio.set_gdal_config_options(
        {name: None for name in guard.NO_NETWORK}
        | {"GDAL_HTTP_TIMEOUT": "120", "GDAL_HTTP_CONNECTTIMEOUT": "10"}
    )
    yield
    pyogrio.set_gdal_config_options(guard.NO_NETWORK)


@pytest.fixture(scope="module")
def requests_log(tmp_path_factory: pytest.TempPathFactory) -> Requests:
    return Requests(tmp_path_factory.mktemp("ogc") / "requests.log")


@pytest.fixture(scope="module")
def server(
    ogc_settings: Settings,  # noqa: F811
    ogc: TestClient,  # noqa: F811 (the draft exists before GDAL looks)
    requests_log: Requests,
    network_on: None,
) -> Iterator[str]:
    """The OAPIF connection string of a live wangge server (its own process) on the module DB."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    requests_log.clear()
    environment = {
        **os.environ,
        "OGC_SERVICE_URL": str(ogc_settings.database_url),
        "OGC_OWNER_URL": str(ogc_settings.owner_database_url),
        "OGC_REQUEST_LOG": str(requests_log.log),
        "OGC_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], cwd=ROOT, env=environment, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ogc", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the OGC server did not start")
        yield f"OAPIF:http://127.0.0.1:{port}/ogc"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_gdal_lists_every_collection(server: str) -> None:
    layers = pyogrio.list_layers(server)
    assert [str(name) for name, _ in layers] == PUBLIC_IDS
    assert [str(kind) for _, kind in layers] == ["MultiPolygon"] * 5 + ["Point"] * 2


@pytest.mark.parametrize(
    ("layer", "table", "properties"),
    [
        ("grids-micro_grid", "grid", GRID_KEYS),
        ("grids-community", "grid", GRID_KEYS),
        ("buildings", "building", {p.name for p in BUILDINGS.properties}),
        ("monitoring-points", "monitoring_point", {p.name for p in MONITORING_POINTS.properties}),
        ("events", "event", {p.name for p in EVENTS.properties}),
    ],
)
def test_gdal_reads_every_feature_with_its_attributes(
    server: str,
    requests_log: Requests,
    ogc_engine: Engine,  # noqa: F811
    layer: str,
    table: str,
    properties: set[str],
) -> None:
    meta, _, geometries, values = read(server, layer=layer)
    if table == "grid":
        expected = grid_count(ogc_engine, layer.removeprefix("grids-"))
    else:
        expected = scalar(ogc_engine, f"SELECT count(*) FROM {table}")
    assert len(geometries) == expected > 0
    assert "CRS84" in meta["crs"] or meta["crs"] == "OGC:CRS84"
    fields = [str(name) for name in meta["fields"]]
    assert properties <= set(fields) <= properties | {"id"}
    assert not {"attributes", "description", "reporter_name", "reporter_phone"} & set(fields)
    # Paged by next links, not in one answer.
    pages = requests_log.queries(f"/ogc/collections/{layer}/items")
    assert len(pages) >= 1 and all("limit" in query for query in pages)

    key = "id" if layer == "events" else "code"
    column = dict(zip(fields, values, strict=True))
    got = dict(zip((str(v) for v in column[key]), range(len(geometries)), strict=True))
    assert len(got) == expected  # every feature once
    if layer == "grids-micro_grid":
        with ogc_engine.connect() as connection:
            truth = dict(
                connection.execute(
                    text(
                        "SELECT code, households FROM grid WHERE level = 'micro_grid' "
                        "AND generation_low <= :g AND generation_high >= :g"
                    ),
                    {"g": active(ogc_engine)},
                ).all()
            )
        read_back = dict(zip(column["code"], column["households"], strict=True))
        assert read_back == truth
        first = shapely.from_wkb(geometries[0])
        assert first.geom_type == "MultiPolygon" and 120 < first.centroid.x < 121


def test_gdal_filters_and_boxes_go_to_the_server(
    server: str,
    requests_log: Requests,
    ogc_engine: Engine,  # noqa: F811
) -> None:
    requests_log.clear()
    where = "status = 'closed' AND tier >= 2"
    _, _, geometries, _ = read(server, layer="events", where=where)
    expected = scalar(
        ogc_engine, "SELECT count(*) FROM event WHERE status = 'closed' AND tier >= 2"
    )
    assert len(geometries) == expected > 0
    sent = [q for q in requests_log.queries("/ogc/collections/events/items") if "filter" in q]
    assert sent, requests_log.all()  # GDAL sent the where clause as a CQL2 filter

    box = (120.72, 31.29, 120.74, 31.30)
    _, _, geometries, _ = read(server, layer="events", bbox=box)
    in_box = scalar(
        ogc_engine,
        "SELECT count(*) FROM event WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
        a=box[0],
        b=box[1],
        c=box[2],
        d=box[3],
    )
    assert len(geometries) == in_box > 0
    assert any("bbox" in q for q in requests_log.queries("/ogc/collections/events/items"))


def test_gdal_reads_a_gauss_kruger_zone(server: str, ogc_engine: Engine) -> None:  # noqa: F811
    meta, _, geometries, values = read(server, layer="monitoring-points", CRS="EPSG:4549")
    assert "4549" in meta["crs"]
    codes = values[[str(f) for f in meta["fields"]].index("code")]
    with ogc_engine.connect() as connection:
        lonlat = dict(
            (code, (x, y))
            for code, x, y in connection.execute(
                text("SELECT code, ST_X(geom), ST_Y(geom) FROM monitoring_point")
            ).all()
        )
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True)
    assert len(geometries) == len(lonlat)
    for code, wkb in zip(codes, geometries, strict=True):
        point = shapely.from_wkb(wkb)
        east, north = to_gk.transform(*lonlat[code])
        assert (point.x, point.y) == pytest.approx((east, north), abs=0.01)  # GDAL's x is east


def test_gdal_with_a_planner_token_sees_the_draft(
    server: str,
    ogc: TestClient,  # noqa: F811
    ogc_tokens: dict[str, str],  # noqa: F811
    ogc_engine: Engine,  # noqa: F811
) -> None:
    draft = ogc.draft  # type: ignore[attr-defined]
    # GDAL's OAPIF requests send their own Accept header, which replaces GDAL_HTTP_HEADERS;
    # a cookie survives (wangge reads the token from its login cookie on GET).
    pyogrio.set_gdal_config_options({"GDAL_HTTP_COOKIE": f"wangge_token={ogc_tokens['planner']}"})
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(server)]
        meta, _, geometries, values = read(server, layer=f"drafts-{draft['id']}-grids")
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_COOKIE": None})
    assert layers == [*PUBLIC_IDS, f"drafts-{draft['id']}-grids"]
    expected = scalar(
        ogc_engine,
        "SELECT count(*) FROM grid WHERE generation_low <= :g AND generation_high >= :g",
        g=draft["generation_id"],
    )
    assert len(geometries) == expected
    levels = values[[str(f) for f in meta["fields"]].index("level")]
    assert set(levels) == {"street", "community", "grid", "micro_grid"}
