"""Address parsing and normalisation (pure: no database). The cases are data in
tests/geocode_dev_cases.py, which the evaluation set leaves out."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon

from api.geocode.normalise import canonical, canonical_mapped, chinese_number, normalise_key
from api.geocode.parse import Vocabulary, parse
from api.geocode.relative import apply, relative_at
from spatial.gazetteer import distance_m, move, samples_along, samples_in_disc, samples_in_polygon
from tests.geocode_dev_cases import NORMALISE_CASES, PARSE_CASES, VOCABULARY


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    words = Vocabulary()
    for kind, names in VOCABULARY.items():
        for name in names:
            words.add(canonical(name), kind)
    return words.finish()


def test_the_case_lists_are_whole() -> None:
    assert len(NORMALISE_CASES) == 16
    assert len(PARSE_CASES) == 37


@pytest.mark.parametrize(("text", "expected"), NORMALISE_CASES)
def test_normalise(text: str, expected: str) -> None:
    assert canonical(text) == expected
    assert canonical_mapped(text).text == expected  # the mapped path agrees with the fast one


def test_normalise_key_is_the_alias_key() -> None:
    assert normalise_key("景玉府小区 九栋") == normalise_key("景玉府9幢") == "景玉府9幢"
    assert normalise_key("") == ""


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("十", 10), ("十九", 19), ("二十", 20), ("一百零三", 103), ("二八", 28), ("两百", 200)],
)
def test_chinese_numbers(numeral: str, value: int) -> None:
    assert chinese_number(numeral) == value


def test_the_map_points_back_to_the_callers_wording() -> None:
    mapped = canonical_mapped("新翠居 四栋，楼下")
    assert mapped.text == "新翠居4幢楼下"
    assert len(mapped.origin) == len(mapped.text)
    assert "新翠居 四栋，楼下"[mapped.position(mapped.text.index("楼"), 9)] == "楼"
    assert mapped.position(len(mapped.text), 9) == 9


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c["text"][:12] for c in PARSE_CASES])
def test_parse(case: dict, vocabulary: Vocabulary) -> None:
    text = case["text"]
    parsed, mapped = parse(text, vocabulary)
    for key, value in case["parts"].items():
        assert parsed.parts.get(key) == value, (key, parsed.parts)
    if not case["parts"]:
        assert not parsed.place_like and parsed.parts == {}
    start = mapped.position(parsed.address_start, len(text))
    end = mapped.position(parsed.address_end, len(text)) if parsed.place_like else start
    assert text[start:end] == case["address"]
    assert text[end:].lstrip("的，,") == case["complaint"]
    expected = case.get("relative")
    if expected is None:
        assert parsed.relative is None
    else:
        assert parsed.relative is not None
        assert (
            parsed.relative.direction,
            parsed.relative.effect,
            parsed.relative.distance_m,
        ) == expected


def test_a_short_form_is_kept_when_no_known_name_follows(vocabulary: Vocabulary) -> None:
    # 金湖 is a compound and 湖东 a street short form: "湖东" before an unknown word stays text.
    parsed, _ = parse("湖东某处3号", vocabulary)
    assert "street" not in parsed.parts
    parsed, _ = parse("金湖5幢", vocabulary)
    assert parsed.parts == {"compound": "金湖", "building": "5"}


def test_a_misspelt_longer_name_is_not_its_shorter_namesake(vocabulary: Vocabulary) -> None:
    parsed, _ = parse("金湖城5幢", vocabulary)  # not 金湖 + "城": a typo of some 金湖… name
    assert parsed.parts == {"compound_text": "金湖城", "building": "5"}


def test_a_county_name_inside_a_compound_name_is_not_a_prefix() -> None:
    words = Vocabulary()
    words.add("金华庭", "compound")
    words.finish()
    parsed, _ = parse("金华庭3幢", words)  # 金华 is a city in cpca's list
    assert parsed.parts == {"compound": "金华庭", "building": "3"}
    parsed, _ = parse("浙江省金华市金华庭3幢", words)
    assert parsed.parts == {"compound": "金华庭", "building": "3"}
    assert parsed.prefix == ["浙江省", "金华市"]


def test_relative_phrases_move_or_widen() -> None:
    lon, lat = 120.738, 31.305
    samples = np.array([[lon, lat]])
    found = relative_at("东侧50米", 0)
    assert found is not None and found[1] == len("东侧50米")
    new_lon, new_lat, moved = apply(found[0], lon, lat, samples)
    assert found[0].effect == "moved"
    assert distance_m(lon, lat, new_lon, new_lat) == pytest.approx(50.0, rel=0.01)
    assert new_lon > lon and moved.shape == (1, 2)
    side = relative_at("北门", 0)
    assert side is not None and side[0].effect == "widened" and side[0].direction == "north"
    same_lon, same_lat, widened = apply(side[0], lon, lat, samples)
    assert (same_lon, same_lat) == (lon, lat)
    assert len(widened) == 2 and widened[1, 1] > lat
    near = relative_at("附近", 0)
    assert near is not None
    _, _, disc = apply(near[0], lon, lat, samples)
    assert len(disc) == 1 + 1 + 6 + 12 + 18  # the place, then the disc's centre and 3 rings
    assert relative_at("楼下", 0) is None


def test_geometry_helpers() -> None:
    lon, lat = move(120.738, 31.305, 90.0, 100.0)
    assert distance_m(120.738, 31.305, lon, lat) == pytest.approx(100.0, rel=0.005)
    assert lat == pytest.approx(31.305)
    line = LineString([(120.738, 31.305), (120.748, 31.305)])  # about 950 m
    along = samples_along(line, step_m=25.0)
    assert 30 <= len(along) <= 40
    square = Polygon([(120.738, 31.305), (120.740, 31.305), (120.740, 31.307), (120.738, 31.307)])
    inside = samples_in_polygon(square, limit=64)
    assert 40 <= len(inside) <= 128
    assert all(square.contains(Point(x, y)) for x, y in inside)
    disc = samples_in_disc(120.738, 31.305, 30.0, rings=2)
    assert len(disc) == 1 + 6 + 12
