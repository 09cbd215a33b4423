"""Address-only geocoding as the service answers it: the gazetteer's match, then the grids.

The matcher (`api.geocode.index.Gazetteer`) says which place the text names and how precisely;
this module says which grid that place lies in. A place is assigned to a grid only when all of it
lies within one grid at the assigning level (网格, rank `ASSIGN_RANK`) or finer: the deepest grid
holding every sample point of the place. A compound or road stretch spread over several grids, an
intersection where grids meet, or a point widened by "附近 50 米" answers the grids with their
shares (of the place's sample points) and `needs_manual_dispatch: true`. Below the threshold
nothing is chosen: candidates only, never a guess.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from api.privacy import Caller
from spatial.lookup import GridIndex, GridRecord

if TYPE_CHECKING:
    from api.geocode.places import PlaceMatch
    from api.lookup.index_store import IndexStore

DEFAULT_THRESHOLD = 0.85
ASSIGN_RANK = 3  # 网格: a place spread over several grids below a community is not "one grid"
MAX_CANDIDATE_GRIDS = 8
EDGE_M = 2.0  # a sample this close to another grid lies on the edge between them

REASONS_ZH = {
    "empty": "地址为空",
    "too_long": "文本过长（超过 500 字），未作匹配",
    "no_place": "文本中没有可识别的地点（只有诉求内容）",
    "not_found": "地名地址库中找不到这个地点",
    "other_area": "地址属于其他省、市、区县或街道，不在本辖区",
    "below_threshold": "匹配把握不足，未自动选定，请从候选中人工确认",
    "no_gazetteer": "地名地址库尚未加载",
}


def _grid(record: GridRecord) -> dict[str, str]:
    return {"level": record.level, "code": record.code, "name": record.name}


def _dispatch_unit(index: GridIndex, leaf: int) -> int:
    """The grid a sample point counts for: its ancestor at the assigning level (or the leaf
    itself when the hierarchy stops above that level)."""
    path = index.path(leaf)
    for record in path:
        if record.rank == ASSIGN_RANK:
            return index.by_code[record.code]
    return leaf


def place_grids(index: GridIndex, match: PlaceMatch) -> tuple[int, list[dict[str, Any]]]:
    """(the grid the whole place lies in, or −1; shares of the grids it touches, largest first)."""
    grid, shares, _ = spread(index, match)
    return grid, shares


def spread(index: GridIndex, match: PlaceMatch) -> tuple[int, list[dict[str, Any]], float]:
    """`place_grids`, and the share of the place lying outside every grid.

    A sample within EDGE_M of another grid counts half for each: a road drawn along the edge
    between two grids, or a plate on it, belongs to both sides, not to whichever the point-in-
    polygon tie-break picks."""
    lon = np.asarray(match.samples_lon, dtype=float)
    lat = np.asarray(match.samples_lat, dtype=float)
    if not len(lon):
        lon, lat = np.array([match.lon]), np.array([match.lat])
    # A building's point is inside its footprint, which the grids are drawn around (a building
    # cut by a grid edge is the coverage check's finding, not the caller's doubt).
    found = index.lookup(lon, lat, near_m=0.0 if match.precision == "building" else EDGE_M)
    weights: dict[int, float] = {}
    leaves: set[int] = set()
    for grid, runner in zip(found.grid.tolist(), found.runner_up.tolist(), strict=True):
        if grid < 0:
            continue
        sides = (grid, runner) if runner >= 0 else (grid,)
        for leaf in sides:
            leaves.add(leaf)
            unit = _dispatch_unit(index, leaf)
            weights[unit] = weights.get(unit, 0.0) + 1.0 / len(sides)
    inside = int((found.grid >= 0).sum())
    outside = round(1.0 - inside / len(lon), 3)
    if not inside:
        return -1, [], outside
    shares = [
        {"grid": _grid(index.records[unit]), "share": round(weight / len(lon), 3)}
        for unit, weight in sorted(weights.items(), key=lambda u: (-u[1], index.records[u[0]].code))
    ][:MAX_CANDIDATE_GRIDS]
    if inside < len(lon):  # part of the place lies outside every grid
        return -1, shares, outside
    if len(leaves) == 1:
        return leaves.pop(), shares, 0.0
    paths = [index.path(leaf) for leaf in sorted(leaves)]
    common = None
    for level_records in zip(*paths, strict=False):
        if len({r.code for r in level_records}) != 1:
            break
        common = level_records[0]
    if common is not None and common.rank >= ASSIGN_RANK:
        return index.by_code[common.code], shares, 0.0
    return -1, shares, 0.0


def _candidate(index: GridIndex, match: PlaceMatch) -> tuple[int, dict[str, Any]]:
    grid, shares, outside = spread(index, match)
    body: dict[str, Any] = {
        "precision": match.precision,
        "confidence": match.confidence,
        "place": {"kind": match.kind, "code": match.code, "name": match.name},
        "point": {"lon": round(match.lon, 9), "lat": round(match.lat, 9), "kind": match.point_kind},
        "grid": _grid(index.records[grid]) if grid >= 0 else None,
        "grid_candidates": shares,
        "outside_share": outside,  # of the place's samples, in no grid at all
        "via_alias": match.via_alias,
    }
    if match.precision == "building":
        body["building"] = {"code": match.code, "address": match.name}
    return grid, body


def geocode_answer(
    store: IndexStore,
    text: str,
    *,
    at: datetime | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    caller: Caller,
    limit: int = 5,
) -> dict[str, Any]:
    """The answer of `GET /geocode/address` and of an event placed by its address (README)."""
    from api.lookup.service import visible_staff

    index = store.at(at)
    answer: dict[str, Any] = {
        "query": text,
        "threshold": threshold,
        "generation": index.generation,
        "matched": False,
        "precision": None,
        "place": None,
        "point": None,
        "building": None,
        "grid": None,
        "path": [],
        "grid_candidates": [],
        "needs_manual_dispatch": True,
        "confidence": 0.0,
        "candidates": [],
        "relative": None,
        "address_text": "",
        "complaint": "",
        "parsed": {},
    }
    gazetteer = store.gazetteer
    if gazetteer is None:
        return {**answer, "reason": "no_gazetteer", "message": REASONS_ZH["no_gazetteer"]}
    result = gazetteer.geocode(text, limit=limit)
    answer.update(
        address_text=result.address_text,
        complaint=result.complaint,
        parsed=result.parsed,
        relative=result.relative,
    )
    shaped = [_candidate(index, match) for match in result.candidates]
    if not shaped or shaped[0][1]["confidence"] < threshold:
        reason = result.reason or ("below_threshold" if shaped else "not_found")
        parsed = result.parsed
        if reason in ("not_found", "below_threshold") and (
            parsed.get("outside") or parsed.get("unknown_area")
        ):
            # A division our register never names (上海市…, 常熟市…): namesakes here are only
            # candidates, and the operator learns why.
            reason = "other_area"
        answer.update(
            confidence=shaped[0][1]["confidence"] if shaped else 0.0,
            candidates=[body for _, body in shaped],
            reason=reason,
            message=REASONS_ZH.get(reason, reason),
        )
        return answer
    (grid, best), rest = shaped[0], shaped[1:]
    path = index.path(grid) if grid >= 0 else []
    answer.update(
        {
            key: best[key]
            for key in ("precision", "place", "point", "grid", "grid_candidates", "outside_share")
        },
        matched=True,
        building=best.get("building"),
        path=[_grid(r) for r in path],
        needs_manual_dispatch=grid < 0,
        confidence=best["confidence"],
        via_alias=best["via_alias"],
        lon=best["point"]["lon"],
        lat=best["point"]["lat"],
        candidates=[body for _, body in rest],
    )
    if grid < 0:
        answer["reason"] = "spans_grids" if best["grid_candidates"] else "outside_grids"
        answer["message"] = (
            "地点跨越多个网格，请从候选网格中人工分派"
            if best["grid_candidates"]
            else "地点不在任何网格内，请人工分派"
        )
        return answer
    staff = visible_staff(store, index, [r.code for r in path], caller)
    if staff is not None:
        answer["staff"] = staff
    return answer


SUMMARY_KEYS = (
    "matched",
    "precision",
    "confidence",
    "place",
    "point",
    "grid_candidates",
    "outside_share",
    "needs_manual_dispatch",
    "relative",
    "via_alias",
    "address_text",
    "reason",
    "message",
)


def geocode_summary(answer: dict[str, Any]) -> dict[str, Any] | None:
    """What an event keeps of its address match (no citizen text): None for an event placed by
    its coordinates."""
    if "precision" not in answer:
        return None
    return {key: answer[key] for key in SUMMARY_KEYS if key in answer}
