"""The match levels of the gazetteer (api/geocode/index.py asks them in order of precision).

Each level turns the parsed parts into scored candidates (`Hit`s) through the inverted indexes of
api/geocode/register.py. A street or community named in the text restricts every level to places
inside it; a place outside keeps OUTSIDE_CONTEXT of its confidence.
"""

from __future__ import annotations

from collections.abc import Iterable

from api.geocode.places import Hit, PlaceMaker
from api.geocode.register import members

AMBIGUOUS = 0.6  # each of several places that fit about equally
NUMBER_AGREES = 0.97  # the compound named at its own house number
NUMBER_DISAGREES = 0.92  # the compound named, at a house number that is another compound's
OUTSIDE_CONTEXT = 0.6  # a place outside the street/community the caller named
PLACE_PARTS = {
    "road",
    "road_text",
    "number",
    "compound",
    "compound_text",
    "building",
    "poi",
    "alias",
}


class Levels(PlaceMaker):
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

    def _buildings(self, parts, compounds, roads, context, state) -> list[Hit]:
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

    def _house_numbers(self, parts, roads, compounds, context, state) -> list[Hit]:
        number = parts.get("number")
        if not number or not roads or (state["building_missing"] and compounds):
            return []  # a building the register lacks in a named compound: the compound answers
        named = {
            self.rows.compounds[i].code
            for key, _ in compounds
            for i, _ in self.register.compounds_by_key.get(key, ())
        }
        matches: list[Hit] = []
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

    def _compounds(self, parts, compounds, roads, context, state) -> list[Hit]:
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

    def _intersections(self, parts, roads, context) -> list[Hit]:
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

    def _pois(self, parts, context, quality: float = 1.0) -> list[Hit]:
        name = parts.get("poi")
        if not name:
            return []
        kept, factor = self._within("poi", self.register.pois_by_key.get(name, []), context)
        confidence = _shared(0.93 * quality * factor, len(kept))
        return [self._hit("poi", i, confidence) for i in kept[:10]]

    def _roads(self, parts, roads, context) -> list[Hit]:
        if not roads:
            return []
        indexes = [i for name, _ in roads for i in self.register.roads_by_key.get(name, ())]
        if parts.get("road2"):  # a crossing the register does not have: either road, doubtfully
            indexes += self.register.roads_by_key.get(parts["road2"], [])
            kept = self._within_roads(indexes, context)
            return [self._hit("road", i, AMBIGUOUS) for i in kept[:10]]
        kept = self._within_roads(indexes, context)
        # A number the register does not know leaves the road (precision road says the rest),
        # like a building number a compound lacks leaves the compound.
        base = 0.87 if parts.get("number") or parts.get("building") else 0.9
        return [self._hit("road", i, _shared(base * roads[0][1], len(kept))) for i in kept[:10]]

    def _communities(self, parts) -> list[Hit]:
        key = parts.get("community")
        if not key or parts.keys() & PLACE_PARTS:
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
