"""The address matcher before the gazetteer (issue 17), kept only as the benchmarks' baseline:
it matches Chinese address strings against the building register.

Normalisation: NFKC (full-width digits and letters → ASCII), no spaces or punctuation, Chinese
numerals before 号/幢/栋/单元/室 → Arabic, 栋/座/号楼 → 幢, and the administrative prefix
(省, 市, 区/县, 街道/镇, 社区) removed. What remains is parsed into road, number, compound,
building, unit and room.

Matching: an exact (road, number, building) or (compound, building) hit scores 1.0;
otherwise rapidfuzz ranks the register and disagreeing numbers are penalised. Below the
threshold nothing is chosen: the caller gets the candidates, never a silent guess.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process
from sqlalchemy import Connection

from api.db.indexes import building_addresses

DEFAULT_THRESHOLD = 0.85
CHUNK = 8192  # normalised addresses per packed string (the fuzzy scan splits one at a time)
_SEPARATOR = "\x00"  # between packed addresses (removed from every address first)
DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_PUNCTUATION = re.compile(r"[\s,，。.、;；:：()（）\[\]【】\"'“”‘’#＃]")
_NUMERAL_BEFORE_UNIT = re.compile(
    r"([零〇一二两三四五六七八九十百]+)(?=(号|幢|栋|单元|室|座|号楼|层))"
)
_PREFIXES = (
    re.compile(r"^[^省]{2,7}省"),
    re.compile(r"^[^市]{2,7}市(?!场)"),
    re.compile(r"^[^区县路街]{2,10}(区|县)"),
    re.compile(r"^[^街路]{2,10}(街道|镇|乡)"),
    re.compile(r"^[^社路街]{2,8}社区"),
)
_ROAD = re.compile(r"^(?P<road>.+?(?:大道|路|街|巷|弄))(?P<number>\d+)号")
_BUILDING = re.compile(r"(\d+)幢")
_UNIT = re.compile(r"(\d+)单元")
_ROOM = re.compile(r"(\d+)室")


def _chinese_number(numeral: str) -> int:
    if numeral.isdigit():
        return int(numeral)
    total, current = 0, 0
    for char in numeral:
        if char == "百":
            total += (current or 1) * 100
            current = 0
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = current * 10 + DIGITS[char] if char in DIGITS else current
    return total + current


def normalise(address: str) -> str:
    text_ = unicodedata.normalize("NFKC", address or "")
    text_ = _PUNCTUATION.sub("", text_)
    text_ = _NUMERAL_BEFORE_UNIT.sub(lambda m: str(_chinese_number(m.group(1))), text_)
    text_ = re.sub(r"(\d+)(?:号楼|栋|座)", r"\1幢", text_)
    for pattern in _PREFIXES:
        text_ = pattern.sub("", text_, count=1)
    return text_


@dataclass(frozen=True)
class AddressParts:
    road: str | None
    number: str | None
    compound: str | None
    building: str | None
    unit: str | None
    room: str | None


def parse(normalised: str) -> AddressParts:
    road = number = compound = None
    rest = normalised
    matched_road = _ROAD.match(normalised)
    if matched_road:
        road, number = matched_road.group("road"), matched_road.group("number")
        rest = normalised[matched_road.end() :]
    building = _BUILDING.search(rest)
    if building:
        compound = rest[: building.start()] or None
    unit, room = _UNIT.search(rest), _ROOM.search(rest)
    return AddressParts(
        road,
        number,
        compound,
        building.group(1) if building else None,
        unit.group(1) if unit else None,
        room.group(1) if room else None,
    )


@dataclass(frozen=True)
class AddressMatch:
    index: int
    confidence: float


class AddressIndex:
    """The building register in memory: codes, addresses, a point inside each building."""

    def __init__(
        self, codes: list[str], addresses: list[str], lon: np.ndarray, lat: np.ndarray
    ) -> None:
        self.codes = codes
        self.addresses = addresses
        self.lon, self.lat = lon, lat
        normalised = [normalise(a).replace(_SEPARATOR, "") for a in addresses]
        self.parts = [parse(n) for n in normalised]
        # Packed: a few long strings, not 10⁵ small ones. A fuzzy scan creates each chunk's
        # strings afresh and drops them, so it never touches (and, in a worker forked by
        # `wangge serve --workers N`, never copies) a page of the shared register.
        self._chunks = [
            _SEPARATOR.join(normalised[i : i + CHUNK]) for i in range(0, len(normalised), CHUNK)
        ]
        self._by_road: dict[tuple[str, str, str], list[int]] = {}
        self._by_compound: dict[tuple[str, str], list[int]] = {}
        for i, p in enumerate(self.parts):
            if p.road and p.number and p.building:
                self._by_road.setdefault((p.road, p.number, p.building), []).append(i)
            if p.compound and p.building:
                self._by_compound.setdefault((p.compound, p.building), []).append(i)

    @classmethod
    def load(cls, connection: Connection) -> AddressIndex:
        rows = building_addresses(connection)
        return cls(
            [r.code for r in rows],
            [r.address for r in rows],
            np.array([r.lon for r in rows], dtype=float),
            np.array([r.lat for r in rows], dtype=float),
        )

    def match(self, address: str, limit: int = 3) -> list[AddressMatch]:
        """The best candidates, highest confidence first (confidence in 0..1)."""
        query = normalise(address)
        if not query or not self.codes:
            return []
        wanted = parse(query)
        by_road: set[int] = set()
        if wanted.road and wanted.number and wanted.building:
            by_road = set(self._by_road.get((wanted.road, wanted.number, wanted.building), ()))
        by_compound: set[int] = set()
        if wanted.compound and wanted.building:
            by_compound = {
                i
                for i in self._by_compound.get((wanted.compound, wanted.building), ())
                # A compound hit must agree with any road and house number the caller gave.
                if (not wanted.road or self.parts[i].road == wanted.road)
                and (not wanted.number or self.parts[i].number == wanted.number)
            }
        exact = by_road & by_compound if (by_road and by_compound) else (by_road or by_compound)
        if len(exact) == 1:
            return [AddressMatch(exact.pop(), 1.0)]
        # Unit and room refine within a building; they must not decide which building it is.
        query = _UNIT.sub("", _ROOM.sub("", query))
        candidates = self._extract(query, max(limit * 5, 15))
        scored = [
            AddressMatch(i, round(self._score(wanted, self.parts[i], score / 100.0), 3))
            for _, score, i in candidates
        ]
        scored.sort(key=lambda m: (-m.confidence, self.codes[m.index]))
        return scored[:limit]

    def _extract(self, query: str, limit: int) -> list[tuple[str, float, int]]:
        """rapidfuzz's extract over the whole register, chunk by chunk: the same answer (best
        score first, ties by register order) as over one list of every normalised address."""
        found: list[tuple[float, int, str]] = []
        for number, chunk in enumerate(self._chunks):
            choices = chunk.split(_SEPARATOR)
            for choice, score, i in process.extract(query, choices, scorer=fuzz.ratio, limit=limit):
                found.append((-score, number * CHUNK + i, choice))
        found.sort()
        return [(choice, -score, i) for score, i, choice in found[:limit]]

    @staticmethod
    def _score(wanted: AddressParts, found: AddressParts, similarity: float) -> float:
        """String similarity, penalised when a number the caller gave disagrees."""
        for given, known, penalty in (
            (wanted.number, found.number, 0.6),
            (wanted.building, found.building, 0.6),
            (wanted.road, found.road, 0.8),
        ):
            if given and known and given != known:
                similarity *= penalty
        return similarity
