"""Open311 GeoReport v2 under /open311/v2/, driven by published Open311 clients from PyPI.

- `georeport` (0.3.1, Python 3, `requests`): services, service definitions, requests, one request,
  in JSON and XML (its XML goes through `xmltodict`);
- `open311` (codeforamerica/open311_python 1.1, written for Python 2): it posts requests and
  reads tokens, the methods georeport lacks. It is loaded as published, with the three shims
  Python 3 needs and nothing else (see `open311_client`).
Both talk HTTP to a real uvicorn server started by the test. Errors, privacy and the loop are
checked with plain HTTP calls too.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.error import HTTPError

import httpx
import pytest
import requests
import uvicorn
import xmltodict
from georeport import GeoReport
from sqlalchemy import text

from api.app import create_app
from tests.conftest import bearer

GRID = "320571005001001"  # the field_staff token's grid in the demo street
BASE = "/open311/v2"


@pytest.fixture
def inside(engine) -> tuple[float, float]:
    """A WGS84 point (lon, lat) inside the demo street's first grid."""
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid "
                    "WHERE code = :code) s"
                ),
                {"code": GRID},
            ).one()
        )


@pytest.fixture
def live_server(settings) -> Iterator[str]:
    """The app under a real uvicorn on a free port, in a thread; its Open311 root URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}{BASE}"
    server.should_exit = True
    thread.join(timeout=10)


def _load(name: str, path: Path, package: bool = False) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _python3_urlopen(url: str, data: str | bytes | None = None) -> Any:
    return urllib.request.urlopen(url, data.encode() if isinstance(data, str) else data)  # noqa: S310


def open311_client() -> type:
    """codeforamerica/open311_python as installed, made to run on Python 3 by three shims:
    its Python 2 implicit relative imports (`from api import API`) are served under those names
    while it loads (then wangge's own `api` package is put back); it posts a str body, which
    Python 3's urlopen wants as bytes; and its bundled xml2dict calls Element.getchildren()
    (removed in Python 3.9), so XML goes through xmltodict — the library's documented hook
    ("Developers can overwrite this method to use their favorite XML parser")."""
    spec = importlib.util.find_spec("open311")
    assert spec is not None and spec.submodule_search_locations
    root = Path(list(spec.submodule_search_locations)[0])
    borrowed = ("api", "api.api", "xml2dict", "xml2dict.xml2dict", "object_dict")
    saved = {name: sys.modules.get(name) for name in borrowed}
    try:
        _load("object_dict", root / "api" / "xml2dict" / "object_dict.py")
        _load("xml2dict", root / "api" / "xml2dict" / "__init__.py", package=True)
        sys.modules["api.api"] = _load("api", root / "api" / "api.py")
        module = _load("open311_python2", root / "open311.py")
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    module.urlopen = _python3_urlopen

    class Open311(module.Open311):  # type: ignore[name-defined,misc]
        def _xml_to_dict(self, xml: bytes) -> dict:
            return xmltodict.parse(xml)

    return Open311


@pytest.fixture(scope="module")
def Open311() -> type:  # noqa: N802 (the library's class)
    return open311_client()


def _post(client, key: str | None, fmt: str = "json", **fields: Any) -> httpx.Response:
    data = {"api_key": key, **fields} if key else fields
    return client.post(f"{BASE}/requests.{fmt}", data=data)


def _xml(response) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.content)  # noqa: S314 (our own answer)


def _error(response, status: int, fmt: str = "json") -> str:
    """The spec's error document with this status; its description."""
    assert response.status_code == status, response.text
    if fmt == "xml":
        errors = _xml(response)
        assert errors.tag == "errors" and len(errors) == 1
        assert errors.find("error/code").text == str(status)
        return errors.find("error/description").text
    [error] = response.json()
    assert error["code"] == status
    return error["description"]


def test_discovery_services_and_definitions(client, live_server, Open311):
    discovery = client.get(f"{BASE}/discovery.json").json()
    [endpoint] = discovery["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    xml_discovery = _xml(client.get(f"{BASE}/discovery.xml"))
    assert [f.text for f in xml_discovery.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]

    for fmt in ("json", "xml"):
        services = GeoReport(live_server, jurisdiction="wangge", output_format=fmt)
        listed = services.get_service_list()
        assert len(listed) == 12  # the catalogue: 6 event classes, 6 component classes
        assert sorted(s["group"] for s in listed) == ["事件"] * 6 + ["部件"] * 6
        first = listed[0]
        assert first["service_code"] == "E01" and first["service_name"] == "市容环境"
        assert first["type"] == "realtime" and first["keywords"] == "市容环境,事件"
        assert first["metadata"] in (True, "true")
        definition = services.get_service_definition("C02")
        assert definition["service_code"] == "C02"
        attributes = definition["attributes"]
        if fmt == "xml":
            attributes = [attributes["attribute"]]
        assert len(attributes) == 1 and attributes[0]["code"] == "address_detail"
        assert attributes[0]["datatype"] == "string"
        assert attributes[0]["required"] in (False, "false")

    # codeforamerica's client always asks for services.xml (and parses in its own format)
    listed = Open311(endpoint=live_server, format="xml", jurisdiction="wangge").service_list()
    assert [s["service_code"] for s in listed][:3] == ["E01", "E02", "E03"]
    assert len(listed) == 12
