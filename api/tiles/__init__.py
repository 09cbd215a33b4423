"""Vector tiles (Mapbox Vector Tile 2.1) of the OGC collections, and OGC API – Tiles metadata.

`CONFORMANCE` lists the OGC API – Tiles and TileMatrixSet classes wangge honours; the test suite
(tests/test_tiles.py) opens the endpoints with GDAL's MVT and OGCAPI drivers for each of them.
`geodata-tilesets`: every collection document (api/ogc/documents.py) links its tilesets (rel
`…/ogc/1.0/tilesets-vector`), so a client finds the tiles from the collection.
"""

TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf"
TMS = "http://www.opengis.net/spec/tms/2.0/conf"

CONFORMANCE: list[str] = [
    f"{TILES}/core",
    f"{TILES}/tileset",
    f"{TILES}/tilesets-list",
    f"{TILES}/geodata-tilesets",
    f"{TILES}/mvt",
    f"{TMS}/tilematrixset",
    f"{TMS}/json-tilematrixset",
]
