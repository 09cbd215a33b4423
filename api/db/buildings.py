"""Building footprints for draft edits and auto-suggest (buildings are not versioned)."""

from __future__ import annotations

import shapely
from sqlalchemy import Connection, text


def footprints_by_code(connection: Connection, codes: list[str]) -> dict[str, bytes]:
    """WKB footprints of the buildings named in `codes` (unknown codes are left out)."""
    return {
        code: bytes(wkb)
        for code, wkb in connection.execute(
            text("SELECT code, ST_AsBinary(geom) FROM building WHERE code = ANY(:c)"),
            {"c": codes},
        ).all()
    }


def footprints_within(connection: Connection, area: shapely.Geometry) -> list[bytes]:
    """WKB footprints of the buildings whose interior point lies in `area`."""
    return [
        bytes(wkb)
        for wkb in connection.execute(
            text(
                "SELECT ST_AsBinary(geom) FROM building WHERE geom && ST_GeomFromWKB(:a, 4326) "
                "AND ST_Covers(ST_GeomFromWKB(:a, 4326), ST_PointOnSurface(geom))"
            ),
            {"a": shapely.to_wkb(area)},
        ).scalars()
    ]


def households_at(connection: Connection, box: shapely.Geometry) -> list[tuple[bytes, int]]:
    """(WKB interior point, households or 0) of the buildings touching the box."""
    return [
        (bytes(point), int(households))
        for point, households in connection.execute(
            text(
                "SELECT ST_AsBinary(ST_PointOnSurface(geom)), coalesce(households, 0) FROM building "
                "WHERE geom && ST_GeomFromWKB(:env, 4326)"
            ),
            {"env": shapely.to_wkb(box)},
        ).all()
    ]
