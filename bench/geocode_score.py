"""Scoring the evaluation set (bench/geocode_cases.py) against a matcher's answers: precision and
recall per precision level, confusion of levels, grid correctness, per-variant recall.

Definitions (the README repeats them):
- an *answer* is the first candidate when its confidence reaches the threshold (0.85), else none;
- *right*: the answer is the case's place at the case's precision; *coarser*: the answer is a
  place consistent with it — a coarser one that contains it (the building's compound, house
  number, road or community) or, for "road + number + compound", that compound's own gate plate:
  honest, not wrong; *wrong*: any other answer; *unanswered*: no answer;
- recall of a level = right / cases of that level; precision of a level = (right + coarser) /
  answers given at that level (over every case, "none" cases included: an answer to a text with no
  place is wrong);
- grid: the grid the answer lands on (every sample of the answered place in one finest grid) against
  the true place's (a building, house number or POI: its grid; a compound: its grid when it lies in
  one; an intersection, road or community: none — manual dispatch is right). Relative phrases
  (a moved point) are left out of the grid figures.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from bench.geocode_cases import Case
from spatial.lookup import GridIndex

LEVELS = ("building", "house_number", "compound", "intersection", "poi", "road", "community")
THRESHOLD = 0.85


@dataclass
class Outcome:
    case: Case
    level: str | None  # the answer's precision (None: no answer at the threshold)
    code: str | None
    confidence: float  # of the first candidate (0 when none)
    verdict: str  # right | coarser | wrong | unanswered
    in_candidates: bool  # the true place among the candidates, whatever their confidence
    grid: str | None  # the grid the answer lands on
    true_grid: str | None
    relative_found: str | None
    first: str  # the first candidate, for the examples ("" when none)


def same_place(level: str, code: str, want_level: str, want_code: str | None) -> bool:
    if level != want_level or want_code is None:
        return False
    if level == "intersection":
        return set(code.split("+")) == set(want_code.split("+"))
    return code == want_code


def grid_of(index: GridIndex, lon: np.ndarray, lat: np.ndarray) -> str | None:
    """The finest grid holding every point, or None (several grids, or outside)."""
    found = index.locate(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    if len(found) == 0 or (found < 0).any() or len(set(found.tolist())) != 1:
        return None
    return index.records[int(found[0])].code


def true_grids(cases: list[Case], index: GridIndex, compounds: dict[str, Any]) -> list[str | None]:
    """Each case's true grid (None where the place spans grids, or a relative phrase moves it)."""
    point_cases = [
        i
        for i, c in enumerate(cases)
        if c.level in ("building", "house_number", "poi") and c.relative is None
    ]
    grids: list[str | None] = [None] * len(cases)
    if point_cases:
        lon = np.array([cases[i].lon for i in point_cases], dtype=float)
        lat = np.array([cases[i].lat for i in point_cases], dtype=float)
        found = index.locate(lon, lat)
        for i, f in zip(point_cases, found.tolist(), strict=True):
            grids[i] = index.records[f].code if f >= 0 else None
    cache: dict[str, str | None] = {}
    for i, c in enumerate(cases):
        if c.level == "compound" and c.relative is None and c.code in compounds:
            if c.code not in cache:
                cache[c.code] = _polygon_grid(index, compounds[c.code])
            grids[i] = cache[c.code]
    return grids


def _polygon_grid(index: GridIndex, polygon: Any) -> str | None:
    """The grid a polygon lies in: points over it (a lattice of 8 × 8, kept inside) in one grid."""
    xmin, ymin, xmax, ymax = polygon.bounds
    xs, ys = np.meshgrid(np.linspace(xmin, xmax, 10)[1:-1], np.linspace(ymin, ymax, 10)[1:-1])
    points = shapely.points(xs.ravel(), ys.ravel())
    inside = points[shapely.contains(polygon, points)]
    if len(inside) == 0:
        inside = np.array([polygon.representative_point()])
    return grid_of(index, shapely.get_x(inside), shapely.get_y(inside))


def score(
    case: Case,
    candidates: list[Any],
    relative: dict | None,
    index: GridIndex | None,
    true_grid: str | None,
    threshold: float = THRESHOLD,
) -> Outcome:
    """One case against a matcher's candidates (PlaceMatch-like: precision, code, confidence,
    samples_lon/lat)."""
    first = candidates[0] if candidates else None
    answered = first is not None and first.confidence >= threshold
    level = first.precision if answered else None
    code = first.code if answered else None
    if not answered:
        verdict = "unanswered"
    elif case.level == "none":
        verdict = "wrong"
    elif same_place(level or "", code or "", case.level, case.code):
        verdict = "right"
    elif any(same_place(level or "", code or "", lv, cd) for lv, cd in case.accept):
        verdict = "coarser"
    else:
        verdict = "wrong"
    grid = None
    if answered and index is not None and first is not None:
        grid = grid_of(index, first.samples_lon, first.samples_lat)
    return Outcome(
        case,
        level,
        code,
        round(float(first.confidence), 3) if first is not None else 0.0,
        verdict,
        any(same_place(c.precision, c.code, case.level, case.code) for c in candidates),
        grid,
        true_grid,
        (relative or {}).get("direction"),
        f"{first.precision}:{first.code}:{first.name}@{first.confidence:.3f}" if first else "",
    )


def tables(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per-level, overall, confusion, grid, variants: plain dicts for the JSON and the Markdown."""
    by_level: dict[str, Counter[str]] = defaultdict(Counter)
    answers_at: dict[str, Counter[str]] = defaultdict(Counter)
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        by_level[o.case.level][o.verdict] += 1
        by_level[o.case.level]["in_candidates"] += o.in_candidates
        confusion[o.case.level][o.level or "—"] += 1
        if o.level is not None:
            answers_at[o.level][o.verdict] += 1
    levels = {}
    for level in (*LEVELS, "none"):
        counts = by_level.get(level, Counter())
        cases = sum(counts[v] for v in ("right", "coarser", "wrong", "unanswered"))
        at = answers_at.get(level, Counter())
        given = sum(at.values())
        levels[level] = {
            "cases": cases,
            **{v: counts[v] for v in ("right", "coarser", "wrong", "unanswered")},
            "recall": _ratio(counts["right"], cases) if level != "none" else None,
            "recall_top5": _ratio(counts["in_candidates"], cases) if level != "none" else None,
            "answers": given,
            "precision": _ratio(at["right"] + at["coarser"], given),
            "precision_strict": _ratio(at["right"], given),
        }
    placeable = [o for o in outcomes if o.case.level != "none"]
    answered = [o for o in outcomes if o.level is not None]
    overall = {
        "cases": len(outcomes),
        "placeable": len(placeable),
        "recall": _ratio(sum(o.verdict == "right" for o in placeable), len(placeable)),
        "recall_or_coarser": _ratio(
            sum(o.verdict in ("right", "coarser") for o in placeable), len(placeable)
        ),
        "answers": len(answered),
        "precision": _ratio(
            sum(o.verdict in ("right", "coarser") for o in answered), len(answered)
        ),
        "wrong": sum(o.verdict == "wrong" for o in answered),
    }
    return {
        "levels": levels,
        "overall": overall,
        "confusion": {k: dict(v) for k, v in confusion.items()},
        "grid": grid_table(outcomes),
        "variants": variant_table(outcomes),
        "relative": relative_table(outcomes),
    }


def grid_table(outcomes: list[Outcome]) -> dict[str, Any]:
    scored = [o for o in outcomes if o.case.level != "none" and o.case.relative is None]
    single = [o for o in scored if o.true_grid is not None]
    spread = [o for o in scored if o.true_grid is None]
    return {
        "one_grid_cases": len(single),
        "right_grid": sum(o.grid == o.true_grid for o in single),
        "manual": sum(o.grid is None for o in single),
        "wrong_grid": sum(o.grid is not None and o.grid != o.true_grid for o in single),
        "spread_cases": len(spread),
        "spread_manual": sum(o.grid is None for o in spread),
        "spread_one_grid_asserted": sum(o.grid is not None for o in spread),
        "none_cases_given_a_grid": sum(
            o.grid is not None for o in outcomes if o.case.level == "none"
        ),
    }


def variant_table(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """Per variant family (level/kind) and per tag (prefix, numerals, complaint…): recall, wrong."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        family, *tags = o.case.variant.split("+")
        groups[family].append(o)
        for tag in set(tags):
            groups["+" + tag].append(o)
    table = {}
    for name, members in sorted(groups.items()):
        placeable = [o for o in members if o.case.level != "none"]
        table[name] = {
            "cases": len(members),
            "right": sum(o.verdict == "right" for o in members),
            "coarser": sum(o.verdict == "coarser" for o in members),
            "wrong": sum(o.verdict == "wrong" for o in members),
            "recall": _ratio(sum(o.verdict == "right" for o in placeable), len(placeable)),
        }
    return table


def relative_table(outcomes: list[Outcome]) -> dict[str, Any]:
    with_phrase = [o for o in outcomes if o.case.relative is not None]
    without = [o for o in outcomes if o.case.relative is None and o.case.level != "none"]
    return {
        "cases": len(with_phrase),
        "direction_found": sum(o.relative_found == o.case.relative for o in with_phrase),
        "spurious_on_plain_cases": sum(o.relative_found is not None for o in without),
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def failures(outcomes: list[Outcome], per_family: int = 4) -> dict[str, list[dict[str, Any]]]:
    """A few wrong and unanswered cases per variant family, for the matcher's authors."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in outcomes:
        if o.verdict not in ("wrong", "unanswered") or (
            o.case.level == "none" and o.verdict != "wrong"
        ):
            continue
        family = o.case.variant.split("+")[0] + "/" + o.verdict
        if len(found[family]) < per_family:
            found[family].append(
                {"text": o.case.text[:80], "want": f"{o.case.level}:{o.case.code}", "got": o.first}
            )
    return dict(found)
