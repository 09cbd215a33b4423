"""The geocoding evaluation set (bench/geocode_cases.py) in the test suite: the generator is
deterministic, covers every precision level, leaves out the matcher's development cases; a slice
of it run through the real matcher (the demo street's gazetteer) meets recall and precision floors
per level, and no text without a place lands on a grid."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from sqlalchemy import Engine

from api.db.gazetteer import load_gazetteer
from api.geocode.index import Gazetteer
from api.geocode.rows import GazetteerRows
from api.lookup.index_store import IndexStore
from bench.geocode_cases import ID_PREFIX, QUOTAS, Case, chinese, dev_texts, make_cases, squeeze
from bench.geocode_score import LEVELS, score, tables, true_grids

SLICE = 300 / sum(QUOTAS.values())  # about 300 cases, every level
# Floors the matcher meets on the slice (measured with margin; bench/results/geocode.md has the
# full set's figures). Recall: right place at the right precision, confidence ≥ 0.85.
RECALL_FLOORS = {
    "building": 0.85,
    "house_number": 0.7,
    "compound": 0.75,
    "intersection": 0.7,
    "poi": 0.9,
    "road": 0.6,  # includes road + a number no plate carries: the road stays a candidate (< 0.85)
    "community": 0.85,
}
PRECISION_FLOOR = 0.97  # (right + honest coarser) / answers, over every answer given
WRONG_GRIDS_AT_MOST = 2  # of about 210 places that lie in one grid


@pytest.fixture(scope="module")
def rows(demo_engine: Engine) -> GazetteerRows:
    with demo_engine.connect() as connection:
        return load_gazetteer(connection)


@pytest.fixture(scope="module")
def cases(rows: GazetteerRows) -> list[Case]:
    return make_cases(rows, scale=SLICE)


def test_slice_has_every_level_in_its_share(cases: list[Case]) -> None:
    # Each generator gives its share; a few of its cases mean a coarser or finer place (a
    # building the register lacks → its compound; a compound's gate → its house number).
    made = Counter(c.id[:2] for c in cases)
    assert made == {ID_PREFIX[level]: round(quota * SLICE) for level, quota in QUOTAS.items()}
    assert len(cases) == 300
    levels = Counter(c.level for c in cases)
    assert set(levels) == {*LEVELS, "none"}
    assert min(levels.values()) >= 13
    assert len({c.id for c in cases}) == len(cases)
    assert len({squeeze(c.text) for c in cases}) == len(cases)


def test_generator_is_deterministic(rows: GazetteerRows, cases: list[Case]) -> None:
    again = make_cases(rows, scale=SLICE)
    assert [c.text for c in again] == [c.text for c in cases]
    other = make_cases(rows, scale=SLICE, seed=18)
    assert [c.text for c in other] != [c.text for c in cases]


def test_generator_leaves_out_the_development_cases(rows: GazetteerRows) -> None:
    development = dev_texts()
    assert len(development) >= 20  # tests/geocode_dev_cases.py: the matcher's own cases
    full = make_cases(rows)
    assert not {c.text for c in full} & development
    assert not {squeeze(c.text) for c in full} & development
    # Texts handed in as excluded are replaced by others: same count, none of them left.
    taken = {c.text for c in full[:50]} | {squeeze(c.text) for c in full[:50]}
    without = make_cases(rows, exclude=taken)
    assert len(without) == len(full)
    assert not {c.text for c in without} & taken


def test_chinese_numerals_of_the_generator() -> None:
    assert [chinese(n) for n in (4, 10, 12, 23, 103, 115)] == [
        "四",
        "十",
        "十二",
        "二十三",
        "一百零三",
        "一百一十五",
    ]


@dataclass(frozen=True)
class _Place:
    precision: str
    code: str
    name: str
    confidence: float
    samples_lon: np.ndarray
    samples_lat: np.ndarray


def test_scoring_rules() -> None:
    case = Case(
        "bu00000",
        "新翠居4幢",
        "building",
        "B4",
        "building/compound_building",
        accept=(("compound", "C1"), ("road", "R1")),
    )
    point = np.array([0.0])

    def verdict(*places: _Place) -> str:
        return score(case, list(places), None, None, None).verdict

    assert verdict(_Place("building", "B4", "", 0.95, point, point)) == "right"
    assert verdict(_Place("compound", "C1", "", 0.9, point, point)) == "coarser"
    assert verdict(_Place("building", "B5", "", 0.9, point, point)) == "wrong"
    assert verdict(_Place("building", "B4", "", 0.8, point, point)) == "unanswered"
    assert verdict() == "unanswered"
    crossing = Case("in00000", "A与B交叉口", "intersection", "R1+R2", "intersection/wording0")
    swapped = _Place("intersection", "R2+R1", "", 0.9, point, point)
    assert score(crossing, [swapped], None, None, None).verdict == "right"
    nothing = Case("no00000", "有人乱扔垃圾", "none", None, "none/complaint")
    assert score(nothing, [swapped], None, None, None).verdict == "wrong"
    assert score(nothing, [], None, None, None).verdict == "unanswered"


def test_slice_meets_the_floors(
    rows: GazetteerRows, cases: list[Case], demo_engine: Engine
) -> None:
    gazetteer = Gazetteer.build(rows)
    store = IndexStore(demo_engine)
    store.refresh()
    index = store.active()
    grids = true_grids(cases, index, {c.code: c.geom for c in rows.compounds})
    outcomes = []
    for case, grid in zip(cases, grids, strict=True):
        result = gazetteer.geocode(case.text, limit=5)
        outcomes.append(score(case, result.candidates, result.relative, index, grid))
    result = tables(outcomes)
    recall = {level: result["levels"][level]["recall"] for level in LEVELS}
    assert {k: v for k, v in recall.items() if v < RECALL_FLOORS[k]} == {}
    assert result["overall"]["precision"] >= PRECISION_FLOOR
    assert result["grid"]["one_grid_cases"] >= 150
    assert result["grid"]["wrong_grid"] <= WRONG_GRIDS_AT_MOST
    assert result["grid"]["right_grid"] >= 0.8 * result["grid"]["one_grid_cases"]
    # Never a silent wrong grid for a text without a place.
    assert result["grid"]["none_cases_given_a_grid"] == 0
    assert result["levels"]["none"]["wrong"] == 0
