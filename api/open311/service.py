"""The spec's read methods: discovery, services, a service definition, requests, a token.

Each returns a Document the route renders in the format the client asked for. Service requests
are wangge events of every source (hotline, patrol, app, Open311 …): what the city handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from api.db import open311 as open311_rows
from api.lookup.index_store import IndexStore
from api.open311.access import open311_settings
from api.open311.formats import Open311Error
from api.open311.mapping import SOURCE, request_document, wangge_statuses
from api.open311.params import Params, bad
from api.open311.params import request_id as parse_request_id
from api.privacy import Caller
from api.settings import Settings

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-30T00:00:00+08:00"  # when this endpoint last changed what it offers
MEDIA_TYPES = ["text/xml", "application/json"]
WINDOW = timedelta(days=90)  # the spec: a date range spans at most 90 days, by default the last 90
MAX_REQUESTS = 1000  # and a list holds at most the 1000 most recent
MAX_TOKEN_CHARS = 128
GROUPS = {"event": "事件", "component": "部件"}
TIERS = {1: "一级事项（区级部门处置）", 2: "二级事项（街道处置）", 3: "三级事项（社区处置）"}
ADDRESS_DETAIL = "address_detail"
# The one attribute every service takes: where exactly, in words (added to the event's address).
ATTRIBUTES = [
    {
        "variable": True,
        "code": ADDRESS_DETAIL,
        "datatype": "string",
        "required": False,
        "datatype_description": "楼栋、门牌、楼层或附近地标 / building, door number, floor or landmark",
        "order": 1,
        "description": "详细位置 / Location details",
        "values": [],
    }
]


@dataclass(frozen=True)
class Document:
    """An answer: the root element, its body, the name of each item of a list, the status."""

    root: str
    body: Any
    item: str | None = None
    status: int = 200


def discovery(endpoint_url: str, settings: Settings) -> Document:
    config = open311_settings(settings)
    endpoint = {
        "specification": SPECIFICATION,
        "url": endpoint_url,
        "changeset": CHANGESET,
        "type": "production",
        "formats": MEDIA_TYPES,
    }
    body = {
        "changeset": CHANGESET,
        "contact": config.contact,
        "key_service": config.key_service,
        "endpoints": [endpoint],
    }
    return Document("discovery", body)


def _service(row: dict[str, Any]) -> dict[str, Any]:
    group = GROUPS.get(row["kind"], row["kind"])
    tier = TIERS.get(row["default_tier"])
    description = f"{group}：{row['name']}" + (f"，一般为{tier}" if tier else "")
    keywords = [row["name"], row["parent_name"], group]
    return {
        "service_code": row["code"],
        "service_name": row["name"],
        "description": description,
        "metadata": True,
        "type": "realtime",
        "keywords": ",".join(dict.fromkeys(word for word in keywords if word)),
        "group": group,
    }


def services(connection: Connection) -> Document:
    """The event categories (事件 and 部件 classes) as services."""
    return Document(
        "services", [_service(row) for row in open311_rows.services(connection)], "service"
    )


def service_definition(connection: Connection, service_code: str) -> Document:
    known = {row["code"] for row in open311_rows.services(connection)}
    if service_code not in known:
        raise Open311Error(
            404, f"service_code {service_code!r} not found / 没有这个服务类别（service_code）"
        )
    return Document("service_definition", {"service_code": service_code, "attributes": ATTRIBUTES})


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    try:
        return _dates(start, end)
    except OverflowError:
        raise bad("start_date / end_date out of range / 日期超出可表示的范围") from None


def _dates(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if start is not None and end is not None:
        if end < start:
            raise bad("end_date is before start_date / end_date 早于 start_date")
        if end - start > WINDOW:
            raise bad("start_date to end_date spans more than 90 days / 时间范围不能超过 90 天")
        return start, end
    if start is not None:
        return start, start + WINDOW
    end = end or datetime.now(UTC)
    return end - WINDOW, end


def _documents(
    rows: list[dict[str, Any]], store: IndexStore, caller: Caller
) -> list[dict[str, Any]]:
    return [
        request_document(
            row, caller.sees_event(store.active_path(row["grid_code"]), row["unit_code"])
        )
        for row in rows
    ]


def requests(connection: Connection, store: IndexStore, params: Params, caller: Caller) -> Document:
    """GET requests: by id (which overrides every other filter), else by date range, service
    codes and status, newest first, at most MAX_REQUESTS."""
    ids = params.ids("service_request_id")
    if params.text("service_request_id") is not None:
        rows = open311_rows.requests_by_id(connection, (ids or [])[:MAX_REQUESTS])
    else:
        statuses = params.words("status", ("open", "closed"))
        known = [row["code"] for row in open311_rows.services(connection)]
        codes = params.words("service_code", known)
        start, end = _window(params.instant("start_date"), params.instant("end_date"))
        rows = open311_rows.requests_between(
            connection,
            start=start,
            end=end,
            codes=codes,
            statuses=wangge_statuses(statuses) if statuses else None,
            limit=MAX_REQUESTS,
        )
    return Document("service_requests", _documents(rows, store, caller), "request")


def request(connection: Connection, store: IndexStore, raw_id: str, caller: Caller) -> Document:
    request_id = parse_request_id(raw_id)
    rows = open311_rows.requests_by_id(connection, [request_id]) if request_id else []
    if not rows:
        raise Open311Error(404, f"service_request_id {raw_id} not found / 没有这个请求")
    return Document("service_requests", _documents(rows, store, caller), "request")


def token(connection: Connection, token_value: str) -> Document:
    """The request a POST's token stands for (its external id under source open311)."""
    found = None
    if len(token_value) <= MAX_TOKEN_CHARS and "\x00" not in token_value:
        found = open311_rows.request_id_for(connection, SOURCE, token_value)
    if found is None:
        raise Open311Error(404, f"token {token_value!r} not found / 没有这个 token")
    return Document(
        "service_requests", [{"service_request_id": found, "token": token_value}], "request"
    )
