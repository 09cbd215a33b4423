"""The address gazetteer in memory: `Gazetteer.build(rows)` once, then `geocode(text)` per ticket.

Match order (most precise first): alias → building → house number → compound → intersection →
POI → road (a stretch) → community. Each level asks inverted indexes (api/geocode/register.py);
the levels stop at the first that gives a confident answer (≥ CONFIDENT), so a doubtful building
is followed by its house number, its compound… as further candidates. Confidences (see
/README "Address geocoding"): exact and unique ≈ 0.93–0.99; found only through a near-homophone
≈ 0.8; ambiguous (several places fit) ≤ 0.6; a building number the register lacks never matches
another building — the compound answers instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from api.geocode import relative as relative_phrases
from api.geocode.fuzzy import PINYIN_QUALITY, loose_syllables
from api.geocode.levels import PLACE_PARTS, Levels
from api.geocode.parse import Parsed, parse
from api.geocode.places import RANK, GeocodeResult, Hit, PlaceMatch, with_changes
from api.geocode.register import Register, build_register
from api.geocode.rows import GazetteerRows

__all__ = ["CONFIDENT", "Gazetteer", "GeocodeResult", "PlaceMatch"]

MAX_TEXT = 500
CONFIDENT = 0.85
ALIAS = 0.97
_WIDE_LEVELS = 5  # levels from here on (road, community) only answer when nothing finer did
UNKNOWN_AREA = 0.8  # a street or community in the text that the gazetteer does not have
GUESS_CEILING = 0.8
GUESS_WINDOW = 12  # characters a guessed name is looked for in
GUESS_PREAMBLE = 8  # starts tried (words before the name: 市民反映…)  # a name found only by sound or shape, with no known word in the text
_COMPLAINT_LEAD = "的,，。.、:：;； \t\n"


class Gazetteer(Levels):
    def __init__(self, rows: GazetteerRows, register: Register) -> None:
        super().__init__(rows, register)
        self.counts: dict[str, int] = {
            "building": len(rows.buildings.codes),
            "compound": len(rows.compounds),
            "road": len(rows.roads),
            "house_number": len(rows.house_numbers),
            "poi": len(rows.pois),
            "intersection": len(register.intersections),
            "community": sum(1 for a in rows.areas if a.level == "community"),
            "street": sum(1 for a in rows.areas if a.level == "street"),
            "alias": len(rows.aliases),
        }

    @classmethod
    def build(cls, rows: GazetteerRows) -> Gazetteer:
        return cls(rows, build_register(rows))

    # -- the answer ---------------------------------------------------------------------------

    def geocode(self, text: str, *, limit: int = 5) -> GeocodeResult:
        text = text or ""
        if len(text) > MAX_TEXT:
            return GeocodeResult(text, "", "", {}, None, [], "too_long")
        if not text.strip():
            return GeocodeResult(text, "", "", {}, None, [], "empty")
        parsed, mapped = parse(text, self.register.vocabulary)
        hits = self._match(parsed)
        if not hits and not parsed.parts.keys() & PLACE_PARTS:
            hits = self._guess(parsed)
        hits.sort(key=lambda h: (-h.confidence, RANK[h.precision], h.code))
        candidates = [hit.make(hit.confidence) for hit in hits[: max(1, limit)]]
        start = mapped.position(parsed.address_start, len(text))
        end = mapped.position(parsed.address_end, len(text)) if parsed.place_like else start
        address_text = text[start:end].strip()
        complaint = (
            text[end:].lstrip(_COMPLAINT_LEAD).strip() if parsed.place_like else text.strip()
        )
        relative = parsed.relative
        if relative is not None and candidates:
            candidates = [self._moved(c, relative) for c in candidates]
        reason = None
        if not candidates:
            reason = "not_found" if parsed.place_like else "no_place"
        parts = {k: v for k, v in parsed.parts.items()}
        return GeocodeResult(
            query=text,
            address_text=address_text,
            complaint=complaint,
            parsed=parts,
            relative=relative.as_dict() if relative and candidates else None,
            candidates=candidates,
            reason=reason,
        )

    def place(self, kind: str, code: str) -> PlaceMatch | None:
        """The place itself (confidence 1.0), for aliases and dispatchers' corrections."""
        if kind == "intersection":
            return self._intersection_by_code(code, 1.0)
        index = self.register.by_code.get(kind, {}).get(code)
        if index is None:
            return None
        return self._make(kind, index, 1.0)

    # -- levels -------------------------------------------------------------------------------

    def _match(self, parsed: Parsed) -> list[Hit]:
        parts = parsed.parts
        found: dict[tuple[str, str], Hit] = {}

        def add(hits: Iterable[Hit]) -> bool:
            confident = False
            for hit in hits:
                key = (hit.precision, hit.code)
                if key not in found or found[key].confidence < hit.confidence:
                    found[key] = hit
                confident = confident or hit.confidence >= CONFIDENT
            return confident

        alias = parts.get("alias")
        if self._elsewhere(parsed) and not alias:
            parts["outside"] = "".join(parsed.prefix)
            return []
        alias = parts.get("alias")
        if alias and alias in self.register.aliases:
            kind, code = self.register.aliases[alias]
            target = self.place(kind, code)
            if target is not None:
                add([Hit(target.precision, target.code, ALIAS, _as_alias(target))])
                if not _more_precise_than_alias(parts, kind):
                    return list(found.values())
        context = self._context(parts)
        compounds = self._compound_names(parts)
        if alias and self.register.aliases.get(alias, ("", ""))[0] == "compound":
            index = self.register.by_code["compound"].get(self.register.aliases[alias][1])
            if index is not None:  # 府前9栋: the alias names the compound, the number its building
                compounds = [(self.register.compound_keys[index], 1.0)]
        roads = self._road_names(parts)
        state: dict[str, Any] = {"building_missing": False}
        levels: list[Callable[[], list[Hit]]] = [
            lambda: self._buildings(parts, compounds, roads, context, state),
            lambda: self._house_numbers(parts, roads, compounds, context, state),
            lambda: self._compounds(parts, compounds, roads, context, state),
            lambda: self._intersections(parts, roads, context),
            lambda: self._pois(parts, context),
            lambda: self._roads(parts, roads, context),
            lambda: self._communities(parts),
        ]
        for number, level in enumerate(levels):
            if number >= _WIDE_LEVELS and found:
                break  # several fitting places already: a road or community adds nothing
            if add(level()):
                break
        if parsed.unknown_areas and self.rows.areas:  # a 街道/社区 we do not have: doubtful
            parts["unknown_area"] = parsed.unknown_areas[0]
            return [
                h._replace(confidence=round(h.confidence * UNKNOWN_AREA, 3)) for h in found.values()
            ]
        return list(found.values())

    def _elsewhere(self, parsed: Parsed) -> bool:
        """The text names a province, city or county (or a zone where the register names a
        county) that none of the register's own addresses name: not our place."""
        known = self.register.divisions
        return any(rank in known and not codes & known[rank] for rank, codes in parsed.divisions)

    def _guess(self, parsed: Parsed) -> list[Hit]:
        """No known name at all: the compound, POI or road the first words sound or look like
        (never confident: GUESS_CEILING)."""
        start = parsed.prefix_end
        text = parsed.canonical[start : start + GUESS_WINDOW + GUESS_PREAMBLE]
        if len(text) < 2:
            return []
        register, parts = self.register, parsed.parts
        context = self._context(parts)
        syllables = loose_syllables(text)
        best: tuple[float, int, str, list[Hit]] | None = None
        # The name may follow a few words of preamble (市民反映…): try the first few starts.
        for offset in range(min(GUESS_PREAMBLE, len(text) - 1)):
            window, sounds = text[offset : offset + GUESS_WINDOW], syllables[offset:]
            for kind, names in (
                ("compound", register.compound_names),
                ("poi", register.poi_names),
                ("road", register.road_names),
            ):
                for hit in names.lookup(window, limit=2, syllables=sounds) if names else ():
                    if best is not None and hit.quality <= best[0]:
                        continue
                    found = self._guessed(kind, hit.key, hit.quality, context)
                    if found:
                        best = (hit.quality, offset, hit.key, found)
            if best is not None and best[0] >= PINYIN_QUALITY:
                break
        if best is None:
            return []
        _, offset, key, found = best
        parsed.place_like = True
        if offset:
            parsed.address_start = start + offset
        parsed.address_end = start + offset + len(key)
        found_relative = relative_phrases.relative_at(parsed.canonical, parsed.address_end)
        if found_relative:
            parsed.relative, parsed.address_end = found_relative
        parsed.parts["guessed"] = key
        return [m._replace(confidence=min(m.confidence, GUESS_CEILING)) for m in found]

    def _guessed(
        self, kind: str, key: str, quality: float, context: tuple[set[int], set[int]]
    ) -> list[Hit]:
        wanted = {kind: key}
        if kind == "compound":
            state = {"building_missing": False}
            found = self._compounds(wanted, self._compound_names(wanted), [], context, state)
            return [m._replace(confidence=m.confidence * quality) for m in found]
        if kind == "poi":
            return self._pois(wanted, context, quality)
        return self._roads(wanted, [(key, quality)], context)


def _as_alias(target: PlaceMatch) -> Callable[[float], PlaceMatch]:
    return lambda confidence: with_changes(target, confidence=confidence, via_alias=True)


def _more_precise_than_alias(parts: dict[str, str], kind: str) -> bool:
    """An alias for a compound followed by a building number: the building is asked for too."""
    return kind == "compound" and "building" in parts
