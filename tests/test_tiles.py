"""Vector tiles and OGC API – Tiles, read by real clients (GDAL's MVT and OGCAPI drivers via
pyogrio, mapbox-vector-tile) against the demo street in PostGIS."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Iterator

import httpx
import mapbox_vector_tile
import morecantile
import pyogrio
import pytest
import shapely
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from api.ogc.collections import columns, source_sql
from api.ogc.collections import resolve as resolve_collection
from api.privacy import Caller
from api.settings import Settings
from api.tiles import CONFORMANCE
from api.tiles.cache import TileCache
from api.tiles.gcj import affine_error_m
from api.tiles.matrix import BUFFER, EXTENT, TileAddress
from tests.conftest import bearer, served


@pytest.fixture
def live_tiles(settings: Settings) -> Iterator[str]:
    with served(settings) as url:
        yield url


TMS = morecantile.tms.get("WebMercatorQuad")
CENTRE = (120.7374, 31.3050)  # inside the demo street
MVT_TYPE = "application/vnd.mapbox-vector-tile"
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
# Never in any tile: free-form attributes, and what a citizen told us (a building's address is a
# public field of buildings; an event's address is personal).
PERSONAL = {"description", "reporter_name", "reporter_phone", "attributes", "raw_x"}


@pytest.fixture
def tiles(settings) -> TestClient:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _tile(z: int) -> morecantile.Tile:
    return TMS.tile(*CENTRE, z)


def _url(collection: str, tile: morecantile.Tile, query: str = "") -> str:
    return f"/tiles/{collection}/{tile.z}/{tile.x}/{tile.y}.mvt{query}"


def _postgis_count(engine, collection_id: str, tile: morecantile.Tile) -> int:
    """Features a tile must hold, counted by PostGIS alone (the tile and its buffer)."""
    with engine.connect() as connection:
        collection = resolve_collection(connection, collection_id, Caller(None))
        source, params = source_sql(collection)
        return connection.execute(
            text(
                f"SELECT count(*) FROM {source} AND ST_Intersects(t.geom, "
                "ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326))"
            ),
            {**params, "z": tile.z, "x": tile.x, "y": tile.y, "margin": BUFFER / EXTENT},
        ).scalar_one()


def test_gdal_reads_a_tile_with_the_features_postgis_counts(tiles, engine, tmp_path):
    for collection, z in (("grids-micro_grid", 15), ("grids-grid", 13), ("buildings", 16)):
        tile = _tile(z)
        answer = tiles.get(_url(collection, tile))
        assert answer.status_code == 200 and answer.headers["content-type"] == MVT_TYPE
        # GDAL's MVT driver georeferences a tile from its z/x/y path.
        path = tmp_path / collection / str(z) / str(tile.x) / f"{tile.y}.pbf"
        path.parent.mkdir(parents=True)
        path.write_bytes(answer.content)
        info = pyogrio.read_info(path, layer=collection)
        assert info["features"] == _postgis_count(engine, collection, tile), collection
        assert info["crs"] == "EPSG:3857"
        meta, _, wkb, _ = pyogrio.raw.read(path, layer=collection)
        public = set(columns(_collection(engine, collection)))
        assert set(meta["fields"]) - {"mvt_id"} <= public
        assert not (set(meta["fields"]) & PERSONAL)
        # The geometries sit on the demo street (GDAL put them in the right place).
        centroid = shapely.union_all(shapely.from_wkb(wkb)).centroid
        lon, lat = TMS.lnglat(centroid.x, centroid.y)
        assert abs(lon - CENTRE[0]) < 0.02 and abs(lat - CENTRE[1]) < 0.02


def _collection(engine, collection_id: str):
    with engine.connect() as connection:
        return resolve_collection(connection, collection_id, Caller(None))


def test_event_tiles_carry_no_personal_field_even_for_a_planner(tiles, tokens, engine):
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE event SET description = '张三 13800000000', reporter_name = '李四'")
        )
    tile = _tile(15)
    answer = tiles.get(_url("events", tile), headers=bearer(tokens["planner"]))
    assert answer.status_code == 200
    assert "张三".encode() not in answer.content and "李四".encode() not in answer.content
    layers = mapbox_vector_tile.decode(answer.content)
    assert list(layers) == ["events"]
    features = layers["events"]["features"]
    assert len(features) == _postgis_count(engine, "events", tile)
    names = set().union(*(f["properties"] for f in features))
    assert names <= {p.name for p in _collection(engine, "events").properties}
    assert not names & (PERSONAL | {"address"})
    assert all(f["id"] == f["properties"]["id"] for f in features)  # MVT feature id = event id
    reported = features[0]["properties"]["reported_at"]
    assert reported.endswith("Z") and "T" in reported


def test_etag_304_and_a_publish_makes_new_tiles(tiles, tokens, engine):
    from api.drafts.publish import publish_draft

    url = _url("grids-grid", _tile(13))
    first = tiles.get(url)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    assert first.headers["cache-control"] == "public, max-age=60"
    again = tiles.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    service = tiles.app.state.tile_service
    assert service.cache.hits == 0 and len(service.cache) == 1  # the 304 needed no tile
    assert tiles.get(url).content == first.content and service.cache.hits == 1

    planner = bearer(tokens["planner"])
    draft = tiles.post("/api/v1/drafts", json={"name": "瓦片缓存"}, headers=planner).json()
    draft_tile = tiles.get(_url(f"drafts-{draft['id']}-grids", _tile(13)), headers=planner)
    assert draft_tile.status_code == 200
    assert draft_tile.headers["cache-control"] == "private, no-cache"
    assert mapbox_vector_tile.decode(draft_tile.content)[f"drafts-{draft['id']}-grids"]
    publish_draft(engine, draft["id"], draft["version"], True, "tests")
    # Cached grid tiles follow the service's lookup index, which its listener swaps on the
    # publish's NOTIFY once the new index is built (as lookups do); do here what it does.
    assert tiles.app.state.index_store.refresh() is True

    after = tiles.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    generations = {
        f["properties"]["generation"]
        for f in mapbox_vector_tile.decode(after.content)["grids-grid"]["features"]
    }
    assert generations == {draft["generation_id"]}


@pytest.mark.parametrize(
    ("path", "status", "where"),
    [
        ("/tiles/grids-grid/25/0/0.mvt", 404, "path.z"),
        ("/tiles/grids-grid/-1/0/0.mvt", 404, "path.z"),
        ("/tiles/grids-grid/3/8/0.mvt", 404, "path.x"),
        ("/tiles/grids-grid/3/0/8.mvt", 404, "path.y"),
        ("/tiles/grids-grid/1.5/0/0.mvt", 400, "path.z"),
        ("/tiles/grids-grid/3/a/0.mvt", 400, "path.x"),
        ("/tiles/grids-grid/3/0/99999999999999999999999.mvt", 404, "path.y"),
        ("/tiles/no-such-layer/3/0/0.mvt", 404, "path.collectionId"),
        ("/tiles/grids-grid/3/0/0.mvt?crs=bd09", 400, "query.crs"),
        ("/ogc/collections/grids-grid/tiles/WebMercatorQuad/x/0/0", 404, "path.tileMatrix"),
        ("/ogc/collections/grids-grid/tiles/WebMercatorQuad/3/8/0", 404, "path.tileRow"),
        ("/ogc/collections/grids-grid/tiles/WebMercatorQuad/3/0/8", 404, "path.tileCol"),
        ("/ogc/collections/grids-grid/tiles/WorldCRS84Quad", 404, "path.tileMatrixSetId"),
        ("/ogc/tileMatrixSets/WorldCRS84Quad", 404, "path.tileMatrixSetId"),
    ],
)
def test_bad_tile_addresses_are_json_4xx(tiles, path, status, where):
    answer = tiles.get(path)
    assert answer.status_code == status, answer.text
    body = answer.json()  # the OGC exception JSON (api/ogc/errors.py) with our error inside
    assert body["code"] and body["description"] and body["status"] == status
    assert body["where"] == body["error"]["where"] == where


def test_empty_tiles_and_tiles_below_a_layers_zoom_are_204(tiles):
    far_away = TMS.tile(0.0, 0.0, 14)
    assert tiles.get(_url("grids-grid", far_away)).status_code == 204
    below = tiles.get(_url("grids-micro_grid", _tile(10)))
    assert below.status_code == 204 and below.content == b"" and below.headers["etag"]


def test_gcj02_tiles_are_shifted_and_the_affine_error_is_small(tiles, tmp_path):
    tile = _tile(16)
    plain = mapbox_vector_tile.decode(tiles.get(_url("monitoring-points", _tile(12))).content)
    shifted = mapbox_vector_tile.decode(
        tiles.get(_url("monitoring-points", _tile(12), "?crs=gcj02")).content
    )
    first = {
        f["properties"]["code"]: f["geometry"]["coordinates"]
        for f in plain["monitoring-points"]["features"]
    }
    moved = {
        f["properties"]["code"]: f["geometry"]["coordinates"]
        for f in shifted["monitoring-points"]["features"]
    }
    common = sorted(set(first) & set(moved))
    assert len(common) > 50
    # GCJ-02 is ~+450 m east, ~-200 m north here: at z12 one unit is ~2.4 m.
    dx = {moved[c][0] - first[c][0] for c in common}
    assert all(150 < d < 250 for d in dx)
    errors = {z: affine_error_m(TileAddress(z, _tile(z).x, _tile(z).y)) for z in range(11, 17)}
    print("GCJ-02 affine error per zoom (m):", {z: round(e, 3) for z, e in errors.items()})
    assert errors[16] < 0.05 and errors[14] < 0.5 and errors[12] < 8
    assert tile.z == 16


def test_tilejson_and_ogc_tiles_metadata(tiles):
    tilejson = tiles.get("/tiles/grids-micro_grid/tilejson.json").json()
    assert tilejson["tilejson"] == "3.0.0"
    assert tilejson["minzoom"] == 13 and tilejson["maxzoom"] == 16
    assert [layer["id"] for layer in tilejson["vector_layers"]] == ["grids-micro_grid"]
    west, south, east, north = tilejson["bounds"]
    assert west < CENTRE[0] < east and south < CENTRE[1] < north
    template = tilejson["tiles"][0].replace("http://testserver", "")
    tile = _tile(15)
    assert tiles.get(template.format(z=tile.z, x=tile.x, y=tile.y)).status_code == 200
    gcj = tiles.get("/tiles/grids-micro_grid/tilejson.json?crs=gcj02").json()
    assert gcj["tiles"][0].endswith(".mvt?crs=gcj02")

    sets = tiles.get("/ogc/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    document = tiles.get("/ogc/tileMatrixSets/WebMercatorQuad").json()
    parsed = morecantile.TileMatrixSet.model_validate(
        {k: v for k, v in document.items() if k != "links"}
    )
    assert parsed.id == "WebMercatorQuad" and len(parsed.tileMatrices) == 25

    listing = tiles.get("/ogc/collections/grids-grid/tiles").json()
    assert len(listing["tilesets"]) == 1
    assert listing["tilesets"][0]["dataType"] == "vector"
    tileset = tiles.get("/ogc/collections/grids-grid/tiles/WebMercatorQuad").json()
    assert tileset["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    item = next(link for link in tileset["links"] if link["rel"] == "item")
    assert item["type"] == MVT_TYPE
    limits = {limit["tileMatrix"]: limit for limit in tileset["tileMatrixSetLimits"]}
    assert sorted(limits, key=int) == [str(z) for z in range(11, 17)]
    tile = _tile(14)
    assert limits["14"]["minTileRow"] <= tile.y <= limits["14"]["maxTileRow"]
    assert limits["14"]["minTileCol"] <= tile.x <= limits["14"]["maxTileCol"]
    # The OGC tile (row, then column) is the XYZ tile (x = column, y = row).
    href = item["href"].replace("http://testserver", "")
    ogc = tiles.get(href.format(tileMatrix=14, tileRow=tile.y, tileCol=tile.x))
    assert ogc.status_code == 200 and ogc.content == tiles.get(_url("grids-grid", tile)).content
    layer = tileset["layers"][0]
    assert (
        layer["id"] == "grids-grid" and "attributes" not in layer["propertiesSchema"]["properties"]
    )
    assert len(CONFORMANCE) == 7
    # geodata-tilesets: a client finds the tiles from the collection, the tiling scheme from /ogc.
    collection = tiles.get("/ogc/collections/grids-grid").json()
    found = [link for link in collection["links"] if link["rel"] == TILESETS_VECTOR]
    assert len(found) == 1 and found[0]["href"].endswith("/ogc/collections/grids-grid/tiles")
    landing = tiles.get("/ogc").json()
    schemes = [link for link in landing["links"] if link["rel"].endswith("/tiling-schemes")]
    assert len(schemes) == 1 and schemes[0]["href"].endswith("/ogc/tileMatrixSets")


def test_the_cache_stays_within_its_bytes():
    cache = TileCache(max_bytes=10_000)
    for n in range(100):
        cache.put(("grids-grid", "g1", n), bytes(1000))
    assert cache.bytes <= 10_000 and len(cache) == 8
    assert cache.get(("grids-grid", "g1", 99)) is not None
    assert cache.get(("grids-grid", "g1", 0)) is None
    cache.put("too big", bytes(20_000))
    assert cache.get("too big") is None


@pytest.fixture
def forked_tiles(settings: Settings) -> Iterator[str]:
    """The app in a forked process: GDAL holds the GIL while it reads tiles, so a server thread
    in this process could not answer it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings)

    def run() -> None:
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).run()

    process = multiprocessing.get_context("fork").Process(target=run, daemon=True)
    process.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/ogc/tileMatrixSets", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield base
    process.terminate()
    process.join(timeout=10)


def test_gdal_reads_tiles_through_ogc_api_tiles(forked_tiles, engine):
    """GDAL's OGCAPI driver with API=TILES: from the collection to its vector tileset, the tile
    matrix set and every z13 tile of the street, assembled into the street's 60 grids.

    GDAL's vector-tiles path takes the collection's extent in the tile matrix set's CRS (it
    does not reproject the CRS84 bbox), so the street's extent is given in EPSG:3857."""
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"
    url = f"OGCAPI:{forked_tiles}/ogc/collections/grids-grid"
    minx, miny = TMS.xy(120.7193, 31.2907)
    maxx, maxy = TMS.xy(120.7555, 31.3193)
    extent = {"MINX": minx, "MINY": miny, "MAXX": maxx, "MAXY": maxy}
    options = {"API": "TILES", **{k: str(v) for k, v in extent.items()}}
    info = pyogrio.read_info(url, layer=2, **options)  # layers: zoom 11, 12, 13…
    assert info["crs"] == "EPSG:3857"
    public = set(columns(_collection(engine, "grids-grid")))
    assert set(info["fields"]) - {"mvt_id"} == public
    meta, _, wkb, fields = pyogrio.raw.read(url, layer=2, **options)
    codes = fields[list(meta["fields"]).index("code")]
    # A grid cut by tile edges comes once per tile it crosses.
    assert len(wkb) >= 60 and len(set(codes)) == 60


def test_the_street_map_switches_to_tiles_past_the_threshold(engine):
    from api.settings import MapSettings
    from web.maps import MapFactory
    from web.street import build_street_map

    with engine.connect() as connection:
        inline = build_street_map(connection, MapFactory(MapSettings()), 1)
        tiled = build_street_map(
            connection, MapFactory(MapSettings(basemap="amap", inline_max_features=1000)), 1
        )
        by_bytes = build_street_map(
            connection, MapFactory(MapSettings(inline_max_bytes=100_000)), 1
        )
    assert [spec.get("tiles") for spec in inline.layers] == [None, None, None]
    assert "Leaflet.VectorGrid" not in " ".join(inline.map.scripts)
    # 1,202 micro-grids pass 1,000: every level goes on tiles, in GCJ-02 for AMap.
    assert [spec["tiles"] for spec in tiled.layers] == [
        f"/tiles/grids-{level}/{{z}}/{{x}}/{{y}}.mvt?crs=gcj02"
        for level in ("community", "grid", "micro_grid")
    ]
    assert [spec["show"] for spec in tiled.layers] == [True, True, False]
    assert any("Leaflet.VectorGrid" in url for url in tiled.map.scripts)
    assert "320571005001001" not in tiled.map.script  # no grid inlined
    # The micro-grids' ~8,400 vertices are estimated at ~220 KB: past 100 KB.
    assert all(spec["tiles"].endswith(".mvt") for spec in by_bytes.layers)


def test_tiles_travel_gzipped_to_clients_that_accept_it(tiles):
    """A tile is compressed once (cached gzipped) and sent as is; a client that does not
    accept gzip gets the same MVT bytes uncompressed."""
    url = _url("buildings", _tile(16))
    packed = tiles.get(url, headers={"Accept-Encoding": "gzip"})
    plain = tiles.get(url, headers={"Accept-Encoding": "identity"})
    assert packed.status_code == plain.status_code == 200
    assert packed.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert packed.content == plain.content and packed.num_bytes_downloaded < len(plain.content) / 2
    assert packed.headers["etag"] == plain.headers["etag"]
    assert "Accept-Encoding" in plain.headers["vary"]
    layer = mapbox_vector_tile.decode(plain.content)["buildings"]
    assert len(layer["features"]) > 10


def test_a_cached_grid_tile_needs_no_database(tiles):
    """Served from memory on the event loop: with the database gone, a cached grid tile (and
    its 304) still answers; a tile never rendered needs the database (503, not a 500)."""
    cached, fresh = _url("grids-grid", _tile(14)), _url("grids-grid", _tile(15))
    first = tiles.get(cached)
    assert first.status_code == 200
    state = tiles.app.state
    working = state.engine
    state.engine = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    try:
        assert tiles.get(cached).content == first.content
        again = tiles.get(cached, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert tiles.get(fresh).status_code == 503
    finally:
        state.engine.dispose()
        state.engine = working
    assert tiles.get(fresh).status_code == 200
