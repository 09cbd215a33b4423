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
from typing import Any, NamedTuple

import numpy as np

from api.geocode import relative as relative_phrases
from api.geocode.parse import Parsed, parse
from api.geocode.places import RANK, GeocodeResult, PlaceMatch, place_match
from api.geocode.register import Register, build_register, members
from api.geocode.rows import GazetteerRows
from spatial.gazetteer import samples_along, samples_in_disc, samples_in_polygon

MAX_TEXT = 500
CONFIDENT = 0.85
AMBIGUOUS = 0.6  # each of several places that fit equally
ALIAS = 0.97
NUMBER_AGREES = 0.97  # the compound named at its own house number
NUMBER_DISAGREES = 0.92  # the compound named, at a house number that is another compound's
OUTSIDE_CONTEXT = 0.6  # a place outside the street/community the caller named
INTERSECTION_RADIUS_M = 30.0
_WIDE_LEVELS = 5  # levels from here on (road, community) only answer when nothing finer did
GUESS_CEILING = 0.8  # a name found only by sound or shape, with no known word in the text
_PLACE_PARTS = {
    "road",
    "road_text",
    "number",
    "compound",
    "compound_text",
    "building",
    "poi",
    "alias",
}
_COMPLAINT_LEAD = "的,，。.、:：;； \t\n"


class Gazetteer:
    def __init__(self, rows: GazetteerRows, register: Register) -> None:
        self.rows = rows
        self.register = register
        self._samples: dict[tuple[str, int], np.ndarray] = {}
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
        if not hits and not parsed.parts.keys() & _PLACE_PARTS:
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

    def _match(self, parsed: Parsed) -> list[_Hit]:
        parts = parsed.parts
        found: dict[tuple[str, str], _Hit] = {}

        def add(hits: Iterable[_Hit]) -> bool:
            confident = False
            for hit in hits:
                key = (hit.precision, hit.code)
                if key not in found or found[key].confidence < hit.confidence:
                    found[key] = hit
                confident = confident or hit.confidence >= CONFIDENT
            return confident

        alias = parts.get("alias")
        if alias and alias in self.register.aliases:
            kind, code = self.register.aliases[alias]
            target = self.place(kind, code)
            if target is not None:
                add([_Hit(target.precision, target.code, ALIAS, _as_alias(target))])
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
        levels: list[Callable[[], list[_Hit]]] = [
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
        return list(found.values())

    def _guess(self, parsed: Parsed) -> list[_Hit]:
        """No known name at all: the compound, POI or road the first words sound or look like
        (never confident: GUESS_CEILING)."""
        start = parsed.prefix_end
        text = parsed.canonical[start : start + 12]
        if len(text) < 2:
            return []
        register, parts = self.register, parsed.parts
        context = self._context(parts)
        best: tuple[float, str, list[_Hit]] | None = None
        for kind, names in (
            ("compound", register.compound_names),
            ("poi", register.poi_names),
            ("road", register.road_names),
        ):
            for hit in names.lookup(text, limit=2) if names else ():
                wanted = {kind: hit.key}
                if kind == "compound":
                    state = {"building_missing": False}
                    found = self._compounds(
                        wanted, self._compound_names(wanted), [], context, state
                    )
                    found = [m._replace(confidence=m.confidence * hit.quality) for m in found]
                elif kind == "poi":
                    found = self._pois(wanted, context, hit.quality)
                else:
                    found = self._roads(wanted, [(hit.key, hit.quality)], context)
                if found and (best is None or hit.quality > best[0]):
                    best = (hit.quality, hit.key, found)
        if best is None:
            return []
        parsed.place_like = True
        parsed.address_end = start + len(best[1])
        found_relative = relative_phrases.relative_at(parsed.canonical, parsed.address_end)
        if found_relative:
            parsed.relative, parsed.address_end = found_relative
        parsed.parts["guessed"] = best[1]
        return [m._replace(confidence=min(m.confidence, GUESS_CEILING)) for m in best[2]]

    def _context(self, parts: dict[str, str]) -> tuple[set[int], set[int]]:
        """Street and community indexes named in the prefix (empty: no restriction)."""
        streets: set[int] = set()
        communities: set[int] = set()
        for level, target in (("street", streets), ("community", communities)):
            key = parts.get(level)
            if key:
                target.update(
                    i
                    for i in self.register.areas_by_key.get(key, ())
                    if self.rows.areas[i].level == level
                )
        return streets, communities

    def _within(
        self, kind: str, indexes: Iterable[int], context: tuple[set[int], set[int]]
    ) -> tuple[list[int], float]:
        """The places inside the named street/community, or — when none is — all of them at
        OUTSIDE_CONTEXT of their confidence (a wrong prefix must not hide the place, nor may a
        namesake in another street be answered as if the caller had not named one)."""
        indexes = list(dict.fromkeys(indexes))
        streets, communities = context
        if not (streets or communities) or not indexes:
            return indexes, 1.0
        street_of, community_of = self.register.area_of[kind]
        kept = [
            i
            for i in indexes
            if (not streets or int(street_of[i]) in streets)
            and (not communities or int(community_of[i]) in communities)
        ]
        return (kept, 1.0) if kept else (indexes, OUTSIDE_CONTEXT)

    def _compound_names(self, parts: dict[str, str]) -> list[tuple[str, float]]:
        """Compound keys the caller may mean, with the name each row is known by (an alias or
        a 俗称 reaches the buildings, which carry the name)."""
        name = parts.get("compound")
        typed = parts.get("compound_text")
        if name:
            found = [(name, 1.0)]
        elif not typed:
            return []
        elif (typed, parts.get("building", "")) in self.register.buildings_by_compound:
            found = [(typed, 1.0)]
        else:
            names = self.register.compound_names
            found = [(hit.key, hit.quality) for hit in names.lookup(typed)] if names else []
        expanded = dict(found)
        for key, quality in found:
            for i, variant in self.register.compounds_by_key.get(key, ()):
                own = self.register.compound_keys[i]
                expanded[own] = max(expanded.get(own, 0.0), quality * variant)
        return list(expanded.items())

    def _road_names(self, parts: dict[str, str]) -> list[tuple[str, float]]:
        name = parts.get("road")
        if name:
            return self._own_road_names([(name, 1.0)])
        typed = parts.get("road_text")
        if not typed:
            return []
        roads = self.register.road_names
        found = [(hit.key, hit.quality) for hit in roads.lookup(typed, limit=2)] if roads else []
        return self._own_road_names(found)

    def _own_road_names(self, found: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """With the name each road row is known by (星海街 → 星海路, the name addresses carry)."""
        expanded = dict(found)
        for key, quality in found:
            for i in self.register.roads_by_key.get(key, ()):
                own = self.register.road_keys[i]
                expanded.setdefault(own, quality)
        return list(expanded.items())

    def _buildings(self, parts, compounds, roads, context, state) -> list[_Hit]:
        building = parts.get("building")
        if not building:
            return []
        register = self.register
        number = parts.get("number")
        by_compound: dict[int, float] = {}
        for name, quality in compounds:
            for i in members(register.buildings_by_compound.get((name, building))):
                by_compound[i] = max(by_compound.get(i, 0.0), quality)
        by_house: dict[int, float] = {}
        if number:
            for name, quality in roads:
                for i in members(register.buildings_by_house.get((name, number, building))):
                    by_house[i] = max(by_house.get(i, 0.0), quality)
        if by_compound and by_house:
            both = set(by_compound) & set(by_house)
            if both:
                # Both agree; a misheard road name costs no more than leaving it out.
                scored = {
                    i: max(0.99 * min(by_compound[i], by_house[i]), 0.98 * by_compound[i])
                    for i in both
                }
            else:  # the road and the compound name different buildings: the name wins
                scored = {i: 0.5 for i in by_house}
                scored.update({i: 0.98 * q * NUMBER_DISAGREES for i, q in by_compound.items()})
        elif by_compound:
            # A road or number that disagrees with the building's own address costs.
            scored = {
                i: 0.98 * q * self._house_agreement(i, parts, roads) for i, q in by_compound.items()
            }
        elif by_house:
            penalty = 0.85 if parts.get("compound_text") or parts.get("compound") else 1.0
            scored = {i: 0.96 * q * penalty for i, q in by_house.items()}
        else:
            state["building_missing"] = bool(compounds or (roads and number))
            return []
        kept, factor = self._within("building", scored, context)
        state["building_missing"] = factor < 1.0
        scored = {i: q * factor for i, q in scored.items()}
        return [
            self._hit("building", i, _shared(scored[i], _rivals(kept, scored)))
            for i in _best(kept, scored)
        ]

    def _house_agreement(self, index: int, parts: dict[str, str], roads) -> float:
        house = self.register.building_house[index]
        if house is None or not roads:
            return 1.0
        if house[0] not in {name for name, _ in roads}:
            return 0.8
        number = parts.get("number")
        return 0.75 if number and number != house[1] else 1.0

    def _house_numbers(self, parts, roads, compounds, context, state) -> list[_Hit]:
        number = parts.get("number")
        if not number or not roads or (state["building_missing"] and compounds):
            return []  # a building the register lacks in a named compound: the compound answers
        named = {
            self.rows.compounds[i].code
            for key, _ in compounds
            for i, _ in self.register.compounds_by_key.get(key, ())
        }
        matches: list[_Hit] = []
        for name, quality in roads:
            found = self.register.house_numbers.get((name, number), [])
            factor = 0.9 if state["building_missing"] else 0.95
            if not found and ("-" in number or number[-1] in "甲乙丙丁"):
                base = number.split("-")[0].rstrip("甲乙丙丁")
                found, factor = self.register.house_numbers.get((name, base), []), 0.75
            # 锦绣路123号宁和庄: of the plates numbered 123, the one at 宁和庄's gate.
            of_named = [i for i in found if self.rows.house_numbers[i].compound_code in named]
            if named and found and not of_named:
                state["number_disagrees"] = True  # the plate is another compound's: ask that one
                continue
            if of_named and "building" not in parts:
                state["number_agrees"] = True  # 淞江路19号新翠居: the compound, confirmed
                continue
            found = of_named or found
            kept, outside = self._within("house_number", found, context)
            matches += [
                self._hit("house_number", i, _shared(factor * quality * outside, len(kept)))
                for i in kept[:10]
            ]
        return matches

    def _compounds(self, parts, compounds, roads, context, state) -> list[_Hit]:
        scored: dict[int, float] = {}
        for name, quality in compounds:
            for i, variant in self.register.compounds_by_key.get(name, ()):
                scored[i] = max(scored.get(i, 0.0), 0.95 * quality * variant)
        number = parts.get("number")
        at_house: set[int] = set()
        for name, _ in roads if number else ():
            at_house |= self.register.compounds_at_house.get((name, number), set())
        if scored and at_house and set(scored) & at_house:
            scored = {i: q for i, q in scored.items() if i in at_house}
        elif not scored and at_house:
            scored = {i: 0.9 for i in at_house}
        if state["building_missing"]:
            scored = {i: q * 0.93 for i, q in scored.items()}
        if state.get("number_agrees"):
            scored = {
                i: max(q, NUMBER_AGREES) for i, q in scored.items() if i in at_house
            } or scored
        if state.get("number_disagrees"):
            scored = {i: q * NUMBER_DISAGREES for i, q in scored.items()}
        kept, factor = self._within("compound", scored, context)
        scored = {i: q * factor for i, q in scored.items()}
        return [
            self._hit("compound", i, _shared(scored[i], _rivals(kept, scored)))
            for i in _best(kept, scored)
        ]

    def _intersections(self, parts, roads, context) -> list[_Hit]:
        second = parts.get("road2")
        if not second or not roads:
            return []
        first_roads = self._within_roads(
            [i for name, _ in roads for i in self.register.roads_by_key.get(name, ())], context
        )
        second_roads = self._within_roads(self.register.roads_by_key.get(second, []), context)
        points: list[tuple[int, int, tuple[float, float]]] = []
        for a in first_roads:
            for b in second_roads:
                for point in self.register.intersections.get((min(a, b), max(a, b)), ()):
                    points.append((a, b, point))
        confidence = _shared(0.95 * roads[0][1], len(points))
        return [self._junction_hit(a, b, point, confidence) for a, b, point in points[:10]]

    def _within_roads(self, indexes: list[int], context: tuple[set[int], set[int]]) -> list[int]:
        wanted = context[0] | context[1]
        if not wanted:
            return list(dict.fromkeys(indexes))
        kept = [i for i in dict.fromkeys(indexes) if self.register.road_areas[i] & wanted]
        return kept or list(dict.fromkeys(indexes))

    def _pois(self, parts, context, quality: float = 1.0) -> list[_Hit]:
        name = parts.get("poi")
        if not name:
            return []
        kept, factor = self._within("poi", self.register.pois_by_key.get(name, []), context)
        confidence = _shared(0.93 * quality * factor, len(kept))
        return [self._hit("poi", i, confidence) for i in kept[:10]]

    def _roads(self, parts, roads, context) -> list[_Hit]:
        if not roads:
            return []
        indexes = [i for name, _ in roads for i in self.register.roads_by_key.get(name, ())]
        if parts.get("road2"):  # a crossing the register does not have: either road, doubtfully
            indexes += self.register.roads_by_key.get(parts["road2"], [])
            kept = self._within_roads(indexes, context)
            return [self._hit("road", i, AMBIGUOUS) for i in kept[:10]]
        kept = self._within_roads(indexes, context)
        # A number the register does not know leaves the road, but doubtfully.
        base = 0.7 if parts.get("number") or parts.get("building") else 0.9
        return [self._hit("road", i, _shared(base * roads[0][1], len(kept))) for i in kept[:10]]

    def _communities(self, parts) -> list[_Hit]:
        key = parts.get("community")
        if not key or parts.keys() & _PLACE_PARTS:
            return []
        indexes = [
            i
            for i in self.register.areas_by_key.get(key, ())
            if self.rows.areas[i].level == "community"
        ]
        streets = self._context(parts)[0]
        in_street = [i for i in indexes if int(self.register.area_street[i]) in streets]
        indexes = in_street or indexes
        return [self._hit("community", i, _shared(0.9, len(indexes))) for i in indexes[:10]]

    # -- places -------------------------------------------------------------------------------

    def _make(self, kind: str, index: int, confidence: float) -> PlaceMatch:
        rows = self.rows
        if kind == "building":
            b = rows.buildings
            point = (float(b.lon[index]), float(b.lat[index]))
            return place_match("building", confidence, b.codes[index], b.addresses[index], point)
        if kind == "house_number":
            h = rows.house_numbers[index]
            return place_match(kind, confidence, h.code, f"{h.road}{h.number}号", (h.lon, h.lat))
        if kind == "poi":
            p = rows.pois[index]
            return place_match(kind, confidence, p.code, p.name, (p.lon, p.lat))
        if kind == "compound":
            c = rows.compounds[index]
            samples = self._cached(kind, index, lambda: samples_in_polygon(c.geom))
            inner = self._cached("compound_point", index, lambda: _inner_point(c.geom))
            return place_match(kind, confidence, c.code, c.name, (inner[0], inner[1]), samples)
        if kind == "road":
            r = rows.roads[index]
            samples = self._cached(kind, index, lambda: samples_along(r.geom))
            middle = samples[len(samples) // 2]
            return place_match(kind, confidence, r.code, r.name, (middle[0], middle[1]), samples)
        a = rows.areas[index]
        samples = self._cached("community", index, lambda: samples_in_polygon(a.geom, 96))
        inner = self._cached("community_point", index, lambda: _inner_point(a.geom))
        return place_match("community", confidence, a.code, a.name, (inner[0], inner[1]), samples)

    def _hit(self, kind: str, index: int, confidence: float) -> _Hit:
        """A candidate scored now and made (point, samples) only if it is answered."""
        return _Hit(
            kind,
            self._code(kind, index),
            round(min(max(confidence, 0.0), 1.0), 3),
            lambda c: self._make(kind, index, c),
        )

    def _code(self, kind: str, index: int) -> str:
        rows = self.rows
        if kind == "building":
            return rows.buildings.codes[index]
        places: dict[str, list[Any]] = {
            "house_number": rows.house_numbers,
            "poi": rows.pois,
            "compound": rows.compounds,
            "road": rows.roads,
            "community": rows.areas,
        }
        return str(places[kind][index].code)

    def _junction_hit(self, a: int, b: int, point: tuple[float, float], confidence: float) -> _Hit:
        code = f"{self.rows.roads[a].code}+{self.rows.roads[b].code}"
        return _Hit(
            "intersection",
            code,
            round(confidence, 3),
            lambda c: self._junction(a, b, point, c),
        )

    def _cached(self, kind: str, index: int, make: Callable[[], np.ndarray]) -> np.ndarray:
        key = (kind, index)
        if key not in self._samples:
            self._samples[key] = make()
        return self._samples[key]

    def _junction(
        self, a: int, b: int, point: tuple[float, float], confidence: float
    ) -> PlaceMatch:
        first, second = self.rows.roads[a], self.rows.roads[b]
        name = f"{first.name}与{second.name}交叉口"
        # A crossing lies on the corner of up to four grids: its samples are a small disc.
        samples = samples_in_disc(point[0], point[1], INTERSECTION_RADIUS_M, rings=2)
        code = f"{first.code}+{second.code}"
        return place_match("intersection", confidence, code, name, point, samples)

    def _intersection_by_code(self, code: str, confidence: float) -> PlaceMatch | None:
        first, _, second = code.partition("+")
        roads = self.register.by_code["road"]
        if first not in roads or second not in roads:
            return None
        a, b = roads[first], roads[second]
        points = self.register.intersections.get((min(a, b), max(a, b)))
        return self._junction(a, b, points[0], confidence) if points else None

    def _moved(self, match: PlaceMatch, relative: relative_phrases.Relative) -> PlaceMatch:
        samples = np.column_stack([match.samples_lon, match.samples_lat])
        lon, lat, samples = relative_phrases.apply(relative, match.lon, match.lat, samples)
        return _with(
            match,
            lon=lon,
            lat=lat,
            samples_lon=np.ascontiguousarray(samples[:, 0]),
            samples_lat=np.ascontiguousarray(samples[:, 1]),
        )


def _inner_point(geometry: Any) -> np.ndarray:
    point = geometry.representative_point()
    return np.array([point.x, point.y])


class _Hit(NamedTuple):
    precision: str
    code: str
    confidence: float
    make: Callable[[float], PlaceMatch]


def _as_alias(target: PlaceMatch) -> Callable[[float], PlaceMatch]:
    return lambda confidence: _with(target, confidence=confidence, via_alias=True)


def _shared(confidence: float, places: int) -> float:
    """One place that fits keeps its confidence; each of several fitting places gets a share
    below AMBIGUOUS (the order among them kept)."""
    return confidence if places <= 1 else AMBIGUOUS * confidence


def _rivals(indexes: list[int], scored: dict[int, float]) -> int:
    """How many places fit about as well as the best (a place the caller's text contradicts
    is no rival)."""
    best = max((scored[i] for i in indexes), default=0.0)
    return sum(1 for i in indexes if scored[i] >= best - 0.1)


def _best(indexes: list[int], scored: dict[int, float], limit: int = 10) -> list[int]:
    return sorted(indexes, key=lambda i: -scored[i])[:limit]


def _with(match: PlaceMatch, **changes: Any) -> PlaceMatch:
    values = {**match.__dict__, **changes}
    if "confidence" in changes:
        values["confidence"] = round(float(changes["confidence"]), 3)
    return PlaceMatch(**values)


def _more_precise_than_alias(parts: dict[str, str], kind: str) -> bool:
    """An alias for a compound followed by a building number: the building is asked for too."""
    return kind == "compound" and "building" in parts
