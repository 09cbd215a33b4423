"""Dispatchers' address corrections (纠正地址): find the right place by name, then save "this
wording means that place" as an alias the matcher uses next time. The one service behind the API
(api/routes/geocode_aliases.py) and `wangge gazetteer aliases` (api/cli/gazetteer.py).

- A wording is what a caller said (or the address part of it); it is stored as said and under its
  normalised key (api/geocode/normalise.py), which is unique: one wording, one place.
- Saving the wording again for the same place is no change (answered, not created); for another
  place it is refused (409 alias_taken, naming the place that holds it) — a correction that
  contradicts an earlier one is a decision for a person, not a silent overwrite.
- The place must exist in the gazetteer tables (a building, compound, house number, road, POI, or
  the intersection "<road code>+<road code>" of two roads).
- A new wording is checked against its own words and the register (api/alias_rules.py): no
  place words (422 wording_too_vague); another place's own name/alias/address, or a place at
  least as precise as the target that the matcher already finds confidently (409
  official_name); the target itself found confidently: "already matches", nothing saved.
- Every addition and removal is audited in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Connection, Engine

from api import alias_rules
from api.db import audit
from api.db import events as event_rows
from api.db import gazetteer as rows
from api.errors import Conflict, InvalidInput, NotFound
from api.geocode.normalise import normalise_key
from api.lookup.geocoding import DEFAULT_THRESHOLD
from spatial.lookup import GridIndex

TARGET_KINDS = ("building", "compound", "house_number", "road", "poi", "intersection")
KIND_LABELS = {
    "building": "楼栋",
    "compound": "小区",
    "house_number": "门牌",
    "road": "道路",
    "poi": "地标",
    "intersection": "路口",
}
MAX_WORDING = 200
MAX_CODE = 200
MAX_PLACES = 20


class PlaceNamer(Protocol):
    """What this module needs of the matcher's Gazetteer (api/geocode/index.py)."""

    def place(self, kind: str, code: str) -> Any: ...


class PlaceFinder(PlaceNamer, Protocol):
    def geocode(self, text: str, *, limit: int = 5) -> Any: ...


def _at(where: str, field: str) -> str:
    """`field` under `where` (body.text for the API, text for the command line)."""
    return f"{where}.{field}" if where else field


@dataclass(frozen=True)
class Saved:
    alias: dict[str, Any] | None  # None: nothing saved, the matcher already finds the place
    created: bool  # False: the same wording already meant the same place
    match: Any = None  # when nothing was saved: the matcher's confident PlaceMatch of the target
    text: str = ""
    normalised: str = ""
    event_id: int | None = None


def _wording(text: Any, where: str) -> tuple[str, str]:
    """The wording as said (trimmed) and its normalised key, or 422 naming `where`."""
    wording = text.strip() if isinstance(text, str) else ""
    if not wording:
        raise InvalidInput("地址说法不能为空", code="empty_wording", where=where)
    if len(wording) > MAX_WORDING:
        raise InvalidInput(
            f"地址说法最长 {MAX_WORDING} 个字符（现为 {len(wording)} 个）",
            code="wording_too_long",
            where=where,
        )
    key = normalise_key(wording)
    if not key:
        raise InvalidInput(
            f"「{wording}」规范化后为空（只有空格或标点），不能作为地址别名",
            code="empty_wording",
            where=where,
        )
    if len(key) > MAX_WORDING:  # NFKC can lengthen a few characters (e.g. ㍿)
        raise InvalidInput(
            f"地址说法规范化后超过 {MAX_WORDING} 个字符", code="wording_too_long", where=where
        )
    return wording, key


def _target(kind: Any, code: Any, where: str) -> tuple[str, str]:
    if kind not in TARGET_KINDS:
        raise InvalidInput(
            f"地点类型须为 {'、'.join(TARGET_KINDS)} 之一",
            code="invalid_target_kind",
            where=f"{where}.kind",
        )
    code = code.strip() if isinstance(code, str) else ""
    if not code or len(code) > MAX_CODE:
        raise InvalidInput(
            f"地点编码不能为空，最长 {MAX_CODE} 个字符",
            code="invalid_target_code",
            where=f"{where}.code",
        )
    if kind == "intersection":
        first, plus, second = code.partition("+")
        if not plus or not first or not second or first == second or "+" in second:
            raise InvalidInput(
                "路口编码须为两条不同道路的编码，以 + 连接（如 R001+R002）",
                code="invalid_target_code",
                where=f"{where}.code",
            )
    return kind, code


def already_matches(wording: str, key: str, match: Any, event_id: int | None) -> dict[str, Any]:
    """The answer when nothing was saved: the matcher already finds the target confidently."""
    return {
        "id": None,
        "text": wording,
        "normalised": key,
        "target": {"kind": match.kind, "code": match.code, "name": match.name},
        "event_id": event_id,
        "created_by": None,
        "created_at": None,
        "already_matches": True,
        "confidence": match.confidence,
        "message": f"「{wording}」已能以 {match.confidence:.2f} 的把握匹配到该地点，无需保存",
    }


def answer(saved: Saved, gazetteer: PlaceNamer | None = None) -> dict[str, Any]:
    """What the API answers for `add_alias`'s result."""
    if saved.alias is None:
        return already_matches(saved.text, saved.normalised, saved.match, saved.event_id)
    return public(saved.alias, gazetteer)


def public(alias: dict[str, Any], gazetteer: PlaceNamer | None = None) -> dict[str, Any]:
    """An alias as the API answers it: the wording, its key, the place (named when known)."""
    target: dict[str, Any] = {"kind": alias["target_kind"], "code": alias["target_code"]}
    place = gazetteer.place(alias["target_kind"], alias["target_code"]) if gazetteer else None
    if place is not None:
        target["name"] = place.name
    return {
        "id": alias["id"],
        "text": alias["text"],
        "normalised": alias["normalised"],
        "target": target,
        "event_id": alias["event_id"],
        "created_by": alias["created_by"],
        "created_at": alias["created_at"].isoformat(),
    }


def add_alias(
    engine: Engine,
    *,
    text: Any,
    target_kind: Any,
    target_code: Any,
    event_id: int | None,
    actor: str,
    gazetteer: PlaceFinder,
    threshold: float = DEFAULT_THRESHOLD,
    where: str = "body",
) -> Saved:
    """Save a wording → place correction (validated, checked against the register through
    `gazetteer` — the matcher the service answers with —, unique by normalised key, audited)."""
    wording, key = _wording(text, _at(where, "text"))
    alias_rules.too_vague(wording, key, _at(where, "text"))
    kind, code = _target(target_kind, target_code, _at(where, "target"))
    with engine.begin() as connection:
        if event_id is not None and event_rows.find_event(connection, event_id=event_id) is None:
            raise NotFound(
                f"没有编号为 {event_id} 的事件",
                code="event_not_found",
                where=_at(where, "event_id"),
            )
        if not rows.place_exists(connection, kind, code):
            raise NotFound(
                f"地名地址库中没有{KIND_LABELS[kind]} {code}",
                code="place_not_found",
                where=_at(where, "target.code"),
            )
        if rows.find_alias(connection, key) is None:  # a stored wording: the alias table's rule
            match = alias_rules.against_register(
                gazetteer, wording, kind, code, threshold, _at(where, "text")
            )
            if match is not None:
                return Saved(None, False, match, wording, key, event_id)
        alias = rows.save_alias(
            connection,
            text=wording,
            normalised=key,
            target_kind=kind,
            target_code=code,
            event_id=event_id,
            actor=actor,
        )
        if not alias["created"]:
            if (alias["target_kind"], alias["target_code"]) != (kind, code):
                held = f"{KIND_LABELS.get(alias['target_kind'], alias['target_kind'])} "
                raise Conflict(
                    f"说法「{wording}」已是{held}{alias['target_code']} 的别名"
                    f"（别名 #{alias['id']}）；如需改指，请先删除该别名",
                    code="alias_taken",
                    where=_at(where, "text"),
                    details=[
                        {
                            "alias_id": alias["id"],
                            "target": {
                                "kind": alias["target_kind"],
                                "code": alias["target_code"],
                            },
                        }
                    ],
                )
            return Saved(alias, False, None, wording, key, event_id)
        audit.record(
            connection,
            actor,
            "address_alias.add",
            "address_alias",
            str(alias["id"]),
            {
                "text": wording,
                "normalised": key,
                "target": {"kind": kind, "code": code},
                "event_id": event_id,
            },
        )
    return Saved(alias, True, None, wording, key, event_id)


def list_aliases(connection: Connection, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Aliases, newest first."""
    return rows.list_aliases(connection, limit, offset)


def remove_alias(engine: Engine, alias_id: int, actor: str, where: str = "path.alias_id") -> None:
    """Delete one alias (the matcher stops using it at its next reload), audited."""
    with engine.begin() as connection:
        removed = rows.delete_alias(connection, alias_id)
        if not removed:
            raise NotFound(f"没有编号为 {alias_id} 的地址别名", code="alias_not_found", where=where)
        details = {
            "text": removed["text"],
            "target": {"kind": removed["target_kind"], "code": removed["target_code"]},
        }
        audit.record(
            connection, actor, "address_alias.remove", "address_alias", str(alias_id), details
        )


def find_places(
    gazetteer: PlaceFinder, index: GridIndex | None, query: Any, limit: int
) -> dict[str, Any]:
    """Places a name may mean (compounds, buildings, POIs, roads…), best first, each with the grid
    its point lies in: what a dispatcher picks from to correct an address."""
    wording = query.strip() if isinstance(query, str) else ""
    if not wording:
        raise InvalidInput("请输入要查找的地名", code="empty_query", where="query.q")
    if len(wording) > MAX_WORDING:
        raise InvalidInput(
            f"查找的地名最长 {MAX_WORDING} 个字符", code="query_too_long", where="query.q"
        )
    result = gazetteer.geocode(wording, limit=limit)
    places = [_place(match, index) for match in result.candidates[:limit]]
    return {
        "query": wording,
        "count": len(places),
        "places": places,
        "reason": None if places else (result.reason or "not_found"),
    }


def _place(match: Any, index: GridIndex | None) -> dict[str, Any]:
    grid = None
    if index is not None:
        position = int(index.locate(np.array([match.lon]), np.array([match.lat]))[0])
        if position >= 0:
            record = index.records[position]
            grid = {"code": record.code, "name": record.name, "level": record.level}
    return {
        "kind": match.kind,
        "code": match.code,
        "name": match.name,
        "precision": match.precision,
        "confidence": match.confidence,
        "lon": round(float(match.lon), 7),
        "lat": round(float(match.lat), 7),
        "point_kind": match.point_kind,
        "via_alias": match.via_alias,
        "grid": grid,
    }
