"""Relative phrases after a place: "东侧", "北门", "对面", "附近50米", "往东100米".

A direction with a distance ("东侧50米", "往东100米") moves the point and the samples that far; a
direction alone ("东侧绿化带", "北门") is where the complaint is on that side of the place, so the
samples widen by SIDE_M towards it (the point stays). "对面" (across the road, side unknown),
"附近/周边" and "旁边/隔壁" widen into a disc of the distance given, else the defaults below.
The answer says which (`effect`: moved | widened).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from spatial.gazetteer import move, samples_in_disc, shift

DEFAULT_MOVE_M = 40.0  # 往东 without a distance
SIDE_M = 20.0  # 东侧 / 北门: the side of the place
DEFAULT_OPPOSITE_M = 60.0
DEFAULT_NEAR_M = 100.0
MAX_DISTANCE_M = 2000.0
BEARINGS = {
    "东": ("east", 90.0),
    "南": ("south", 180.0),
    "西": ("west", 270.0),
    "北": ("north", 0.0),
    "东南": ("southeast", 135.0),
    "东北": ("northeast", 45.0),
    "西南": ("southwest", 225.0),
    "西北": ("northwest", 315.0),
}
_DISTANCE = r"(?:约|大约|大概)?(?P<distance>\d{1,4})(?:米|M)(?:处|左右|远)?"
_DIRECTION = re.compile(
    r"(?:往|向|朝)?(?P<dir>东南|东北|西南|西北|东|南|西|北)"
    r"(?:侧|边|面|方向|方|门|首|头|角)+(?:的)?(?:" + _DISTANCE + r")?"
    r"|(?:往|向|朝)(?P<dir2>东南|东北|西南|西北|东|南|西|北)(?:"
    + _DISTANCE.replace("distance", "d2")
    + ")"
)
_OPPOSITE = re.compile(r"(?:马路|路)?(?:对面|对过)(?:" + _DISTANCE + r")?")
_NEAR = re.compile(r"(?:附近|周边|周围|一带|不远处)(?:" + _DISTANCE + r")?")
_BESIDE = re.compile(r"(?:旁边|边上|隔壁)(?:" + _DISTANCE + r")?")


@dataclass(frozen=True)
class Relative:
    phrase: str
    direction: str  # east|…|northwest|opposite|near
    distance_m: float
    effect: str  # moved | widened
    bearing_deg: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "phrase": self.phrase,
            "direction": self.direction,
            "distance_m": self.distance_m,
            "effect": self.effect,
        }


def _distance(match: re.Match[str], default: float, *groups: str) -> float:
    for group in groups:
        value = match.groupdict().get(group)
        if value:
            return min(float(value), MAX_DISTANCE_M)
    return default


def relative_at(text: str, position: int) -> tuple[Relative, int] | None:
    """The relative phrase starting at `position` of the canonical text and where it ends."""
    match = _DIRECTION.match(text, position)
    if match:
        word = match.group("dir") or match.group("dir2")
        direction, bearing = BEARINGS[word]
        towards = match.group(0)[0] in "往向朝"
        if match.group("distance") or towards:
            metres = _distance(match, DEFAULT_MOVE_M, "distance", "d2")
            return Relative(match.group(0), direction, metres, "moved", bearing), match.end()
        return Relative(match.group(0), direction, SIDE_M, "widened", bearing), match.end()
    match = _OPPOSITE.match(text, position)
    if match:
        metres = _distance(match, DEFAULT_OPPOSITE_M, "distance")
        return Relative(match.group(0), "opposite", metres, "widened"), match.end()
    for pattern, default in ((_NEAR, DEFAULT_NEAR_M), (_BESIDE, SIDE_M)):
        match = pattern.match(text, position)
        if match:
            metres = _distance(match, default, "distance")
            return Relative(match.group(0), "near", metres, "widened"), match.end()
    return None


def apply(
    relative: Relative, lon: float, lat: float, samples: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """The point and samples after the phrase: moved by bearing and distance, widened towards a
    side, or widened into a disc around the point (the place's own samples kept)."""
    if relative.bearing_deg is not None:
        new_lon, new_lat = move(lon, lat, relative.bearing_deg, relative.distance_m)
        moved = shift(samples, lon, lat, new_lon, new_lat)
        if relative.effect == "moved":
            return new_lon, new_lat, moved
        return lon, lat, np.vstack([samples, moved])
    disc = samples_in_disc(lon, lat, relative.distance_m)
    return lon, lat, np.vstack([samples, disc]) if len(samples) else disc
