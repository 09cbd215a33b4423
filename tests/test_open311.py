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
import sys
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
import xmltodict
from georeport import GeoReport
from sqlalchemy import text

from tests.conftest import bearer, served

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
    with served(settings) as url:
        yield url + BASE


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
    return urllib.request.urlopen(url, data.encode() if isinstance(data, str) else data)


def open311_client() -> type:
    """codeforamerica/open311_python as installed, made to run on Python 3 by three shims:
    its Python 2 implicit relative imports (`from api import API`) are served under those names
    while it loads (then wangge's own `api` package is put back); it posts a str body, which
    Python 3's urlopen wants as bytes; and its bundled xml2dict calls Element.getchildren()
    (removed in Python 3.9), so XML goes through xmltodict — the library's documented hook
    ("Developers can overwrite this method to use their favorite XML parser")."""
    spec = importlib.util.find_spec("open311")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
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
def Open311() -> type:
    return open311_client()


def _post(client, key: str | None, fmt: str = "json", **fields: Any) -> httpx.Response:
    data = {"api_key": key, **fields} if key else fields
    return client.post(f"{BASE}/requests.{fmt}", data=data)


def _xml(response) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.content)


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


def test_post_and_follow_with_published_clients(live_server, tokens, inside, Open311):
    lon, lat = inside
    key = tokens["dispatcher"]
    posted = {}
    for fmt in ("xml", "json"):
        poster = Open311(endpoint=live_server, format=fmt, api_key=key, jurisdiction="wangge")
        answer = poster.post_service_request(
            service_code="E01",
            lat=lat,
            long=lon,
            description=f"垃圾堆放 <{fmt}> & 异味",
            first_name="小明",
            last_name="王",
            phone="13800000000",
            email="xm@example.cn",
            media_url="https://example.cn/p/1.jpg",
            **{"attribute[address_detail]": "3 号楼东侧"},
        )
        if fmt == "xml":
            answer = answer["service_requests"]["request"]
        else:
            [answer] = answer
        request_id = int(answer["service_request_id"])
        assert answer["token"].startswith("g-")
        assert "已受理" in answer["service_notice"] and GRID in answer["service_notice"]
        # the library reads tokens as XML only (it indexes ['service_requests'] in any format)
        tokens_client = Open311(endpoint=live_server, format="xml", jurisdiction="wangge")
        found = tokens_client.request_id_from_token(answer["token"])
        assert int(found["service_request_id"]) == request_id
        posted[fmt] = request_id
    assert posted["xml"] != posted["json"]  # two posts, two requests

    anonymous = GeoReport(live_server, output_format="json")
    public = anonymous.get_service_request(str(posted["json"]))
    assert public["service_code"] == "E01" and public["service_name"] == "市容环境"
    assert public["status"] == "open" and public["service_notice"] == "待立案（reported）"
    assert public["lat"] == pytest.approx(lat) and public["long"] == pytest.approx(lon)
    assert public["requested_datetime"].endswith("+08:00")
    # citizen text, address, media and staff notes only for entitled callers (api/privacy.py)
    hidden = ("description", "address", "media_url", "status_notes")
    assert all(public[name] is None for name in hidden)

    entitled = GeoReport(live_server, api_key=key, output_format="xml")
    params = {"api_key": key}
    shown = requests.get(f"{live_server}/requests/{posted['xml']}.xml", params=params, timeout=10)
    mine = xmltodict.parse(shown.content)["service_requests"]["request"]
    assert mine["description"] == "垃圾堆放 <xml> & 异味"
    assert mine["media_url"] == "https://example.cn/p/1.jpg"
    assert mine["address"] == "3 号楼东侧" and mine["status_notes"] == "已受理"
    # georeport sends no api_key on reads: it gets the public view, in XML
    public_xml = entitled.get_service_request(str(posted["xml"]))
    assert public_xml["description"] is None and public_xml["status"] == "open"

    listed = anonymous.get_service_requests(service_request_id=f"{posted['xml']},{posted['json']}")
    assert sorted(r["service_request_id"] for r in listed) == sorted(posted.values())


def test_a_posted_request_is_an_event_that_travels_the_loop(client, tokens, inside):
    lon, lat = inside
    answer = _post(
        client,
        tokens["dispatcher"],
        service_code="E01",
        lat=str(lat),
        long=str(lon),
        description="路灯不亮",
        first_name="Ann",
        last_name="Lee",
        media_url="https://example.cn/a.png",
    )
    assert answer.status_code == 201, answer.text
    request_id = answer.json()[0]["service_request_id"]

    event = client.get(f"/api/v1/events/{request_id}", headers=bearer(tokens["admin"])).json()
    assert event["source"] == "open311" and event["external_id"] == answer.json()[0]["token"]
    assert event["grid_code"].startswith(GRID) and event["category_code"] == "E01"
    assert event["reporter"] == {"name": "Ann Lee", "phone": None}
    assert event["description"] == "路灯不亮\n\n—— Open311 ——\nmedia_url: https://example.cn/a.png"

    def seen(key: str | None = None) -> dict[str, Any]:
        params = {"api_key": key} if key else {}
        reply = client.get(f"{BASE}/requests/{request_id}.json", params=params)
        assert reply.status_code == 200, reply.text
        return reply.json()[0]

    steps = [
        ("dispatcher", "accept", {}),
        ("dispatcher", "dispatch", {}),
        ("handler", "start", {}),
        ("handler", "handle", {"note": "已更换灯泡"}),
    ]
    for version, (role, action, fields) in enumerate(steps, start=1):
        moved = client.post(
            f"/api/v1/events/{request_id}/transitions",
            json={"action": action, "version": version, **fields},
            headers=bearer(tokens[role]),
        )
        assert moved.status_code == 200, moved.text
        assert seen()["status"] == "open"
    handled = seen(tokens["dispatcher"])
    assert (
        handled["status_notes"] == "已更换灯泡" and handled["service_notice"] == "待核查（handled）"
    )
    assert handled["agency_responsible"] == "社区工作站"
    with client.app.state.engine.connect() as connection:
        due_at = connection.execute(
            text("SELECT due_at FROM event WHERE id = :id"), {"id": request_id}
        ).scalar_one()
    # W3C times in Open311 answers are whole seconds; the stored deadline keeps microseconds
    # (unless it fell on the start of a working period, as it does before 08:30).
    assert datetime.fromisoformat(handled["expected_datetime"]) == due_at.replace(microsecond=0)
    # the handler of the unit it was dispatched to sees what the citizen said; the viewer does not
    assert seen(tokens["handler"])["description"] == "路灯不亮"
    assert seen(tokens["viewer"])["description"] is None

    verified = client.post(
        f"/api/v1/events/{request_id}/transitions",
        json={"action": "verify", "version": 5},
        headers=bearer(tokens["field_staff"]),
    )
    assert verified.status_code == 200, verified.text
    closed = seen()
    assert closed["status"] == "closed" and closed["service_notice"] == "已结案（closed）"
    assert closed["updated_datetime"] >= closed["requested_datetime"]


def test_request_lists_filter_as_the_spec_says(client, tokens, inside, engine):
    lon, lat = inside
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = {}
    for code in ("E01", "E02", "C01"):
        answer = _post(client, tokens["dispatcher"], service_code=code, lat=str(lat), long=str(lon))
        assert answer.status_code == 201, answer.text
        ids[code] = answer.json()[0]["service_request_id"]
    cancelled = client.post(
        f"/api/v1/events/{ids['E02']}/transitions",
        json={"action": "cancel", "version": 1, "note": "重复"},
        headers=bearer(tokens["dispatcher"]),
    )
    assert cancelled.status_code == 200, cancelled.text

    def listed(**params: str) -> list[int]:
        reply = client.get(f"{BASE}/requests.json", params=params)
        assert reply.status_code == 200, reply.text
        return [r["service_request_id"] for r in reply.json()]

    recent = {"start_date": since.isoformat()}
    assert listed(**recent) == [ids["C01"], ids["E02"], ids["E01"]]  # newest first
    assert listed(**recent, status="open") == [ids["C01"], ids["E01"]]
    assert listed(**recent, status="closed") == [ids["E02"]]
    assert listed(**recent, status="open,closed", service_code="E01,E02") == [
        ids["E02"],
        ids["E01"],
    ]
    assert listed(**recent, end_date=since.isoformat()) == []
    # service_request_id overrides every other filter
    assert listed(service_request_id=f"{ids['E01']},999999999", status="closed") == [ids["E01"]]

    # by default the last 90 days, newest first …
    with client.app.state.engine.connect() as connection:
        in_window = connection.execute(
            text("SELECT count(*) FROM event WHERE reported_at >= now() - interval '90 days'")
        ).scalar_one()
    everything = listed()
    assert len(everything) == in_window and everything[:3] == [ids["C01"], ids["E02"], ids["E01"]]
    # … and at most 1000 of them
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO event (source, external_id, category_code, status, reported_at) "
                "SELECT 'patrol', 'more-' || n, 'E01', 'reported', now() - interval '2 days' "
                "FROM generate_series(1, 1000 - :shown + 5) n"
            ),
            {"shown": len(everything)},
        )
    assert len(listed()) == 1000

    xml_list = _xml(client.get(f"{BASE}/requests.xml", params={**recent, "status": "closed"}))
    assert xml_list.tag == "service_requests" and len(xml_list) == 1
    assert xml_list.find("request/status").text == "closed"
    assert xml_list.find("request/description").text is None  # anonymous: no citizen text


def test_idempotent_posts_with_an_external_id(client, tokens, inside, engine):
    lon, lat = inside
    fields = {"service_code": "E04", "lat": str(lat), "long": str(lon), "external_id": "12345-77"}
    first = _post(client, tokens["dispatcher"], **fields, description="占道经营")
    again = _post(client, tokens["dispatcher"], **fields, description="占道经营")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    [answer] = first.json()
    assert answer["token"] == "c-12345-77"
    altered = _post(client, tokens["dispatcher"], "xml", **fields, description="改过的内容")
    assert "already used" in _error(altered, 409, "xml")
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*), min(description) FROM event WHERE source = 'open311'")
        ).one()
    assert tuple(stored) == (1, "占道经营")  # one event, never silently altered
    token = client.get(f"{BASE}/tokens/c-12345-77.json").json()
    assert token == [{"service_request_id": answer["service_request_id"], "token": "c-12345-77"}]


def test_bad_input_gets_the_spec_error_documents(client, tokens, inside, engine):
    lon, lat = inside
    where = {"lat": str(lat), "long": str(lon)}
    key = tokens["dispatcher"]
    posts = [
        (None, {"service_code": "E01", **where}, 403, "api_key is required"),
        ("wg_not-a-token", {"service_code": "E01", **where}, 403, "invalid api_key"),
        (tokens["viewer"], {"service_code": "E01", **where}, 403, "may not post"),
        (tokens["supervisor"], {"service_code": "E01", **where}, 403, "may not post"),
        (key, {"service_code": "NOPE", **where}, 400, "service_code 'NOPE' not found"),
        (key, where, 400, "service_code is required"),
        (key, {"service_code": "E01"}, 400, "a location is required"),
        (key, {"service_code": "E01", "lat": "91", "long": "120"}, 400, "lat must be between"),
        (key, {"service_code": "E01", "lat": "abc", "long": "120"}, 400, "lat must be a number"),
        (key, {"service_code": "E01", "lat": "nan", "long": "120"}, 400, "lat must be between"),
        (key, {"service_code": "E01", "lat": str(lat)}, 400, "lat and long go together"),
        (
            key,
            {"service_code": "E01", **where, "attribute[colour]": "red"},
            400,
            "unknown attribute",
        ),
        (key, {"service_code": "E01", **where, "media_url": "ftp://x"}, 400, "media_url is not"),
        (key, {"service_code": "E01", **where, "phone": "1" * 40}, 400, "phone:"),
        (key, {"service_code": "E01", **where, "description": "a\x00b"}, 400, "NUL"),
        (key, {"service_code": "E01", **where, "external_id": "a b"}, 400, "external_id is not"),
        (key, {"service_code": "E01", **where, "jurisdiction_id": "x"}, 404, "jurisdiction_id"),
    ]
    for secret, fields, status, expected in posts:
        for fmt in ("json", "xml"):
            answer = _post(client, secret, fmt, **fields)
            assert expected in _error(answer, status, fmt), (fields, answer.text)
    assert len(posts) == 17
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM event WHERE source = 'open311'"))
        assert stored.scalar_one() == 0  # nothing refused was stored

    json_body = client.post(f"{BASE}/requests.json", json={"service_code": "E01", "api_key": key})
    assert "x-www-form-urlencoded" in _error(json_body, 400)

    reads = [
        ("requests/999999999.json", {}, 404, "not found"),
        ("requests/99999999999999999999999.xml", {}, 404, "not found"),
        ("requests/abc.json", {}, 400, "not an integer"),
        ("tokens/g-nothing.json", {}, 404, "not found"),
        ("services/NOPE.xml", {}, 404, "not found"),
        ("requests.json", {"api_key": "wg_wrong"}, 403, "invalid api_key"),
        ("requests.json", {"status": "pending"}, 400, "status"),
        ("requests.json", {"service_code": "E01,ZZZ"}, 400, "ZZZ"),
        ("requests.json", {"start_date": "yesterday"}, 400, "W3C date-time"),
        ("requests.json", {"start_date": "2026-01-01T00:00:00+20:00"}, 400, "W3C"),
        (
            "requests.json",
            {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
            400,
            "90 days",
        ),
        ("requests.json", {"start_date": "2026-02-01", "end_date": "2026-01-01"}, 400, "before"),
        ("requests.json", {"service_request_id": "1,x"}, 400, "not a request id"),
        ("services.json", {"jurisdiction_id": "elsewhere"}, 404, "not served here"),
        ("requests.csv", {}, 404, "use .json or .xml"),
        ("requests", {}, 404, "no such resource"),
        ("nothing/here.xml", {}, 404, "no such resource"),
    ]
    for path, params, status, expected in reads:
        fmt = "xml" if path.endswith(".xml") else "json"
        answer = client.get(f"{BASE}/{path}", params=params)
        assert expected in _error(answer, status, fmt), (path, answer.text)
    assert len(reads) == 17
    assert "not allowed" in _error(client.delete(f"{BASE}/requests.json"), 405)
    assert "not allowed" in _error(client.post(f"{BASE}/services.xml"), 405, "xml")
    # an empty jurisdiction_id is none at all (codeforamerica's client sends one)
    assert client.get(f"{BASE}/services.json", params={"jurisdiction_id": ""}).status_code == 200


def test_published_clients_see_errors_as_http_errors(live_server, tokens, Open311):
    poster = Open311(endpoint=live_server, format="xml", api_key=tokens["viewer"])
    with pytest.raises(HTTPError) as refused:
        poster.post_service_request(service_code="E01", lat="31.4", long="120.6")
    assert refused.value.code == 403
    errors = xmltodict.parse(refused.value.read())["errors"]["error"]
    assert errors["code"] == "403" and "may not post" in errors["description"]
    with pytest.raises(requests.HTTPError) as missing:
        GeoReport(live_server).get_service_request("424242")
    assert missing.value.response.status_code == 404
    assert missing.value.response.json()[0]["code"] == 404


def test_xml_is_built_safely_from_any_stored_text(client, tokens, inside):
    lon, lat = inside
    hostile = '</description><status>closed</status>&amp; "quoted" \x01\x1f ok'
    answer = _post(
        client,
        tokens["dispatcher"],
        "xml",
        service_code="E05",
        lat=str(lat),
        long=str(lon),
        description=hostile,
        address_string="<b>人民路</b> & 1 号",
    )
    assert answer.status_code == 201, answer.text
    request_id = _xml(answer).find("request/service_request_id").text
    read = _xml(
        client.get(f"{BASE}/requests/{request_id}.xml", params={"api_key": tokens["admin"]})
    )
    [request] = read.findall("request")
    assert request.find("status").text == "open"
    assert request.find("description").text == hostile.replace("\x01", "\ufffd").replace(
        "\x1f", "\ufffd"
    )
    assert request.find("address").text == "<b>人民路</b> & 1 号"
    assert len(request) == 17  # the spec's fields, each once


def test_an_address_alone_is_a_location(client, tokens):
    answer = _post(
        client,
        tokens["admin"],
        service_code="C01",
        address_string="不存在的路 1 号",
        **{"attribute[address_detail]": "东门"},
    )
    assert answer.status_code == 201, answer.text
    [posted] = answer.json()
    assert "待人工分派" in posted["service_notice"]  # not on the register: a dispatcher places it
    event = client.get(
        f"/api/v1/events/{posted['service_request_id']}", headers=bearer(tokens["admin"])
    ).json()
    assert event["address"] == "不存在的路 1 号 东门" and event["grid_code"] is None
    read = client.get(f"{BASE}/requests/{posted['service_request_id']}.json").json()[0]
    assert read["lat"] is None and read["long"] is None and read["status"] == "open"
