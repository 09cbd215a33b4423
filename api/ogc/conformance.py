"""The conformance classes wangge declares at /ogc/conformance (only what the tests prove).

`CLASSES` are the read side's (tests/test_ogc_features.py and tests/test_ogc_gdal.py exercise
each one); the write side (api.ogc.transactions) and the tiles (api.tiles) add theirs: all three
routers are always mounted (api/app.py).
"""

from __future__ import annotations

FEATURES_1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf"
FEATURES_2 = "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf"
FEATURES_3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf"

CLASSES: list[str] = [
    f"{FEATURES_1}/core",
    f"{FEATURES_1}/geojson",
    f"{FEATURES_1}/html",
    f"{FEATURES_2}/crs",
    f"{FEATURES_3}/queryables",
    f"{FEATURES_3}/queryables-query-parameters",
    f"{FEATURES_3}/filter",
    f"{FEATURES_3}/features-filter",
    f"{CQL2}/cql2-text",
    f"{CQL2}/cql2-json",
    f"{CQL2}/basic-cql2",
    f"{CQL2}/advanced-comparison-operators",
    f"{CQL2}/case-insensitive-comparison",
    f"{CQL2}/basic-spatial-functions",
    f"{CQL2}/basic-spatial-functions-plus",
    f"{CQL2}/spatial-functions",
    f"{CQL2}/property-property",
]


def declared() -> list[str]:
    """Every class this service honours (features read and write, tiles), without duplicates,
    in a stable order. Each module lists only what its tests prove."""
    from api.ogc.transactions import CONFORMANCE as WRITES
    from api.tiles import CONFORMANCE as TILES

    return list(dict.fromkeys([*CLASSES, *WRITES, *TILES]))
