"""Vector tiles (Mapbox Vector Tile 2.1) of the OGC collections, and OGC API – Tiles metadata.

`CONFORMANCE` lists the OGC API – Tiles and TileMatrixSet classes wangge honours; the test suite
(tests/test_tiles.py) opens the endpoints with GDAL's MVT and OGCAPI drivers for each of them.
`geodata-tilesets` waits for the collection documents (api/ogc/documents.py) to link their
tilesets (rel `…/ogc/1.0/tilesets-vector`): until they do, a client cannot find the tiles from
a collection, and the class would not hold.
"""

TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf"
TMS = "http://www.opengis.net/spec/tms/2.0/conf"

CONFORMANCE: list[str] = [
    f"{TILES}/core",
    f"{TILES}/tileset",
    f"{TILES}/tilesets-list",
    f"{TILES}/mvt",
    f"{TMS}/tilematrixset",
    f"{TMS}/json-tilematrixset",
]
