"""Drafts: a planner's working copy of the active generation, edited copy-on-write, then published.

A draft owns an inactive generation. Editing a grid that the draft still shares with other
generations first gives the draft its own row (copy-on-write), so history and the active
generation are never touched. Every edit carries the draft's version: a stale version gets 409
(a colleague saved first) and nothing is overwritten. Publishing runs the coverage check,
activates the draft's generation atomically (lookups follow via NOTIFY), records lineage and
re-assigns open events.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
from shapely import ops
from sqlalchemy import Connection, Engine, text

from api.coverage import run_check
from api.db import audit
from api.db.generations import activate, generation_exists
from api.db.versioning import active_or_none, lock_generations, publish
from api.errors import Conflict, InvalidInput, NotFound
from spatial.coverage import CheckOptions
from spatial.crs import areas_m2
from spatial.validity import as_multipolygon

SNAP_DEG = 1e-9  # crossing vertices are inserted into every edge this close (~0.1 mm)


class StaleDraft(Conflict):
    code = "stale_draft"


def create_draft(engine: Engine, name: str, actor: str) -> dict[str, Any]:
    with engine.begin() as connection:
        lock_generations(connection)
        base = active_or_none(connection)
        if base is None:
            raise NotFound("没有生效的网格版本，无法创建草稿", code="no_active_generation")
        generation = publish(
            connection,
            changed=[],
            removed=set(),
            actor=actor,
            activate_now=False,
            description=f"草稿：{name}",
        )
        draft_id = connection.execute(
            text(
                "INSERT INTO draft (generation_id, base_generation, name, created_by) VALUES (:g, :b, :n, :a) RETURNING id"
            ),
            {"g": generation, "b": base, "n": name, "a": actor},
        ).scalar_one()
        audit.record(
            connection,
            actor,
            "draft.create",
            "draft",
            str(draft_id),
            {"base": base, "generation": generation},
        )
        return draft_row(connection, int(draft_id))


def _fetch(connection: Connection, draft_id: int, *, for_update: bool = False) -> Any:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        connection.execute(text(f"SELECT * FROM draft WHERE id = :id{lock}"), {"id": draft_id})
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"没有编号为 {draft_id} 的草稿", code="draft_not_found", where="path.draft_id"
        )
    return row


def draft_row(connection: Connection, draft_id: int) -> dict[str, Any]:
    row = _fetch(connection, draft_id)
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _lock(connection: Connection, draft_id: int, version: int) -> dict[str, Any]:
    row = _fetch(connection, draft_id, for_update=True)
    if row["status"] != "open":
        raise Conflict(
            f"草稿 {draft_id} 已{'发布' if row['status'] == 'published' else '放弃'}，不能再编辑",
            code="draft_closed",
        )
    if row["version"] != version:
        raise StaleDraft(
            f"草稿已被他人修改（当前版本 {row['version']}，你的版本 {version}）：请刷新后重做",
            where="body.version",
            details=[{"current_version": row["version"]}],
        )
    return dict(row)


def _neighbour_generation(connection: Connection, generation: int, direction: str) -> int | None:
    query = (
        "SELECT max(id) FROM generation WHERE id < :g"
        if direction == "before"
        else "SELECT min(id) FROM generation WHERE id > :g"
    )
    return connection.execute(text(query), {"g": generation}).scalar()


def _own(connection: Connection, generation: int, code: str) -> int:
    """The id of a row of `code` that belongs to this generation only (copy-on-write)."""
    row = connection.execute(
        text(
            "SELECT id, generation_low, generation_high FROM grid WHERE code = :c AND generation_low <= :g "
            "AND generation_high >= :g FOR UPDATE"
        ),
        {"c": code, "g": generation},
    ).first()
    if row is None:
        raise NotFound(f"草稿中没有编码为 {code} 的网格", code="grid_not_found", where="path.code")
    if row.generation_low == generation == row.generation_high:
        return int(row.id)
    before = _neighbour_generation(connection, generation, "before")
    after = _neighbour_generation(connection, generation, "after")
    columns = "code, name, level, kind, parent_code, households, population, attributes, geom"
    if row.generation_low < generation:
        connection.execute(
            text("UPDATE grid SET generation_high = :b WHERE id = :id"), {"b": before, "id": row.id}
        )
        if row.generation_high > generation:
            connection.execute(
                text(
                    f"INSERT INTO grid ({columns}, generation_low, generation_high) SELECT {columns}, :a, :h "
                    "FROM grid WHERE id = :id"
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
                f"INSERT INTO grid ({columns}, generation_low, generation_high) SELECT {columns}, :g, :g "
                "FROM grid WHERE id = :id RETURNING id"
            ),
            {"g": generation, "id": row.id},
        ).scalar_one()
    )


def _bump(
    connection: Connection,
    draft: dict[str, Any],
    operation: str,
    codes: list[str],
    details: dict[str, Any],
    actor: str,
) -> int:
    version = draft["version"] + 1
    connection.execute(
        text("UPDATE draft SET version = :v, updated_at = now() WHERE id = :id"),
        {"v": version, "id": draft["id"]},
    )
    connection.execute(
        text(
            "INSERT INTO draft_edit (draft_id, version, operation, codes, details, actor) "
            "VALUES (:d, :v, :o, :c, CAST(:details AS jsonb), :a)"
        ),
        {
            "d": draft["id"],
            "v": version,
            "o": operation,
            "c": codes,
            "details": json.dumps(details, ensure_ascii=False),
            "a": actor,
        },
    )
    return version


def _geometry(connection: Connection, row_id: int) -> shapely.Geometry:
    return shapely.from_wkb(
        bytes(
            connection.execute(
                text("SELECT ST_AsBinary(geom) FROM grid WHERE id = :id"), {"id": row_id}
            ).scalar_one()
        )
    )


def _set_geometry(connection: Connection, row_id: int, geometry: shapely.Geometry) -> None:
    connection.execute(
        text("UPDATE grid SET geom = ST_GeomFromWKB(:wkb, 4326) WHERE id = :id"),
        {"wkb": shapely.to_wkb(as_multipolygon(geometry)), "id": row_id},
    )


def grid_stats(connection: Connection, generation: int, codes: list[str]) -> list[dict[str, Any]]:
    """Live statistics for touched grids: households and buildings (by location), cameras, area, deviation."""
    rows = (
        connection.execute(
            text(
                "SELECT g.code, g.name, g.level, l.households_min, l.households_max, ST_AsBinary(g.geom) AS wkb, "
                "(SELECT coalesce(sum(b.households), 0) FROM building b WHERE b.geom && g.geom "
                " AND ST_Covers(g.geom, ST_PointOnSurface(b.geom))) AS households, "
                "(SELECT count(*) FROM building b WHERE b.geom && g.geom AND ST_Covers(g.geom, ST_PointOnSurface(b.geom))) AS buildings, "
                "(SELECT count(*) FROM monitoring_point m WHERE m.geom && g.geom AND ST_Covers(g.geom, m.geom)) AS cameras "
                "FROM grid g JOIN grid_level l ON l.name = g.level WHERE g.code = ANY(:codes) "
                "AND g.generation_low <= :g AND g.generation_high >= :g ORDER BY g.code"
            ),
            {"codes": codes, "g": generation},
        )
        .mappings()
        .all()
    )
    areas: Any = (
        areas_m2(np.array([shapely.from_wkb(bytes(r["wkb"])) for r in rows], dtype=object))
        if rows
        else []
    )
    stats = []
    for row, area in zip(rows, areas, strict=True):
        low, high = row["households_min"], row["households_max"]
        target = (low + high) / 2 if low is not None and high is not None else None
        stats.append(
            {
                "code": row["code"],
                "name": row["name"],
                "level": row["level"],
                "households": int(row["households"]),
                "buildings": int(row["buildings"]),
                "cameras": int(row["cameras"]),
                "area_m2": round(float(area), 1),
                "household_deviation": round(row["households"] - target)
                if target is not None
                else None,
            }
        )
    return stats


def replace_geometry(
    engine: Engine, draft_id: int, code: str, geometry: shapely.Geometry, version: int, actor: str
) -> dict[str, Any]:
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
        reason = (
            shapely.is_valid_reason(geometry)
            if geometry.geom_type in ("Polygon", "MultiPolygon")
            else geometry.geom_type
        )
        raise InvalidInput(
            f"几何应为有效的面：{reason}", code="invalid_geometry", where="body.geometry"
        )
    with engine.begin() as connection:
        draft = _lock(connection, draft_id, version)
        _set_geometry(connection, _own(connection, draft["generation_id"], code), geometry)
        new_version = _bump(connection, draft, "redraw", [code], {}, actor)
        return {
            "version": new_version,
            "touched": grid_stats(connection, draft["generation_id"], [code]),
        }


def _next_codes(
    connection: Connection, generation: int, parent: str | None, code: str, count: int
) -> list[str]:
    """The next free sequence codes under the parent (default convention: digits extending the parent)."""
    siblings = (
        connection.execute(
            text(
                "SELECT code FROM grid WHERE generation_low <= :g AND generation_high >= :g AND parent_code IS NOT DISTINCT FROM :p"
            ),
            {"g": generation, "p": parent},
        )
        .scalars()
        .all()
    )
    used = set(connection.execute(text("SELECT DISTINCT code FROM grid")).scalars())
    prefix = parent or ""
    tails = [
        c[len(prefix) :] for c in siblings if c.startswith(prefix) and c[len(prefix) :].isdigit()
    ]
    if not tails or not code.startswith(prefix):
        raise InvalidInput(
            "无法自动编码，请在 new_codes 中给出两个新编码",
            code="codes_required",
            where="body.new_codes",
        )
    width, number = len(tails[0]), max(int(t) for t in tails)
    codes: list[str] = []
    while len(codes) < count:
        number += 1
        candidate = f"{prefix}{number:0{width}d}"
        if candidate not in used:  # never reuse a code that existed in any generation
            codes.append(candidate)
    return codes


def split_grid(
    engine: Engine,
    draft_id: int,
    code: str,
    line: shapely.Geometry,
    version: int,
    actor: str,
    new_codes: list[str] | None = None,
) -> dict[str, Any]:
    """Cut a grid in two along a line; crossing points become vertices of every grid they lie on."""
    if line.geom_type != "LineString":
        raise InvalidInput("分割线应为 LineString", code="invalid_geometry", where="body.line")
    with engine.begin() as connection:
        draft = _lock(connection, draft_id, version)
        generation = draft["generation_id"]
        row_id = _own(connection, generation, code)
        old = (
            connection.execute(text("SELECT * FROM grid WHERE id = :id"), {"id": row_id})
            .mappings()
            .one()
        )
        polygon = _geometry(connection, row_id)
        parts = [p for p in shapely.get_parts(ops.split(polygon, line)) if p.geom_type == "Polygon"]
        if len(parts) != 2:
            raise InvalidInput(
                f"分割线应恰好把网格分成两块（实际 {len(parts)} 块）",
                code="split_failed",
                where="body.line",
            )
        codes = new_codes or _next_codes(connection, generation, old["parent_code"], code, 2)
        if len(codes) != 2 or len(set(codes)) != 2:
            raise InvalidInput(
                "new_codes 应为两个不同的编码", code="invalid_codes", where="body.new_codes"
            )
        _insert_crossings(connection, generation, polygon, parts)
        connection.execute(text("DELETE FROM grid WHERE id = :id"), {"id": row_id})
        households = [int(s) for s in _households_in(connection, parts)]
        for new_code, part, count in zip(codes, parts, households, strict=True):
            population = round(count * (old["population"] or 0) / max(old["households"] or 1, 1))
            _insert_grid(
                connection,
                generation,
                old,
                new_code,
                f"{old['name']}（{new_code[-3:]}）",
                count,
                population,
                part,
            )
        _reparent_children(connection, generation, code, codes, parts)
        new_version = _bump(
            connection,
            draft,
            "split",
            [code, *codes],
            {"line": line.wkt, "from": code, "into": codes},
            actor,
        )
        return {
            "version": new_version,
            "removed": [code],
            "touched": grid_stats(connection, generation, codes),
        }


def _insert_grid(
    connection: Connection,
    generation: int,
    template: Any,
    code: str,
    name: str,
    households: int,
    population: int,
    geometry: shapely.Geometry,
) -> None:
    """A new grid row in the draft, taking level, kind, parent and attributes from `template`."""
    connection.execute(
        text(
            "INSERT INTO grid (code, name, level, kind, parent_code, households, population, attributes, geom, "
            "generation_low, generation_high) VALUES (:code, :name, :level, :kind, :parent, :households, "
            ":population, CAST(:attributes AS jsonb), ST_GeomFromWKB(:wkb, 4326), :g, :g)"
        ),
        {
            "code": code,
            "name": name,
            "level": template["level"],
            "kind": template["kind"],
            "parent": template["parent_code"],
            "households": households,
            "population": population,
            "attributes": json.dumps(template["attributes"] or {}),
            "wkb": shapely.to_wkb(as_multipolygon(geometry)),
            "g": generation,
        },
    )


def _households_in(connection: Connection, parts: list[shapely.Geometry]) -> list[int]:
    return [
        int(
            connection.execute(
                text(
                    "SELECT coalesce(sum(households), 0) FROM building WHERE geom && ST_GeomFromWKB(:w, 4326) "
                    "AND ST_Covers(ST_GeomFromWKB(:w, 4326), ST_PointOnSurface(geom))"
                ),
                {"w": shapely.to_wkb(p)},
            ).scalar_one()
        )
        for p in parts
    ]


def _insert_crossings(
    connection: Connection,
    generation: int,
    polygon: shapely.Geometry,
    parts: list[shapely.Geometry],
) -> None:
    """Add the cut's end points to every other grid whose edge passes through them (no T-junctions)."""
    existing = {tuple(c) for c in shapely.get_coordinates(polygon)}
    crossings = [
        c for c in shapely.get_coordinates(shapely.union_all(parts)) if tuple(c) not in existing
    ]
    if not crossings:
        return
    points = shapely.multipoints(crossings)
    rows = (
        connection.execute(
            text(
                "SELECT code FROM grid WHERE generation_low <= :g AND generation_high >= :g "
                "AND ST_DWithin(geom, ST_GeomFromWKB(:p, 4326), :tol)"
            ),
            {"g": generation, "p": shapely.to_wkb(points), "tol": SNAP_DEG},
        )
        .scalars()
        .all()
    )
    for other in rows:
        other_id = _own(connection, generation, other)
        geometry = _geometry(connection, other_id)
        if shapely.equals(geometry, polygon):
            continue
        snapped = shapely.snap(geometry, points, SNAP_DEG)
        if not shapely.equals_exact(snapped, geometry, 0.0) and snapped.is_valid:
            _set_geometry(connection, other_id, snapped)


def _reparent_children(
    connection: Connection,
    generation: int,
    code: str,
    codes: list[str],
    parts: list[shapely.Geometry],
) -> None:
    children = connection.execute(
        text(
            "SELECT code, ST_AsBinary(ST_PointOnSurface(geom)) AS p FROM grid WHERE parent_code = :c "
            "AND generation_low <= :g AND generation_high >= :g"
        ),
        {"c": code, "g": generation},
    ).all()
    for child, point in children:
        owner = next(
            (
                c
                for c, part in zip(codes, parts, strict=True)
                if part.covers(shapely.from_wkb(bytes(point)))
            ),
            codes[0],
        )
        connection.execute(
            text("UPDATE grid SET parent_code = :p WHERE id = :id"),
            {"p": owner, "id": _own(connection, generation, child)},
        )


def publish_draft(
    engine: Engine, draft_id: int, version: int, acknowledge_warnings: bool, actor: str
) -> dict[str, Any]:
    """Coverage check, then one transaction: activate, lineage, re-assign open events."""
    with engine.connect() as connection:
        draft = draft_row(connection, draft_id)
        report = run_check(connection, draft["generation_id"], CheckOptions())
    summary = report["summary"]
    if summary["errors"]:
        raise Conflict(
            f"覆盖检查发现 {summary['errors']} 个错误，不能发布",
            code="coverage_errors",
            details=[{"by_kind": summary["by_kind"]}],
        )
    if summary["warnings"] and not acknowledge_warnings:
        raise Conflict(
            f"覆盖检查有 {summary['warnings']} 个提示，确认后（acknowledge_warnings=true）再发布",
            code="warnings_not_acknowledged",
            details=[{"by_kind": summary["by_kind"]}],
        )
    with engine.begin() as connection:
        lock_generations(connection)
        draft = _lock(connection, draft_id, version)
        generation = draft["generation_id"]
        activate(connection, generation, actor)
        edits = (
            connection.execute(
                text(
                    "SELECT operation, codes, details FROM draft_edit WHERE draft_id = :d ORDER BY version"
                ),
                {"d": draft_id},
            )
            .mappings()
            .all()
        )
        lineage = []
        for edit in edits:
            if edit["operation"] == "split":
                lineage += [
                    (edit["details"]["from"], new, "split") for new in edit["details"]["into"]
                ]
            elif edit["operation"] == "merge":
                lineage += [
                    (old, edit["details"]["into"], "merge") for old in edit["details"]["from"]
                ]
            elif edit["operation"] == "redraw":
                lineage += [(c, c, "redraw") for c in edit["codes"]]
        for old, new, relation in lineage:
            connection.execute(
                text(
                    "INSERT INTO grid_lineage (generation_id, old_code, new_code, relation) VALUES (:g, :o, :n, :r)"
                ),
                {"g": generation, "o": old, "n": new, "r": relation},
            )
        moved = reassign_open_events(connection, generation)
        connection.execute(
            text("UPDATE draft SET status = 'published', updated_at = now() WHERE id = :id"),
            {"id": draft_id},
        )
        audit.record(
            connection,
            actor,
            "draft.publish",
            "generation",
            str(generation),
            {"draft": draft_id, "lineage": len(lineage), "events_reassigned": moved},
        )
    return {
        "generation": generation,
        "events_reassigned": moved,
        "lineage": [{"old_code": o, "new_code": n, "relation": r} for o, n, r in lineage],
        "warnings": summary["warnings"],
    }


def reassign_open_events(connection: Connection, generation: int) -> int:
    """Open events follow their location into the given generation (finest grid, smallest code)."""
    return connection.execute(
        text(
            "UPDATE event e SET grid_code = o.code, generation_id = :g, updated_at = now() FROM ("
            " SELECT DISTINCT ON (e2.id) e2.id, g.code FROM event e2 JOIN grid g ON g.geom && e2.geom "
            " AND ST_Covers(g.geom, e2.geom) JOIN grid_level l ON l.name = g.level "
            " WHERE e2.status NOT IN ('closed', 'cancelled') AND g.generation_low <= :g AND g.generation_high >= :g "
            " ORDER BY e2.id, l.rank DESC, g.code) o "
            "WHERE e.id = o.id AND (e.grid_code IS DISTINCT FROM o.code OR e.generation_id IS DISTINCT FROM :g)"
        ),
        {"g": generation},
    ).rowcount


def reactivate(engine: Engine, generation: int, actor: str) -> dict[str, Any]:
    with engine.begin() as connection:
        lock_generations(connection)
        if not generation_exists(connection, generation):
            raise NotFound(
                f"没有第 {generation} 版网格",
                code="generation_not_found",
                where="path.generation_id",
            )
        activate(connection, generation, actor)
        moved = reassign_open_events(connection, generation)
        audit.record(
            connection,
            actor,
            "generation.activate",
            "generation",
            str(generation),
            {"events_reassigned": moved},
        )
    return {"generation": generation, "events_reassigned": moved}


def merge_grids(
    engine: Engine,
    draft_id: int,
    codes: list[str],
    version: int,
    actor: str,
    keep_code: str | None = None,
) -> dict[str, Any]:
    """Merge neighbouring grids of one parent into one (union of shared-edge polygons)."""
    if len(set(codes)) < 2:
        raise InvalidInput("至少需要两个不同的网格编码", code="invalid_codes", where="body.codes")
    if keep_code is not None and keep_code not in codes:
        raise InvalidInput(
            "keep_code 应是被合并网格之一", code="invalid_codes", where="body.keep_code"
        )
    with engine.begin() as connection:
        draft = _lock(connection, draft_id, version)
        generation = draft["generation_id"]
        rows = []
        for code in codes:
            row_id = _own(connection, generation, code)
            rows.append(
                connection.execute(text("SELECT * FROM grid WHERE id = :id"), {"id": row_id})
                .mappings()
                .one()
            )
        if len({(r["level"], r["parent_code"]) for r in rows}) != 1:
            raise InvalidInput(
                "只能合并同一上级、同一层级的网格", code="not_siblings", where="body.codes"
            )
        shapes = [_geometry(connection, int(r["id"])) for r in rows]
        merged = shapely.union_all(shapes)
        if merged.geom_type != "Polygon":
            raise InvalidInput(
                "被合并的网格不相邻（合并结果不连通）", code="not_contiguous", where="body.codes"
            )
        first = rows[0]
        result_code = (
            keep_code
            or _next_codes(connection, generation, first["parent_code"], first["code"], 1)[0]
        )
        for row in rows:
            connection.execute(text("DELETE FROM grid WHERE id = :id"), {"id": row["id"]})
        name = next((r["name"] for r in rows if r["code"] == result_code), first["name"])
        _insert_grid(
            connection,
            generation,
            first,
            result_code,
            name,
            sum(r["households"] or 0 for r in rows),
            sum(r["population"] or 0 for r in rows),
            merged,
        )
        for row in rows:
            for child in (
                connection.execute(
                    text(
                        "SELECT code FROM grid WHERE parent_code = :c AND generation_low <= :g AND generation_high >= :g"
                    ),
                    {"c": row["code"], "g": generation},
                )
                .scalars()
                .all()
            ):
                connection.execute(
                    text("UPDATE grid SET parent_code = :p WHERE id = :id"),
                    {"p": result_code, "id": _own(connection, generation, child)},
                )
        new_version = _bump(
            connection,
            draft,
            "merge",
            [*codes, result_code],
            {"from": list(codes), "into": result_code},
            actor,
        )
        return {
            "version": new_version,
            "removed": [c for c in codes if c != result_code],
            "touched": grid_stats(connection, generation, [result_code]),
        }
