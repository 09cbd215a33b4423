"""The address matcher against the demo street's gazetteer (api/db/gazetteer.load_gazetteer)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely
from shapely import affinity
from sqlalchemy import Engine

from api.db.gazetteer import load_gazetteer
from api.geocode import rows as r
from api.geocode.index import CONFIDENT, Gazetteer
from api.geocode.normalise import normalise_key
from api.geocode.rows import AliasRow, GazetteerRows
from spatial.gazetteer import distance_m
from tests.geocode_dev_cases import DEMO_CASES, NO_ANSWER_CASES


@pytest.fixture(scope="module")
def rows(demo_engine: Engine) -> GazetteerRows:
    with demo_engine.connect() as connection:
        return load_gazetteer(connection)


@pytest.fixture(scope="module")
def gazetteer(rows: GazetteerRows) -> Gazetteer:
    return Gazetteer.build(rows)


def test_counts(gazetteer: Gazetteer) -> None:
    assert gazetteer.counts == {
        "building": 20557,
        "compound": 1202,
        "road": 32,
        "house_number": 1295,
        "poi": 45,
        "intersection": 77,
        "community": 8,
        "street": 1,
        "alias": 0,
    }


@pytest.mark.parametrize("case", DEMO_CASES, ids=[c["text"][:14] for c in DEMO_CASES])
def test_development_cases(case: dict, gazetteer: Gazetteer) -> None:
    answer = gazetteer.geocode(case["text"])
    assert answer.candidates, answer
    top = answer.candidates[0]
    fits = [
        c
        for c in answer.candidates
        if c.precision == case["precision"]
        and (
            c.name == case["name"] or (c.precision == "building" and c.name.endswith(case["name"]))
        )
    ]
    if case["confident"]:
        assert top in fits, answer.candidates
        assert top.confidence >= CONFIDENT
    else:
        assert fits, answer.candidates
        assert top.confidence < CONFIDENT


def test_development_case_count() -> None:
    assert len(DEMO_CASES) == 25
    assert len(NO_ANSWER_CASES) == 7


@pytest.mark.parametrize(("text", "reason"), NO_ANSWER_CASES, ids=lambda v: str(v)[:10])
def test_no_answer_says_why(text: str, reason: str, gazetteer: Gazetteer) -> None:
    answer = gazetteer.geocode(text)
    assert answer.candidates == []
    assert answer.reason == reason


def test_another_region_is_named_in_the_answer(gazetteer: Gazetteer) -> None:
    answer = gazetteer.geocode("上海市浦东新区新翠居4栋楼下")
    assert (answer.candidates, answer.reason) == ([], "not_found")
    assert answer.parsed["outside"] == "上海市浦东新区"
    # The register's own divisions, short or full, and its zone are ours.
    for text in ("江苏苏州园区新翠居4栋", "苏州市苏州工业园区新翠居4栋", "江苏省新翠居4栋"):
        assert gazetteer.geocode(text).candidates[0].confidence >= CONFIDENT, text
    doubtful = gazetteer.geocode("郭巷街道新翠居4栋")
    assert doubtful.parsed["unknown_area"] == "郭巷街道"


def test_bad_input_is_answered(gazetteer: Gazetteer) -> None:
    long = gazetteer.geocode("新翠居4栋" * 1000)  # 5,000 characters: refused before any work
    assert (long.reason, long.candidates, long.parsed) == ("too_long", [], {})
    mixed = gazetteer.geocode("Xincuiju 4 dong 楼下 🙂 ∑")
    assert mixed.candidates == [] and mixed.reason in ("no_place", "not_found")
    emoji = gazetteer.geocode("🙂新翠居4栋🙂楼下")
    assert emoji.candidates[0].name.endswith("新翠居4幢")
    assert gazetteer.geocode("新翠居4栋", limit=1).candidates[0].confidence >= CONFIDENT
    assert len(gazetteer.geocode("淞江路19号", limit=1).candidates) == 1


def test_every_address_of_the_register_finds_its_building(
    rows: GazetteerRows, gazetteer: Gazetteer
) -> None:
    buildings = rows.buildings
    wrong = []
    for code, address in zip(buildings.codes, buildings.addresses, strict=True):
        top = gazetteer.geocode(address, limit=1).candidates
        if not top or top[0].code != code or top[0].confidence < CONFIDENT:
            wrong.append(address)
    assert wrong == []
    assert len(buildings.codes) == 20557


def test_a_building_answer_is_its_interior_point(rows: GazetteerRows, gazetteer: Gazetteer) -> None:
    answer = gazetteer.geocode("园区新翠居4栋楼下垃圾堆放")
    top = answer.candidates[0]
    index = rows.buildings.codes.index(top.code)
    assert (top.precision, top.point_kind) == ("building", "building_interior")
    assert (top.lon, top.lat) == (rows.buildings.lon[index], rows.buildings.lat[index])
    assert len(top.samples_lon) == 1
    assert answer.address_text == "园区新翠居4栋"
    assert answer.complaint == "楼下垃圾堆放"
    assert answer.parsed == {"compound": "新翠居", "building": "4"}


def test_a_compound_answer_samples_its_outline(rows: GazetteerRows, gazetteer: Gazetteer) -> None:
    top = gazetteer.geocode("景玉府小区门口").candidates[0]
    compound = next(c for c in rows.compounds if c.code == top.code)
    assert (top.precision, top.point_kind, top.name) == ("compound", "compound_point", "景玉府")
    points = shapely.points(top.samples_lon, top.samples_lat)
    assert len(points) >= 20
    assert shapely.contains(compound.geom, points).all()
    assert compound.geom.contains(shapely.Point(top.lon, top.lat))


def test_a_missing_building_falls_back_to_its_compound(gazetteer: Gazetteer) -> None:
    answer = gazetteer.geocode("景玉府99幢")
    assert [c.precision for c in answer.candidates] == ["compound"]
    assert answer.candidates[0].confidence >= CONFIDENT
    assert answer.parsed["building"] == "99"


def test_a_house_number_plate(rows: GazetteerRows, gazetteer: Gazetteer) -> None:
    plates: dict[tuple[str, str], int] = {}
    for plate in rows.house_numbers:
        plates[(plate.road, plate.number)] = plates.get((plate.road, plate.number), 0) + 1
    single = next(p for p in rows.house_numbers if plates[(p.road, p.number)] == 1)
    top = gazetteer.geocode(f"{single.road}{single.number}号门口").candidates[0]
    assert (top.precision, top.code, top.point_kind) == (
        "house_number",
        single.code,
        "house_number",
    )
    assert top.confidence >= CONFIDENT
    annex = next(
        p for p in rows.house_numbers if "-" in p.number and plates[(p.road, p.number)] == 1
    )
    base, extra = annex.number.split("-")
    top = gazetteer.geocode(f"{annex.road}{base}号附{extra}号").candidates[0]
    assert (top.precision, top.code) == ("house_number", annex.code)


def test_an_intersection_samples_a_disc_around_the_crossing(gazetteer: Gazetteer) -> None:
    top = gazetteer.geocode("星海路与翠微街交叉口").candidates[0]
    assert (top.precision, top.point_kind) == ("intersection", "intersection")
    assert "+" in top.code and top.name == "星海路与翠微街交叉口"
    assert len(top.samples_lon) == 19
    far = max(
        distance_m(top.lon, top.lat, x, y)
        for x, y in zip(top.samples_lon, top.samples_lat, strict=True)
    )
    assert far == pytest.approx(30.0, rel=0.02)


def test_a_relative_phrase_moves_the_point(rows: GazetteerRows, gazetteer: Gazetteer) -> None:
    school = next(p for p in rows.pois if p.name == "星海小学")
    answer = gazetteer.geocode("星海小学往东100米有人烧烤")
    top = answer.candidates[0]
    assert answer.relative == {
        "phrase": "往东100米",
        "direction": "east",
        "distance_m": 100.0,
        "effect": "moved",
    }
    assert distance_m(school.lon, school.lat, top.lon, top.lat) == pytest.approx(100.0, rel=0.01)
    assert top.lon > school.lon
    assert answer.complaint == "有人烧烤"


def test_a_road_alone_is_a_stretch(rows: GazetteerRows, gazetteer: Gazetteer) -> None:
    top = gazetteer.geocode("湖东大道").candidates[0]
    road = next(r for r in rows.roads if r.name == "湖东大道")
    assert (top.precision, top.code, top.point_kind) == ("road", road.code, "road_point")
    points = shapely.points(top.samples_lon, top.samples_lat)
    assert len(points) > 20
    assert shapely.dwithin(road.geom, points, 1e-6).all()


def test_place_by_kind_and_code(rows: GazetteerRows, gazetteer: Gazetteer) -> None:
    road_a, road_b = (top := gazetteer.geocode("星海路与翠微街交叉口").candidates[0]).code.split(
        "+"
    )
    for kind, code in (
        ("building", rows.buildings.codes[0]),
        ("compound", rows.compounds[0].code),
        ("road", rows.roads[0].code),
        ("house_number", rows.house_numbers[0].code),
        ("poi", rows.pois[0].code),
        ("community", next(a.code for a in rows.areas if a.level == "community")),
        ("intersection", top.code),
        ("intersection", f"{road_b}+{road_a}"),
    ):
        place = gazetteer.place(kind, code)
        assert place is not None and place.kind == kind and place.confidence == 1.0
        assert place.code in (code, top.code)
    assert gazetteer.place("building", "nope") is None
    assert gazetteer.place("intersection", f"{road_a}+{road_a}") is None
    assert gazetteer.place("volcano", "x") is None


def test_an_alias_wins_with_its_targets_precision(rows: GazetteerRows) -> None:
    market = next(p for p in rows.pois if p.name == "星海菜市场")
    compound = next(c for c in rows.compounds if c.name == "景玉府")
    aliases = [
        AliasRow(normalise_key("老街菜场"), "老街菜场", "poi", market.code),
        AliasRow(normalise_key("府前小区"), "府前小区", "compound", compound.code),
    ]
    gazetteer = Gazetteer.build(dataclasses.replace(rows, aliases=aliases))
    assert gazetteer.counts["alias"] == 2
    answer = gazetteer.geocode("老街菜场门口有人摆摊")
    top = answer.candidates[0]
    assert (top.precision, top.code, top.via_alias) == ("poi", market.code, True)
    assert top.confidence >= CONFIDENT
    assert answer.complaint == "门口有人摆摊"
    # An alias of a compound followed by a building number reaches the building.
    top = gazetteer.geocode("府前9栋").candidates[0]
    assert top.precision == "building" and top.name.endswith("景玉府9幢")


def test_typo_tolerance_stays_below_the_threshold(gazetteer: Gazetteer) -> None:
    for text, name in (("新萃居", "新翠居"), ("锦秀小学", "锦绣小学"), ("泰瑞成14幢", "泰瑞城")):
        top = gazetteer.geocode(text).candidates[0]
        assert name in top.name
        assert top.confidence < CONFIDENT
    # No known word at all: the name the words after a preamble sound like, still a guess.
    answer = gazetteer.geocode("市民反映锦秀小学门口有人摆摊")
    assert answer.candidates[0].name == "锦绣小学"
    assert answer.candidates[0].confidence <= 0.8
    assert (answer.address_text, answer.complaint) == ("锦秀小学", "门口有人摆摊")
    assert answer.parsed == {"guessed": "锦绣小学"}


def _shifted(rows: GazetteerRows, street: str, dx: float) -> GazetteerRows:
    """The demo street's gazetteer copied `dx` degrees east as another street named `street`
    (names repeat across the streets of a district, as in `wangge demo load --streets N`)."""
    b = rows.buildings
    own = next(a.name for a in rows.areas if a.level == "street")
    buildings = r.BuildingRows(
        [f"X{c}" for c in b.codes],
        list(b.names),
        [a.replace(own, street) for a in b.addresses],
        b.lon + dx,
        b.lat.copy(),
    )
    return r.GazetteerRows(
        buildings,
        [
            dataclasses.replace(c, code=f"X{c.code}", geom=affinity.translate(c.geom, dx))
            for c in rows.compounds
        ],
        [
            dataclasses.replace(x, code=f"X{x.code}", geom=affinity.translate(x.geom, dx))
            for x in rows.roads
        ],
        [
            dataclasses.replace(
                h, code=f"X{h.code}", compound_code=f"X{h.compound_code}", lon=h.lon + dx
            )
            for h in rows.house_numbers
        ],
        [dataclasses.replace(p, code=f"X{p.code}", lon=p.lon + dx) for p in rows.pois],
        [],
        [
            dataclasses.replace(
                a,
                code=f"X{a.code}",
                name=street if a.level == "street" else a.name,
                geom=affinity.translate(a.geom, dx),
            )
            for a in rows.areas
        ],
    )


def test_the_street_named_decides_between_namesakes(rows: GazetteerRows) -> None:
    other = _shifted(rows, "金鸡湖街道", 0.05)
    district = Gazetteer.build(
        GazetteerRows(
            dataclasses.replace(
                rows.buildings,
                codes=rows.buildings.codes + other.buildings.codes,
                names=rows.buildings.names + other.buildings.names,
                addresses=rows.buildings.addresses + other.buildings.addresses,
                lon=np.concatenate([rows.buildings.lon, other.buildings.lon]),
                lat=np.concatenate([rows.buildings.lat, other.buildings.lat]),
            ),
            rows.compounds + other.compounds,
            rows.roads + other.roads,
            rows.house_numbers + other.house_numbers,
            rows.pois + other.pois,
            [],
            rows.areas + other.areas,
        )
    )
    assert district.counts["building"] == 2 * 20557 and district.counts["street"] == 2
    here = district.geocode("园区湖东示范街道新翠居4栋").candidates[0]
    there = district.geocode("苏州金鸡湖街道新翠居4栋楼下").candidates[0]
    short = district.geocode("金鸡湖新翠居4栋").candidates[0]
    assert here.name.endswith("湖东示范街道淞江路19号新翠居4幢") and here.confidence >= CONFIDENT
    assert there.code.startswith("X") and there.confidence >= CONFIDENT
    assert short.code == there.code and short.confidence >= CONFIDENT
    # No street: both namesakes offered, neither chosen.
    both = district.geocode("新翠居4栋").candidates
    assert {c.code[0] for c in both[:2]} == {"X", "3"} and both[0].confidence < CONFIDENT
    community = district.geocode("金鸡湖街道翠湖社区").candidates[0]
    assert community.code.startswith("X") and community.confidence >= CONFIDENT


def test_buildings_alone_still_match_by_their_addresses(rows: GazetteerRows) -> None:
    """A register with buildings but no compound/road/plate rows (before any import): the names
    in the addresses are the keys; an empty register answers not_found."""
    bare = Gazetteer.build(GazetteerRows(rows.buildings))
    assert bare.counts["compound"] == bare.counts["road"] == 0
    top = bare.geocode("园区新翠居4栋楼下垃圾堆放").candidates[0]
    assert top.name.endswith("新翠居4幢") and top.confidence >= CONFIDENT
    top = bare.geocode("凤里街103号枫康庭28-1").candidates[0]
    assert top.name.endswith("凤里街103号枫康庭28幢") and top.confidence >= CONFIDENT
    empty = Gazetteer.build(GazetteerRows(r.BuildingRows([], [], [], np.empty(0), np.empty(0))))
    answer = empty.geocode("园区新翠居4栋楼下")
    assert (answer.candidates, answer.reason) == ([], "not_found")
    assert (answer.address_text, answer.complaint) == ("园区新翠居4栋", "楼下")
