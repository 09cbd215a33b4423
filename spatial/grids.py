"""A grid held in memory: its columns and geometry, as drafts, imports and versioning see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import shapely

# A grid's columns besides its code and geometry.
GRID_ATTRIBUTES = ("name", "level", "kind", "parent_code", "households", "population", "attributes")
# Geometries closer than this (degrees, ~0.1 mm) are the same drawing: a KML or GeoJSON round
# trip prints 15 significant digits, which must not count as a redraw.
SAME_GEOMETRY_DEG = 1e-9


@dataclass
class GridRow:
    code: str
    name: str
    level: str
    kind: str = "other"
    parent_code: str | None = None
    households: int | None = None
    population: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    geom: Any = None

    def same_as(self, other: GridRow) -> bool:
        return all(getattr(self, f) == getattr(other, f) for f in GRID_ATTRIBUTES) and bool(
            shapely.equals_exact(self.geom, other.geom, tolerance=SAME_GEOMETRY_DEG)
        )
