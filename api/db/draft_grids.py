"""A draft generation's grid rows: copy-on-write, the neighbourhood of an edit, codes in use.

A draft owns an inactive generation. Editing a grid that the draft still shares with other
generations first gives the draft its own row (copy-on-write), so history and the active
generation are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import shapely
from sqlalchemy import Connection, RowMapping, text

from api.db.filters import in_generation
from api.db.versioning import grid_row
from spatial.grids import GridRow
from spatial.validity import as_multipolygon

_COLUMNS = "code, name, level, kind, parent_code, households, population, attributes, geom"
_IN_DRAFT = in_generation()


def _neighbour_generation(connection: Connection, generation: int, direction: str) -> int | None:
    query = (
        "SELECT max(id) FROM generation WHERE id < :g"
        if direction == "before"
        else "SELECT min(id) FROM generation WHERE id > :g"
    )
    return connection.execute(text(query), {"g": generation}).scalar()


def private_row_id(connection: Connection, generation: int, code: str) -> int | None:
    """The id of a row of `code` that belongs to this generation only (copy-on-write)."""
    row = connection.execute(
        text(
            "SELECT id, generation_low, generation_high FROM grid WHERE code = :c "
            f"AND {_IN_DRAFT} FOR UPDATE"
        ),
        {"c": code, "g": generation},
    ).first()
    if row is None:
        return None
    if row.generation_low == generation == row.generation_high:
        return int(row.id)
    before = _neighbour_generation(connection, generation, "before")
    after = _neighbour_generation(connection, generation, "after")
    if row.generation_low < generation:
        connection.execute(
            text("UPDATE grid SET generation_high = :b WHERE id = :id"), {"b": before, "id": row.id}
        )
        if row.generation_high > generation:
            connection.execute(
                text(
                    f"INSERT INTO grid ({_COLUMNS}, generation_low, generation_high) "
                    f"SELECT {_COLUMNS}, :a, :h FROM grid WHERE id = :id"
                ),
                {"a": after, "h": row.generation_high, "id": row.id},
            )
    else:
        connection.execute(
            text("UPDATE grid SET generation_low = :a WHERE id = :id"), {"a": after, "id": row.id}
        )
    return int(
        connection.execute(
            text(
                f"INSERT INTO grid ({_COLUMNS}, generation_low, generation_high) "
                f"SELECT {_COLUMNS}, :g, :g FROM grid WHERE id = :id RETURNING id"
            ),
            {"g": generation, "id": row.id},
        ).scalar_one()
    )


def grids_around(
    connection: Connection,
    generation: int,
    region: shapely.Geometry | None,
    codes: list[str],
    pad_deg: float,
) -> dict[str, GridRow]:
    """The generation's grids within `pad_deg` of the extent of `region` and of the grids named
    in `codes`, and those grids' children."""
    envelope = shapely.to_wkb(region.envelope if region is not None else shapely.Point())
    rows = connection.execute(
        text(
            "WITH focus AS (SELECT ST_Expand(ST_Extent(shape)::geometry, :pad) AS box FROM ("
            " SELECT ST_GeomFromWKB(:env, 4326) AS shape"
            f" UNION ALL SELECT geom FROM grid WHERE code = ANY(:codes) AND {_IN_DRAFT}) named) "
            "SELECT code, name, level, kind, parent_code, households, population, attributes, "
            f"ST_AsBinary(geom) AS wkb FROM grid, focus WHERE {_IN_DRAFT} "
            "AND (geom && focus.box OR code = ANY(:codes) OR parent_code = ANY(:codes))"
        ),
        {"g": generation, "env": envelope, "pad": pad_deg, "codes": codes},
    ).all()
    return {r.code: grid_row(r) for r in rows}


def write(connection: Connection, generation: int, row: GridRow) -> None:
    """Insert or overwrite the draft's own row for `row.code`."""
    values = {
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "kind": row.kind,
        "parent": row.parent_code,
        "households": row.households,
        "population": row.population,
        "attributes": json.dumps(row.attributes or {}, ensure_ascii=False),
        "wkb": shapely.to_wkb(as_multipolygon(row.geom)),
        "g": generation,
    }
    row_id = private_row_id(connection, generation, row.code)
    if row_id is None:
        connection.execute(
            text(
                f"INSERT INTO grid ({_COLUMNS}, generation_low, generation_high) VALUES (:code, :name, "
                ":level, :kind, :parent, :households, :population, CAST(:attributes AS jsonb), "
                "ST_GeomFromWKB(:wkb, 4326), :g, :g)"
            ),
            values,
        )
    else:
        connection.execute(
            text(
                "UPDATE grid SET name = :name, level = :level, kind = :kind, parent_code = :parent, "
                "households = :households, population = :population, "
                "attributes = CAST(:attributes AS jsonb), geom = ST_GeomFromWKB(:wkb, 4326) WHERE id = :id"
            ),
            {**values, "id": row_id},
        )


def drop(connection: Connection, generation: int, code: str) -> None:
    """Remove `code` from this generation only."""
    row_id = private_row_id(connection, generation, code)
    if row_id is not None:
        connection.execute(text("DELETE FROM grid WHERE id = :id"), {"id": row_id})


def grid_counts(
    connection: Connection, generation: int, codes: list[str], level: str | None
) -> Sequence[RowMapping]:
    """For the grids named in `codes` or of `level`: code, name, level, parent_code, wkb, and the
    households and buildings (by location) and cameras inside, by code."""
    return (
        connection.execute(
            text(
                "SELECT g.code, g.name, g.level, g.parent_code, ST_AsBinary(g.geom) AS wkb, "
                "(SELECT coalesce(sum(b.households), 0) FROM building b WHERE b.geom && g.geom "
                " AND ST_Covers(g.geom, ST_PointOnSurface(b.geom))) AS households, "
                "(SELECT count(*) FROM building b WHERE b.geom && g.geom AND ST_Covers(g.geom, ST_PointOnSurface(b.geom))) AS buildings, "
                "(SELECT count(*) FROM monitoring_point m WHERE m.geom && g.geom AND ST_Covers(g.geom, m.geom)) AS cameras "
                "FROM grid g WHERE (g.code = ANY(:codes) OR g.level = :level) "
                f"AND {in_generation('g')} ORDER BY g.code"
            ),
            {"codes": codes, "level": level, "g": generation},
        )
        .mappings()
        .all()
    )


def child_codes(connection: Connection, generation: int, parent: str | None) -> list[str]:
    """Codes of the generation's grids under `parent` (top-level grids when None)."""
    return list(
        connection.execute(
            text(
                f"SELECT code FROM grid WHERE {_IN_DRAFT} AND parent_code IS NOT DISTINCT FROM :p"
            ),
            {"g": generation, "p": parent},
        ).scalars()
    )


def children_rows(
    connection: Connection, generation: int, parents: list[str]
) -> dict[str, GridRow]:
    """The generation's grids whose parent is one of `parents`."""
    rows = connection.execute(
        text(
            "SELECT code, name, level, kind, parent_code, households, population, attributes, "
            f"ST_AsBinary(geom) AS wkb FROM grid WHERE {_IN_DRAFT} AND parent_code = ANY(:p)"
        ),
        {"g": generation, "p": parents},
    ).all()
    return {r.code: grid_row(r) for r in rows}


def codes_used_under(connection: Connection, prefix: str) -> set[str]:
    """Every code of any generation that starts with `prefix` (a code is never reused)."""
    return set(
        connection.execute(
            text("SELECT DISTINCT code FROM grid WHERE starts_with(code, :p)"), {"p": prefix}
        ).scalars()
    )


def buildings_meeting(connection: Connection, area: shapely.Geometry) -> dict[str, bytes]:
    """WKB footprints, by code, of the buildings that intersect `area`."""
    return {
        code: bytes(wkb)
        for code, wkb in connection.execute(
            text(
                "SELECT code, ST_AsBinary(geom) FROM building WHERE geom && ST_GeomFromWKB(:a, 4326) "
                "AND ST_Intersects(geom, ST_GeomFromWKB(:a, 4326))"
            ),
            {"a": shapely.to_wkb(area)},
        ).all()
    }


def codes_ever_used(connection: Connection) -> set[str]:
    """Every code of any generation (a code is never reused)."""
    return set(connection.execute(text("SELECT DISTINCT code FROM grid")).scalars())


def first_generation_of(connection: Connection, code: str) -> int | None:
    """The first generation that had `code`, or None if it was never used."""
    return connection.execute(
        text("SELECT min(generation_low) FROM grid WHERE code = :c"), {"c": code}
    ).scalar()


def open_draft_of(connection: Connection, generation: int) -> int | None:
    """The open draft that edits `generation`, if any."""
    return connection.execute(
        text("SELECT id FROM draft WHERE generation_id = :g AND status = 'open'"), {"g": generation}
    ).scalar()


def codes_in(connection: Connection, generation: int) -> list[str]:
    return list(
        connection.execute(
            text(f"SELECT code FROM grid WHERE {_IN_DRAFT}"), {"g": generation}
        ).scalars()
    )


def redrawn_codes(connection: Connection, old: int, new: int, same_deg: float) -> list[str]:
    """Codes whose row differs between the generations and whose outline moved > same_deg."""
    return list(
        connection.execute(
            text(
                "SELECT n.code FROM grid n JOIN grid o ON o.code = n.code "
                f"AND {in_generation('o', 'old')} "
                f"WHERE {in_generation('n', 'new')} AND o.id <> n.id "
                "AND ST_HausdorffDistance(o.geom, n.geom) > :same"
            ),
            {"old": old, "new": new, "same": same_deg},
        ).scalars()
    )


def record_lineage(
    connection: Connection, generation: int, lineage: list[tuple[str | None, str | None, str]]
) -> None:
    """Which old code became which new code when `generation` went live; staff responsible
    for a recoded grid follow it to its code in `generation`."""
    for old, new, relation in lineage:
        connection.execute(
            text(
                "INSERT INTO grid_lineage (generation_id, old_code, new_code, relation) "
                "VALUES (:g, :o, :n, :r)"
            ),
            {"g": generation, "o": old, "n": new, "r": relation},
        )
    staff_follow_recodes(connection, generation)


def staff_follow_recodes(connection: Connection, generation: int) -> None:
    """Staff assigned to a code `generation` lacks move along recodes (either way, over any
    number of them) to the code it has: forward on publish, back when an earlier generation is
    re-activated."""
    live = set(codes_in(connection, generation))
    stranded = (
        set(connection.execute(text("SELECT DISTINCT grid_code FROM staff_assignment")).scalars())
        - live
    )
    if not stranded:
        return
    linked: dict[str, set[str]] = {}
    for old, new in connection.execute(
        text("SELECT old_code, new_code FROM grid_lineage WHERE relation = 'recode'")
    ).all():
        linked.setdefault(old, set()).add(new)
        linked.setdefault(new, set()).add(old)
    for code in sorted(stranded & set(linked)):
        seen, frontier = {code}, [code]
        while frontier:
            found = sorted(c for c in frontier if c in live)
            if found:
                follow_recode(connection, code, found[0])
                break
            frontier = sorted({n for c in frontier for n in linked.get(c, ())} - seen)
            seen.update(frontier)


def follow_recode(connection: Connection, old: str, new: str) -> None:
    """Move staff assignments and field staff tokens' grid scopes from `old` to `new`; one the person already has at `new` in the
    same role stays, and its duplicate at `old` goes (unique (staff_id, grid_code, role))."""
    connection.execute(
        text(
            "DELETE FROM staff_assignment a WHERE a.grid_code = :o AND EXISTS (SELECT 1 FROM "
            "staff_assignment b WHERE b.staff_id = a.staff_id AND b.role = a.role AND b.grid_code = :n)"
        ),
        {"o": old, "n": new},
    )
    connection.execute(
        text("UPDATE staff_assignment SET grid_code = :n WHERE grid_code = :o"),
        {"o": old, "n": new},
    )
    # A field staff token scoped to the old code keeps its reach under the new one.
    connection.execute(
        text(
            "UPDATE api_token SET grid_codes = ARRAY(SELECT DISTINCT c FROM "
            "unnest(array_replace(grid_codes, CAST(:o AS varchar), CAST(:n AS varchar))) AS c "
            "ORDER BY c) WHERE CAST(:o AS varchar) = ANY(grid_codes)"
        ),
        {"o": old, "n": new},
    )
