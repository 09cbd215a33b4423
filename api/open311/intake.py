"""POST requests: an Open311 service request becomes an ordinary wangge event (api/events.py).

It enters the loop as any hotline ticket does (reported → accepted → … → closed), with source
`open311` and an external id that is also the token the client can ask about. A client may send
its own `external_id` (a wangge extension): a retry of the same request then returns the same
service_request_id, and the same id with different content is refused (409), never merged into
the stored request. Without one, each POST is a new request with a generated id.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from api.events import EventIn, intake
from api.lookup.index_store import IndexStore
from api.open311.access import check_jurisdiction, key_principal
from api.open311.formats import Open311Error
from api.open311.mapping import SOURCE, compose_description, reporter_name, w3c
from api.open311.params import Params, bad
from api.open311.service import ADDRESS_DETAIL, Document
from api.privacy import Caller
from api.settings import Settings

WGS84 = "EPSG:4326"  # Open311's lat/long
CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
MEDIA_URL = re.compile(r"^https?://\S{1,1000}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
# Where EventIn's fields come from in an Open311 request, to name them in errors.
PARAMETERS = {
    "external_id": "external_id",
    "category_code": "service_code",
    "description": "description",
    "address": "address_string",
    "reporter_name": "first_name/last_name",
    "reporter_phone": "phone",
}


def _location(params: Params) -> tuple[float | None, float | None, str | None]:
    lat = params.number("lat", -90, 90)
    lon = params.number("long", -180, 180)
    if (lat is None) != (lon is None):
        raise bad("lat and long go together / lat 与 long 需同时提供")
    unknown = sorted(set(params.attributes) - {ADDRESS_DETAIL})
    if unknown:
        raise bad(
            f"unknown attribute(s): {', '.join(unknown)}; this service takes only "
            f"attribute[{ADDRESS_DETAIL}] / 未知的属性：{'、'.join(unknown)}"
        )
    given = params.text("address_string")
    detail = params.attributes.get(ADDRESS_DETAIL, "").strip() or None
    if lat is None and given is None:
        raise bad(
            "a location is required: lat and long (WGS84), or address_string "
            "(address_id is not supported) / 需要位置：lat、long（WGS84）或 address_string"
        )
    return lon, lat, " ".join(part for part in (given, detail) if part) or None


def _checked(params: Params, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = params.text(name)
    if value is not None and not pattern.match(value):
        raise bad(f"{name} is not {what} / {name} 格式不正确")
    return value


def _event(params: Params, external_id: str) -> EventIn:
    lon, lat, address = _location(params)
    service_code = params.text("service_code")
    if service_code is None:
        raise bad("service_code is required / 缺少 service_code（服务类别）")
    extras = {
        "media_url": _checked(params, "media_url", MEDIA_URL, "an http(s) URL"),
        "email": _checked(params, "email", EMAIL, "an e-mail address"),
    }
    try:
        return EventIn(
            source=SOURCE,
            external_id=external_id,
            category_code=service_code,
            description=compose_description(params.text("description"), extras),
            lon=lon,
            lat=lat,
            crs=WGS84 if lon is not None else None,
            address=address,
            reporter_name=reporter_name(params.text("first_name"), params.text("last_name")),
            reporter_phone=params.text("phone"),
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else ""
        name = PARAMETERS.get(field, field or "request")
        raise bad(f"{name}: {first['msg']} / 参数 {name} 无效") from None


def _notice(event: dict[str, Any]) -> str:
    due = event.get("accept_due_at")
    by = w3c(datetime.fromisoformat(due)) if due else None
    if event.get("assignment", {}).get("needs_manual_dispatch"):
        where = "未能定位到网格，待人工分派 / not placed on a grid: a dispatcher will place it"
    else:
        where = f"网格 {event['grid_code']} / grid {event['grid_code']}"
    return f"已受理，待立案（立案期限 {by}）；{where} / received, to be registered by {by}"


def post_request(engine: Engine, store: IndexStore, settings: Settings, params: Params) -> Document:
    check_jurisdiction(params, settings)
    principal = key_principal(engine, params, settings, writing=True)
    assert principal is not None  # writing: a missing key was refused
    client_id = _checked(params, "external_id", CLIENT_ID, "1–100 of A-Z a-z 0-9 . _ : -")
    external_id = f"c-{client_id}" if client_id else f"g-{uuid.uuid4().hex}"
    event = _event(params, external_id)
    [outcome] = intake(
        engine,
        store,
        [event],
        actor=principal.actor,
        caller=Caller(principal),
        settings=settings.workflow,
    )
    if outcome["status"] == "conflict":
        raise Open311Error(
            409,
            f"external_id {client_id} was already used for a different request (service_request_id "
            f"{outcome['event_id']}), which stays as it was / 该 external_id 已用于内容不同的请求，原请求不会被修改",
        )
    if outcome["status"] == "invalid":
        error = outcome["error"]
        if error["code"] == "unknown_category":
            raise bad(f"service_code {event.category_code!r} not found / {error['message']}")
        raise bad(f"{error['where']}: {error['message']}")
    stored = outcome["event"]
    answer = {
        "service_request_id": stored["id"],
        "token": external_id,
        "service_notice": _notice(stored),
        "account_id": None,
    }
    status = 201 if outcome["status"] == "created" else 200
    return Document("service_requests", [answer], "request", status)
