"""Shared pieces of read queries: bounding boxes and paging. Every value is bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BBox:
    """A WGS84 bounding box (min lon, min lat, max lon, max lat)."""

    minx: float
    miny: float
    maxx: float
    maxy: float

    def clause(self, column: str) -> tuple[str, dict[str, Any]]:
        # && uses the GiST index; ST_Intersects then drops box-only hits.
        envelope = "ST_MakeEnvelope(:bbox_minx, :bbox_miny, :bbox_maxx, :bbox_maxy, 4326)"
        return (
            f"{column} && {envelope} AND ST_Intersects({column}, {envelope})",
            {
                "bbox_minx": self.minx,
                "bbox_miny": self.miny,
                "bbox_maxx": self.maxx,
                "bbox_maxy": self.maxy,
            },
        )


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int = 0


def where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def in_generation(alias: str = "", param: str = "g") -> str:
    """The condition "this grid row belongs to generation :param".

    A row serves the generations generation_low..generation_high. `alias` and `param` are
    constants written in code, never values from a request.
    """
    if not (alias == "" or alias.isidentifier()) or not param.isidentifier():
        raise ValueError(f"not an SQL identifier: {alias!r}, {param!r}")
    prefix = f"{alias}." if alias else ""
    return f"{prefix}generation_low <= :{param} AND {prefix}generation_high >= :{param}"
