"""The gazetteer's names as one automaton, and the administrative prefix of an address.

Prefix pieces, stripped and remembered: province/city/county by **cpca**'s automaton
(`cpca.matcher`, called directly: its DataFrame API costs ten times more) — full names always, a
short form such as 江苏/苏州 only when another prefix or a known name follows (so the compound
金华庭 is not the city 金华 plus 庭); the functional zones of ZONE_PREFIXES; the streets and
communities of the active generation, full (金鸡湖街道, 翠湖社区) or short (金鸡湖, 翠湖 — again
only when a known name follows, so 翠湖庭 stays a compound); an unknown "…街道/镇/乡/社区"
holding no known name.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import ahocorasick

with warnings.catch_warnings():
    # cpca reads its tables through pkg_resources, which warns of its own deprecation on import
    # (pyproject.toml pins setuptools below 81, where it still exists).
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import cpca

PLACE_KINDS = frozenset({"road", "compound", "poi", "alias"})
Names = dict[int, tuple[str, frozenset[str]]]  # start → (the longest name there, its kinds)
ZONE_PREFIXES = (
    "苏州工业园区",
    "工业园区",
    "高新技术产业开发区",
    "经济技术开发区",
    "经济开发区",
    "高新区",
    "经开区",
    "开发区",
    "保税区",
    "新区",
    "园区",
)
_ADMIN_FULL = re.compile(r"(省|市|区|县|旗|自治州|盟|地区)$")
_UNKNOWN_AREA = re.compile(
    r"(?:[^\d路号幢]{2,6}?街道|[^\d路街巷道号幢]{2,6}?(?:镇|乡|社区|村委会))"
)


class Vocabulary:
    """The gazetteer's names as one automaton: canonical key → kinds (road, compound, poi,
    street, community, street_short, community_short, alias)."""

    def __init__(self) -> None:
        self._kinds: dict[str, set[str]] = {}
        self._automaton: ahocorasick.Automaton | None = None

    def add(self, key: str, kind: str) -> None:
        if len(key) >= 2:
            self._kinds.setdefault(key, set()).add(kind)

    def kinds(self, key: str) -> frozenset[str]:
        return frozenset(self._kinds.get(key, ()))

    def finish(self) -> Vocabulary:
        automaton = ahocorasick.Automaton()
        for key, kinds in self._kinds.items():
            automaton.add_word(key, (key, frozenset(kinds)))
        if self._kinds:
            automaton.make_automaton()
        self._automaton = automaton
        return self

    def longest_at(self, text: str) -> Names:
        """For each start position, the longest name starting there."""
        found: Names = {}
        if self._automaton is None or not self._kinds:
            return found
        for end, (key, kinds) in self._automaton.iter(text):
            start = end - len(key) + 1
            if start not in found or len(found[start][0]) < len(key):
                found[start] = (key, kinds)
        return found


# (rank, adcodes): 0 province, 1 city, 2 county; a name several counties share has several codes.
Division = tuple[int, frozenset[str]]
ZONE_RANK = 2  # a functional zone (苏州工业园区, 园区) stands where a county would
ZONE = "zone"


def _admin_prefixes(text: str) -> dict[int, list[tuple[int, bool, Division]]]:
    """cpca's province/city/county names: start → [(end, is full name, division)]."""
    found: dict[int, list[tuple[int, bool, Division]]] = {}
    for match in cpca.matcher.iter(text):
        name = match.origin_value
        full = bool(_ADMIN_FULL.search(name)) and len(name) >= 3
        division = (match.get_rank(), frozenset(a.adcode for a in match.attr_infos))
        found.setdefault(match.start_index, []).append((match.end_index + 1, full, division))
    return found


@dataclass
class Prefix:
    end: int = 0  # where the prefix ends in the canonical text
    pieces: list[str] = field(default_factory=list)
    areas: dict[str, str] = field(default_factory=dict)  # street / community → key as written
    divisions: list[Division] = field(default_factory=list)  # cpca's, and ZONE for a zone
    unknown_areas: list[str] = field(default_factory=list)  # …街道/社区 the gazetteer lacks


def strip_prefix(text: str, names: Names) -> Prefix:
    """The administrative prefix of `text`: where it ends, its pieces, the divisions, streets and
    communities it names."""
    prefix = Prefix()
    admin = _admin_prefixes(text)
    position = 0
    while position < len(text):
        name = names.get(position)
        place_end = position + len(name[0]) if name and name[1] & PLACE_KINDS else position
        # (end, needs a known name after, what: division | area key | "?" unknown area)
        options: list[tuple[int, bool, Division | str]] = []
        for end, full, division in admin.get(position, ()):
            options.append((end, not full, division))
        for zone in ZONE_PREFIXES:
            if text.startswith(zone, position):
                options.append((position + len(zone), False, (ZONE_RANK, frozenset([ZONE]))))
        if name and name[1] & {"street", "community"}:
            options.append((position + len(name[0]), False, name[0]))
        if name and name[1] & {"street_short", "community_short"}:
            options.append((position + len(name[0]), True, name[0]))
        unknown = _UNKNOWN_AREA.match(text, position)
        if unknown and not name and not any(p in names for p in range(position, unknown.end())):
            options.append((unknown.end(), False, "?"))
        chosen: tuple[int, Division | str] | None = None
        for end, conditional, what in sorted(options, key=lambda o: -o[0]):
            if end <= place_end:
                break
            if conditional and not _known_follows(text, end, names, admin):
                continue
            chosen = (end, what)
            break
        if chosen is None:
            break
        end, what = chosen
        prefix.pieces.append(text[position:end])
        if isinstance(what, tuple):
            prefix.divisions.append(what)
        elif what == "?":
            prefix.unknown_areas.append(text[position:end])
        else:
            kinds = names[position][1]
            level = "street" if kinds & {"street", "street_short"} else "community"
            prefix.areas[level] = what
        position = end
    prefix.end = position
    return prefix


def _known_follows(text: str, position: int, names: Names, admin: dict) -> bool:
    if position >= len(text):
        return False
    return (
        position in names
        or position in admin
        or any(text.startswith(zone, position) for zone in ZONE_PREFIXES)
        or text[position].isdigit()
    )
