"""The conformance classes wangge declares at /ogc/conformance (only what the tests prove).

`CLASSES` are the read side's (tests/test_ogc_features.py and tests/test_ogc_gdal.py exercise
each one); the write side (api.ogc.transactions) and the tiles (api.tiles) add theirs when
their routes are mounted on the application.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def _mounted(app: Any) -> tuple[bool, bool]:
    """(tiles mounted, feature writes mounted) on this application."""
    tiles = writes = False
    for route in getattr(app, "routes", ()):
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or ()
        tiles = tiles or path.startswith("/tiles/")
        writes = writes or (path.startswith("/ogc/collections/") and "POST" in methods)
    return tiles, writes


def _classes_of(module_name: str) -> list[str]:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    return [str(c) for c in getattr(module, "CONFORMANCE", [])]


def declared(app: Any) -> list[str]:
    """Every class this application honours, without duplicates, in a stable order."""
    tiles, writes = _mounted(app)
    found = list(CLASSES)
    if writes:
        found += _classes_of("api.ogc.transactions")
    if tiles:
        found += _classes_of("api.tiles")
    return list(dict.fromkeys(found))
