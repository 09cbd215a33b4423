"""What the matcher answers: a place with its precision, confidence, point and samples, and
`PlaceMaker`, which makes them from the gazetteer's rows (samples computed once, on demand)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from api.geocode import relative as relative_phrases
from api.geocode.register import Register
from api.geocode.rows import GazetteerRows
from spatial.gazetteer import samples_along, samples_in_disc, samples_in_polygon

PRECISIONS = ("building", "house_number", "compound", "intersection", "poi", "road", "community")
POINT_KINDS = {
    "building": "building_interior",
    "house_number": "house_number",
    "compound": "compound_point",
    "intersection": "intersection",
    "poi": "poi",
    "road": "road_point",
    "community": "community_point",
}
RANK = {precision: rank for rank, precision in enumerate(PRECISIONS)}


@dataclass(frozen=True)
class PlaceMatch:
    precision: str  # building|house_number|compound|intersection|poi|road|community
    confidence: float  # 0..1, rounded to 3
    kind: str
    code: str
    name: str
    lon: float
    lat: float
    point_kind: str
    samples_lon: np.ndarray
    samples_lat: np.ndarray
    via_alias: bool = False


@dataclass(frozen=True)
class GeocodeResult:
    query: str
    address_text: str
    complaint: str
    parsed: dict[str, str]
    relative: dict | None
    candidates: list[PlaceMatch]
    reason: str | None  # when candidates == []: empty|too_long|no_place|not_found


def place_match(
    precision: str,
    confidence: float,
    code: str,
    name: str,
    point: tuple[float, float],
    samples: np.ndarray | None = None,
    *,
    via_alias: bool = False,
) -> PlaceMatch:
    """A PlaceMatch; a point place's samples are its point."""
    if samples is None or len(samples) == 0:
        samples = np.array([point], dtype=float)
    return PlaceMatch(
        precision=precision,
        confidence=round(min(max(confidence, 0.0), 1.0), 3),
        kind=precision,
        code=code,
        name=name,
        lon=float(point[0]),
        lat=float(point[1]),
        point_kind=POINT_KINDS[precision],
        samples_lon=np.ascontiguousarray(samples[:, 0], dtype=float),
        samples_lat=np.ascontiguousarray(samples[:, 1], dtype=float),
        via_alias=via_alias,
    )


class Hit(NamedTuple):
    """A candidate scored now and made (point, samples) only if it is answered."""

    precision: str
    code: str
    confidence: float
    make: Callable[[float], PlaceMatch]


def with_changes(match: PlaceMatch, **changes: Any) -> PlaceMatch:
    values = {**match.__dict__, **changes}
    if "confidence" in changes:
        values["confidence"] = round(float(changes["confidence"]), 3)
    return PlaceMatch(**values)


class PlaceMaker:
    """Points, samples and codes of the gazetteer's places (samples computed once, on demand)."""

    INTERSECTION_RADIUS_M = 30.0  # a crossing touches up to four grids: its samples are a disc

    def __init__(self, rows: GazetteerRows, register: Register) -> None:
        self.rows = rows
        self.register = register
        self._samples: dict[tuple[str, int], np.ndarray] = {}

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

    def _hit(self, kind: str, index: int, confidence: float) -> Hit:
        """A candidate scored now and made (point, samples) only if it is answered."""
        return Hit(
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

    def _junction_hit(self, a: int, b: int, point: tuple[float, float], confidence: float) -> Hit:
        code = f"{self.rows.roads[a].code}+{self.rows.roads[b].code}"
        return Hit(
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
        samples = samples_in_disc(point[0], point[1], self.INTERSECTION_RADIUS_M, rings=2)
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
        return with_changes(
            match,
            lon=lon,
            lat=lat,
            samples_lon=np.ascontiguousarray(samples[:, 0]),
            samples_lat=np.ascontiguousarray(samples[:, 1]),
        )


def _inner_point(geometry: Any) -> np.ndarray:
    point = geometry.representative_point()
    return np.array([point.x, point.y])
