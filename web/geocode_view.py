"""How an address match reads on the event and dispatch pages (地址匹配), and what the 纠正地址
form and 定位到此网格 need: labels in Chinese, one place for both pages (the event page renders
them in its template, the dispatch page hands them to web/assets/geocode_fix.js)."""

from __future__ import annotations

import math
from typing import Any

from api.auth import Principal, Role
from api.lookup.geocoding import REASONS_ZH
from api.routes.event_location import LOCATORS
from api.workflow.machine import FINISHED

PRECISION_LABELS = {
    "building": "楼栋",
    "house_number": "门牌",
    "compound": "小区",
    "intersection": "路口",
    "poi": "地标",
    "road": "道路（路段）",
    "community": "社区",
}
POINT_LABELS = {
    "building_interior": "楼栋内点",
    "house_number": "门牌点",
    "compound_point": "小区中心点",
    "intersection": "路口交点",
    "poi": "地标点",
    "road_point": "路段上的点",
    "community_point": "社区中心点",
}
REASON_LABELS = REASONS_ZH  # the service's words for why nothing was chosen
RELATIVE_LABELS = {"moved": "已按方位移动定位点", "widened": "已扩大候选范围"}
# The places an alias may point at (api/address_corrections.TARGET_KINDS): not a community.
TARGET_KINDS = ("building", "compound", "house_number", "road", "poi", "intersection")
# Who may teach the matcher (api/routes/geocode_aliases.ALIAS_WRITERS).
FIXERS = frozenset({Role.admin, Role.dispatcher, Role.supervisor})

LABELS = {
    "precision": PRECISION_LABELS,
    "point": POINT_LABELS,
    "reason": REASON_LABELS,
    "relative": RELATIVE_LABELS,
    "targetKinds": list(TARGET_KINDS),
    # 人工定位 (POST /events/{id}/location): who may, and the states it refuses (event_finished).
    "locators": sorted(role.value for role in LOCATORS),
    "finished": sorted(state.value for state in FINISHED),
}


def percent(share: float | None) -> int:
    """A share as a whole percentage, rounded half up (as JavaScript's Math.round on the
    dispatch page, so both pages print the same number)."""
    return math.floor(100 * min(max(share or 0.0, 0.0), 1.0) + 0.5)


def _grid(grid: Any) -> dict[str, Any]:
    """A candidate grid as the API gives it (its code, or {code, name, level})."""
    if isinstance(grid, dict):
        return {"code": grid.get("code"), "name": grid.get("name") or grid.get("code")}
    return {"code": grid, "name": grid}


def geocode_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """How an event was placed by its address: its assignment's, or as its report line keeps it
    (api/db/events.py), None for an event placed by coordinates."""
    geocode = (record.get("assignment") or {}).get("geocode")
    if geocode:
        return geocode
    for line in record.get("history") or []:
        if line.get("action") == "report":
            return (line.get("details") or {}).get("geocode") or None
    return None


def geocode_summary(record: dict[str, Any]) -> dict[str, Any] | None:
    """What the event page shows of how its address was matched (None: placed by coordinates)."""
    geocode = geocode_of(record)
    if not geocode:
        return None
    place = geocode.get("place") or {}
    point = geocode.get("point") or {}
    relative = geocode.get("relative") or {}
    confidence = geocode.get("confidence")
    return {
        "matched": bool(geocode.get("matched")),
        "precision": PRECISION_LABELS.get(geocode.get("precision") or "", geocode.get("precision")),
        "via_alias": bool(geocode.get("via_alias")),
        "confidence": None if confidence is None else f"{confidence:.2f}",
        "threshold": geocode.get("threshold"),
        "place": place.get("name"),
        "point": POINT_LABELS.get(point.get("kind") or "", point.get("kind")),
        "relative": (
            f"{relative.get('phrase')}：{RELATIVE_LABELS.get(relative.get('effect') or '', '')}"
            if relative.get("phrase")
            else None
        ),
        "complaint": geocode.get("complaint") or None,
        # A place spanning grids is said once, with its grids.
        "message": None
        if geocode.get("reason") == "spans_grids"
        else geocode.get("message")
        or REASON_LABELS.get(geocode.get("reason") or "", geocode.get("reason")),
        "needs_manual_dispatch": bool(geocode.get("needs_manual_dispatch")),
        "grids": [
            {**_grid(candidate.get("grid")), "percent": percent(candidate.get("share"))}
            for candidate in geocode.get("grid_candidates") or []
        ],
    }


def fix_form_data(record: dict[str, Any], principal: Principal | None) -> dict[str, Any] | None:
    """Page data for the 纠正地址 form: only for those who may save aliases, on an event that came
    with an address (its address part, without the complaint, is the wording offered)."""
    if principal is None or principal.role not in FIXERS or not record.get("address"):
        return None
    geocode = geocode_of(record) or {}
    return {
        "eventId": record["id"],
        "text": geocode.get("address_text") or record["address"],
        "labels": LABELS,
        "locate": locate_data(record, principal),
    }


def locate_data(record: dict[str, Any], principal: Principal | None) -> dict[str, Any] | None:
    """Page data for 定位到此网格: an open event on no grid, for those who may place it by hand
    (api/routes/event_location.LOCATORS); the version is the one the page read."""
    if (
        principal is None
        or principal.role not in LOCATORS
        or record.get("grid_code")
        or record.get("status") in FINISHED
    ):
        return None
    return {"eventId": record["id"], "version": record["version"]}
