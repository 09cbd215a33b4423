"""Split a caller's text into the address parts and the complaint that follows them.

The canonical text (api/geocode/normalise.py) is read left to right against a vocabulary of the
gazetteer's own names (one Aho-Corasick automaton: roads, compounds, POIs, streets, communities,
aliases; leftmost-longest wins):

1. The administrative prefix, stripped and remembered (api/geocode/vocabulary.py: cpca for
   province/city/county, functional zones, the streets and communities of the active generation).
2. Places: road + house number ("淞江路19号", "19-1号", "19甲号", "19弄", "淞江路19"), two roads
   joined by 与/和/跟/同/、/近 and/or followed by 交叉口/路口/交汇处 (an intersection), a compound
   (+ 小区/花园/新村 and its parts 东区/二期), a POI, an alias.
3. Building parts: "4幢" (any marker), after a compound "28号" (building 28) and "28-1" / "28-1-501"
   (building-unit-room), "4-402" (building-room), "3单元", "501室", "5层", "4幢501", "4幢2-501".
4. A relative phrase (api/geocode/relative.py) after the place.
5. The first character that fits none of these ends the address; the rest is the complaint. Text
   before the first place ("我家在…", "投诉：…") is skipped; an unknown name directly before a
   building or house number is kept as `compound_text` / `road_text` for typo tolerance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from api.geocode.normalise import Mapped, canonical_mapped
from api.geocode.relative import Relative, relative_at
from api.geocode.vocabulary import PLACE_KINDS, Division, Names, Vocabulary, strip_prefix

COMPOUND_SUFFIXES = ("花园", "家园", "公寓")  # a name's stem without one is also a key
_FOLLOWING_SUFFIXES = ("花园", "家园", "公寓", "新村", "社区", "苑区")  # consumed after a name
_HOUSE = re.compile(r"(\d+)(-\d+|[甲乙丙丁])?号")
_LANE = re.compile(r"(\d+)弄")
# 淞江路19 (no 号) at the end of the address: a house number, unless a marker follows.
_BARE_HOUSE = re.compile(r"(\d{1,5})(-\d{1,3}|[甲乙丙丁])?(?![\d号幢单元室层楼米弄-])")
_CONNECT = re.compile(r"(?:与|和|跟|同|及|、|交|-|靠近|临近|接近|近)")
_JUNCTION = re.compile(
    r"的?(?:交叉路口|交叉口|十字路口|丁字路口|路口|交汇处|交汇口|交界处|交界|交口|口)"
)
_BUILDING = re.compile(r"(\d+[A-Z]?|[A-Z])幢")
_BUILDING_NUMBER = re.compile(r"(\d+[A-Z]?)号(?!楼)")
_BUILDING_UNIT = re.compile(r"(\d+)-(\d+)(?:-(\d+))?(?![\d号])")
_UNIT = re.compile(r"(\d+)单元")
_UNIT_ROOM = re.compile(r"(\d{1,2})-(\d{3,4})(?!\d)")
_FLOOR = re.compile(r"(\d+)(?:层|楼)")
_ROOM = re.compile(r"-?(\d+)室?")
# After a compound name: 小区-like suffixes, and its parts (东区, 二期, A区) which do not change
# the buildings' numbers in the register.
_SUFFIX = re.compile(
    "(?:"
    + "|".join(_FOLLOWING_SUFFIXES)
    + ")?(?:[东南西北中][区苑]|[A-Z]区|(?:\\d{1,2}|[一二三四五六七八九十]{1,2})期)?"
)
_PLACE_MARK = re.compile(r"(?<![\d-])\d+(?:-\d+)?(?:号|幢|单元|室|弄)|.(?:大道|路|街|巷)\d")
_ROAD_SUFFIX = re.compile(r".{1,6}?(?:大道|路|街|巷|弄|道)$")
LEADING_ZEROS = re.compile(r"^0+(?=\d)")
_SKIP_BEFORE_PLACE = 30  # characters of preamble tolerated before the first place


@dataclass
class Parsed:
    canonical: str
    parts: dict[str, str] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)
    divisions: list[Division] = field(default_factory=list)  # province/city/county named, zones
    unknown_areas: list[str] = field(default_factory=list)  # a 街道/社区 the gazetteer lacks
    address_start: int = 0  # canonical index where the address begins (after any preamble)
    prefix_end: int = 0  # canonical index where the administrative prefix ends
    address_end: int = 0  # canonical index where the complaint begins
    relative: Relative | None = None
    place_like: bool = False  # a name, number or marker that looks like an address was seen


def parse(text: str, vocabulary: Vocabulary) -> tuple[Parsed, Mapped]:
    """The parts of `text` (see the module docstring) and its canonical form with the map."""
    mapped = canonical_mapped(text)
    return parse_canonical(mapped.text, vocabulary), mapped


def parse_canonical(text: str, vocabulary: Vocabulary) -> Parsed:
    parsed = Parsed(text)
    names = vocabulary.longest_at(text)
    prefix = strip_prefix(text, names)
    position, parsed.prefix, parsed.divisions = prefix.end, prefix.pieces, prefix.divisions
    parsed.unknown_areas = prefix.unknown_areas
    parts = parsed.parts
    parts.update(prefix.areas)
    parsed.prefix_end = position
    parsed.place_like = bool(parts.get("street") or parts.get("community"))
    started = False
    unknown_from: int | None = None
    after = ""  # what the last part was: road, number, compound, building, poi, place
    area_start, area_end = 0, parsed.prefix_end
    while position < len(text):
        name = names.get(position)
        kinds = name[1] & PLACE_KINDS if name else frozenset()
        if not started and name and not kinds and name[1] & {"street", "community"}:
            # "市民反映星港社区…": an area after a preamble (a place may still follow).
            level = "community" if "community" in name[1] else "street"
            parts.setdefault(level, name[0])
            if unknown_from is not None and area_end == parsed.prefix_end:
                area_start = parsed.address_start = position
            position = area_end = position + len(name[0])
            parsed.place_like, unknown_from = True, None
            continue
        if kinds:
            key = name[0]  # type: ignore[index]
            if unknown_from is not None and not started:
                parsed.address_start = position
            unknown_from = None
            end = position + len(key)
            if "alias" in kinds and "alias" not in parts:
                parts["alias"] = key
            if "road" in kinds and "road" not in parts:
                parts["road"] = key
                position, after = _after_road(text, end, names, parts)
            elif "road" in kinds and "road2" not in parts and after in ("road", "number"):
                parts["road2"] = key
                junction = _JUNCTION.match(text, end)
                position, after = (junction.end() if junction else end), "intersection"
            elif "compound" in kinds and "compound" not in parts:
                suffix = _SUFFIX.match(text, end)
                suffix = suffix if suffix and suffix.end() > end else None
                longer = None if suffix else _misspelt_longer(text, position, end)
                if longer is not None:  # 泰瑞成14幢: not the name 泰瑞 but a typo of 泰瑞城
                    parts["compound_text"] = text[position:longer]
                    position, after = longer, "compound"
                else:
                    parts["compound"] = key
                    position, after = (suffix.end() if suffix else end), "compound"
            elif "poi" in kinds and "poi" not in parts:
                parts["poi"] = key
                position, after = end, "poi"
            elif "alias" in kinds:
                position, after = end, "alias"
            else:
                break
            started = parsed.place_like = True
            continue
        moved = _building_parts(text, position, parts, after)
        if moved is not None:
            if not started and unknown_from is not None:
                _keep_unknown(text[unknown_from:position], parts, "compound_text")
                parsed.address_start = unknown_from if unknown_from > parsed.prefix_end else 0
            position, after, started, unknown_from = moved, "building", True, None
            parsed.place_like = True
            continue
        if not started or after in ("", "unknown"):
            house = _HOUSE.match(text, position) if unknown_from is not None else None
            if (
                house
                and unknown_from is not None
                and _ROAD_SUFFIX.match(text[unknown_from:position])
            ):
                _keep_unknown(text[unknown_from:position], parts, "road_text")
                parsed.address_start = unknown_from if unknown_from > parsed.prefix_end else 0
                parts["number"] = house.group(1) + (house.group(2) or "")
                position, after, started, unknown_from = house.end(), "number", True, None
                parsed.place_like = True
                continue
        if started and "compound" not in parts and "compound_text" not in parts:
            name_end = _unknown_name_before_building(text, position, names)
            if name_end is not None:
                parts["compound_text"] = text[position:name_end]
                position, after = name_end, "compound"
                continue
        if started:
            found = relative_at(text, position)
            if found:
                parsed.relative, position = found
            break
        if unknown_from is None:
            unknown_from = position
        if position - unknown_from >= _SKIP_BEFORE_PLACE:
            break
        position += 1
    if not started:
        # A number with 号/幢… or a road-like word: an address we do not know, not no place.
        parsed.place_like = parsed.place_like or bool(_PLACE_MARK.search(text, parsed.prefix_end))
        parsed.address_start, parsed.address_end = area_start, area_end
        if parts.get("street") or parts.get("community"):
            found = relative_at(text, parsed.address_end)
            if found:
                parsed.relative, parsed.address_end = found
        return parsed
    parsed.address_end = position
    _drop_leading_zeros(parts)
    return parsed


def _drop_leading_zeros(parts: dict[str, str]) -> None:
    """04栋 is 4幢, 019号 is 19号."""
    for key in ("number", "building", "unit", "lane"):
        if key in parts:
            parts[key] = LEADING_ZEROS.sub("", parts[key])


def _unknown_name_before_building(text: str, position: int, names: Names) -> int | None:
    """Where an unknown name (no digits, no known name inside) that a building number follows
    ends: 淞江路19号新萃居4幢 → the end of 新萃居."""
    for end in range(position + 2, min(len(text), position + 13)):
        if text[end - 1].isdigit() or (end - 1 > position and end - 1 in names):
            return None
        if text[end].isdigit() or _BUILDING.match(text, end):
            if (
                _BUILDING.match(text, end)
                or _BUILDING_UNIT.match(text, end)
                or _BUILDING_NUMBER.match(text, end)
            ):
                return end
            return None
    return None


def _dashed(found: re.Match[str], parts: dict[str, str]) -> int:
    """28-1 (building-unit), 28-1-501 (building-unit-room), 4-402 (building-room: three or
    more digits after the dash are a room)."""
    parts["building"] = found.group(1)
    if found.group(3):
        parts["unit"], parts["room"] = found.group(2), found.group(3)
    elif len(found.group(2)) >= 3:
        parts["room"] = found.group(2)
    else:
        parts["unit"] = found.group(2)
    return found.end()


def _misspelt_longer(text: str, start: int, end: int) -> int | None:
    """Where a name continues past a known shorter one: one or two more characters (no digit,
    no marker) right before a building number mean the caller wrote a longer name."""
    for extra in (1, 2):
        stop = end + extra
        if stop >= len(text) or not _is_name_char(text[stop - 1]):
            return None
        if text[stop].isdigit() and (
            _BUILDING.match(text, stop)
            or _BUILDING_UNIT.match(text, stop)
            or _BUILDING_NUMBER.match(text, stop)
        ):
            return stop
    return None


def _is_name_char(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" and char not in "号幢栋座楼单元室层弄的东南西北对附近旁"


def _keep_unknown(segment: str, parts: dict[str, str], key: str) -> None:
    if 2 <= len(segment) <= 12:
        parts[key] = segment


def _after_road(text: str, position: int, names: Names, parts: dict[str, str]) -> tuple[int, str]:
    """House number, lane or a second road (an intersection) after a road name."""
    house = _HOUSE.match(text, position)
    if house:
        parts["number"] = house.group(1) + (house.group(2) or "")
        return house.end(), "number"
    bare = _BARE_HOUSE.match(text, position)
    if bare:
        parts["number"] = bare.group(1) + (bare.group(2) or "")
        return bare.end(), "number"
    lane = _LANE.match(text, position)
    if lane:
        parts["number"] = lane.group(1)
        parts["lane"] = lane.group(1)
        inner = _HOUSE.match(text, lane.end())
        if inner:  # 淞江路19弄3号: the lane is the entrance, its 号 the building
            parts["building"] = inner.group(1)
            return inner.end(), "building"
        return lane.end(), "number"
    connect = _CONNECT.match(text, position)
    second = connect.end() if connect else position
    name = names.get(second)
    if name and "road" in name[1] and name[0] != parts.get("road"):
        parts["road2"] = name[0]
        end = second + len(name[0])
        junction = _JUNCTION.match(text, end)
        return (junction.end() if junction else end), "intersection"
    junction = _JUNCTION.match(text, position)
    if junction and junction.group(0) not in ("口",):
        return junction.end(), "road"
    return position, "road"


def _building_parts(text: str, position: int, parts: dict[str, str], after: str) -> int | None:
    """Building, unit, floor and room from `position`; where they end, or None."""
    start = position
    if "building" not in parts:
        building = _BUILDING.match(text, position)
        if building:
            parts["building"] = building.group(1)
            position = building.end()
        elif after == "compound":
            unit_form = _BUILDING_UNIT.match(text, position)
            numbered = _BUILDING_NUMBER.match(text, position)
            if unit_form:
                return _dashed(unit_form, parts)
            if numbered:
                parts["building"] = numbered.group(1)
                position = numbered.end()
        elif after == "number":
            unit_form = _BUILDING_UNIT.match(text, position)
            if unit_form:
                return _dashed(unit_form, parts)
    if position == start and after not in ("building", "compound", "number"):
        return None
    dashed = (
        _UNIT_ROOM.match(text, position) if "building" in parts and "unit" not in parts else None
    )
    if dashed:  # 4幢2-501: unit 2, room 501
        parts["unit"], parts["room"] = dashed.group(1), dashed.group(2)
        return dashed.end()
    for pattern, key in ((_UNIT, "unit"), (_FLOOR, "floor")):
        found = pattern.match(text, position)
        if found and key not in parts:
            parts[key] = found.group(1)
            position = found.end()
    if "building" in parts:
        room = _ROOM.match(text, position)
        if room and len(room.group(1)) >= 3 and "room" not in parts:
            parts["room"] = room.group(1)
            position = room.end()
    return position if position > start else None
