"""What the matcher answers: a place with its precision, confidence, point and samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
