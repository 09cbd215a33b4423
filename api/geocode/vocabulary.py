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

import ahocorasick
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
_UNKNOWN_AREA = re.compile(r"[^\d路街巷道号幢]{2,6}?(?:街道|镇|乡|社区|村委会)")


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


def _admin_prefixes(text: str) -> dict[int, list[tuple[int, bool]]]:
    """cpca's province/city/county names: start → [(end, is full name)]."""
    found: dict[int, list[tuple[int, bool]]] = {}
    for match in cpca.matcher.iter(text):
        name = match.origin_value
        full = bool(_ADMIN_FULL.search(name)) and len(name) >= 3
        found.setdefault(match.start_index, []).append((match.end_index + 1, full))
    return found


def strip_prefix(text: str, names: Names) -> tuple[int, list[str], dict[str, str]]:
    """Where the administrative prefix of `text` ends, its pieces, and the street/community
    it names (their keys as written)."""
    prefix: list[str] = []
    areas: dict[str, str] = {}
    admin = _admin_prefixes(text)
    position = 0
    while position < len(text):
        name = names.get(position)
        place_end = position + len(name[0]) if name and name[1] & PLACE_KINDS else position
        options: list[tuple[int, bool, str | None]] = []  # (end, needs a known name after, area)
        for end, full in admin.get(position, ()):
            options.append((end, not full, None))
        for zone in ZONE_PREFIXES:
            if text.startswith(zone, position):
                options.append((position + len(zone), False, None))
        if name and name[1] & {"street", "community"}:
            options.append((position + len(name[0]), False, name[0]))
        if name and name[1] & {"street_short", "community_short"}:
            options.append((position + len(name[0]), True, name[0]))
        unknown = _UNKNOWN_AREA.match(text, position)
        if unknown and not name and not any(p in names for p in range(position, unknown.end())):
            options.append((unknown.end(), False, None))
        chosen = None
        for end, conditional, area in sorted(options, key=lambda o: -o[0]):
            if end <= place_end:
                break
            if conditional and not _known_follows(text, end, names, admin):
                continue
            chosen = (end, area)
            break
        if chosen is None:
            break
        prefix.append(text[position : chosen[0]])
        if chosen[1]:
            kinds = names[position][1]
            level = "street" if kinds & {"street", "street_short"} else "community"
            areas[level] = chosen[1]
        position = chosen[0]
    return position, prefix, areas


def _known_follows(text: str, position: int, names: Names, admin: dict) -> bool:
    if position >= len(text):
        return False
    return (
        position in names
        or position in admin
        or any(text.startswith(zone, position) for zone in ZONE_PREFIXES)
        or text[position].isdigit()
    )
