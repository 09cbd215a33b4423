"""The shape of a coverage report: finding kinds, inputs, options, and one finding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

ERROR_KINDS = (
    "invalid_geometries",
    "overlaps",
    "gaps",
    "invalid_edges",
    "outside_parent",
    "orphan_grids",
    "orphan_buildings",
    "split_buildings",
    "code_rule",
)
WARNING_KINDS = ("households_out_of_band", "missing_roles", "no_camera")


@dataclass
class GridSet:
    codes: list[str]
    names: list[str]
    levels: list[str]
    parents: list[str | None]
    geometries: np.ndarray  # WGS84
    households: list[int | None]


@dataclass
class Cameras:
    codes: list[str]
    points: np.ndarray  # WGS84
    heading_deg: np.ndarray
    fov_deg: np.ndarray
    range_m: np.ndarray


@dataclass
class CheckOptions:
    level: str | None = None  # only families whose children are at this level
    gap_width_m: float = 0.2
    min_gap_area_m2: float = 1.0
    min_overlap_area_m2: float = 0.01
    min_outside_area_m2: float = 0.01
    min_split_share: float = 0.01
    # Edges closer than this but not identical are unmatched (a vertex a hair off its neighbour's
    # edge after a CRS conversion is still a T-junction).
    edge_tolerance_m: float = 0.01
    allowed_gaps: list[shapely.Geometry] = field(default_factory=list)  # WGS84 enclaves
    # The known outer boundary (WGS84) the roots must partition, e.g. the district's outline.
    outline: shapely.Geometry | None = None
    households_band: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    required_roles: dict[str, list[str]] = field(default_factory=dict)  # level → role labels
    roles_present: dict[str, set[str]] = field(default_factory=dict)  # code → role labels
    camera_level: str = "grid"
    # code → why it breaks its level's code rule (decided by api/codes.py, one finding each)
    code_problems: dict[str, str] = field(default_factory=dict)


def finding(geometry: shapely.Geometry | None, message: str, **values: Any) -> dict[str, Any]:
    return {**values, "message": message, "geometry": geometry}


def rounded(value: float) -> float:
    return round(float(value), 2)
