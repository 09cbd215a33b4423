"""Edit operations on a draft: each locks the draft at the caller's version, edits the grids
around it in memory (spatial.editing), writes back what changed and returns live statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shapely
from sqlalchemy import Connection, Engine

from api.db import draft_grids
from api.db.buildings import footprints_by_code
from api.db.catalogue import Level, grid_kinds, level_named
from api.db.drafts import Draft
from api.drafts.recode import code_follows_rule, code_free, keep_code_rule
from api.drafts.stats import grid_stats, next_codes
from api.drafts.versions import load_edit, lock, save_edit, undo_last
from api.errors import InvalidInput
from spatial.cleanup import SNAP_INPUT_DEG
from spatial.editing import EditError, GridRow, HierarchyEdit

SPLIT_SHARE = 0.01  # as the coverage check's min_split_share: less is survey noise

# When no code can be picked automatically: where the request gives it instead, and how many.
ASK = {
    "split": {"where": "body.new_codes", "ask": "请在 new_codes 中给出两个新编码"},
    "merge": {"where": "body.keep_code", "ask": "请在 keep_code 中指定保留哪个被合并网格的编码"},
    "create": {"where": "body.code", "ask": "请在 code 中给出新网格的编码"},
}
Apply = Callable[[Connection, Draft, HierarchyEdit], dict[str, Any] | None]


def _run(
    engine: Engine,
    draft_id: int,
    version: int,
    actor: str,
    operation: str,
    apply: Apply,
    *,
    codes: list[str],
    region: shapely.Geometry | None = None,
    details: dict[str, Any] | None = None,
    keep_codes: bool = False,
) -> dict[str, Any]:
    """Lock, load the neighbourhood of `codes` and `region`, apply, keep the code rule (recode
    or, with `keep_codes`, refuse), save, report."""
    with engine.begin() as connection:
        draft = lock(connection, draft_id, version)
        generation = draft.generation_id
        edit = load_edit(connection, generation, region, codes)
        extra = apply(connection, draft, edit) or {}  # an EditError is answered by api/errors.py
        edit.heal_vertices()
        recoded = keep_code_rule(connection, generation, edit, keep_codes)
        new_version = save_edit(connection, draft, edit, operation, actor, details)
        return {
            "version": new_version,
            # the grids the operation made and unmade; recodes are listed apart
            "created": sorted(edit.created - {r["new_code"] for r in recoded}),
            "removed": sorted(edit.removed - {r["old_code"] for r in recoded}),
            "recoded": recoded,
            "touched": grid_stats(connection, generation, edit.touched()),
            **extra,
        }


def _level(connection: Connection, name: str) -> Level:
    level = level_named(connection, name)
    if level is None:
        raise InvalidInput(f"没有名为 {name} 的层级", code="unknown_level", where="body.level")
    return level


def _kind_known(connection: Connection, kind: str) -> None:
    kinds = grid_kinds(connection)
    if kind not in kinds:
        raise InvalidInput(
            f"没有名为 {kind} 的网格类型（现有：{'、'.join(kinds)}）",
            code="unknown_kind",
            where="body.kind",
        )


def redraw(
    engine: Engine, draft_id: int, code: str, geometry: shapely.Geometry, version: int, actor: str
) -> dict[str, Any]:
    def apply(_c: Connection, _d: Draft, edit: HierarchyEdit) -> None:
        edit.redraw(code, geometry)

    return _run(engine, draft_id, version, actor, "redraw", apply, codes=[code], region=geometry)


def reshape(
    engine: Engine,
    draft_id: int,
    code: str,
    geometry: shapely.Geometry,
    version: int,
    actor: str,
    keep_codes: bool = False,
) -> dict[str, Any]:
    """New outline for a grid; neighbours take what it gives up and give what it takes."""

    def apply(_c: Connection, _d: Draft, edit: HierarchyEdit) -> None:
        edit.reshape(code, geometry)

    return _run(
        engine,
        draft_id,
        version,
        actor,
        "reshape",
        apply,
        codes=[code],
        region=geometry,
        keep_codes=keep_codes,
    )


def split(
    engine: Engine,
    draft_id: int,
    code: str,
    line: shapely.Geometry,
    version: int,
    actor: str,
    new_codes: list[str] | None = None,
    keep_codes: bool = False,
) -> dict[str, Any]:
    def apply(connection: Connection, draft: Draft, edit: HierarchyEdit) -> None:
        generation = draft.generation_id
        grid = edit.grid(code)
        parent = grid.parent_code
        if new_codes:
            if len(set(new_codes)) != 2:
                raise InvalidInput(
                    "new_codes 应为两个不同的编码", code="invalid_codes", where="body.new_codes"
                )
            level = _level(connection, grid.level)
            for new in new_codes:
                code_free(connection, generation, new, "body.new_codes")
                code_follows_rule(new, parent, level, "body.new_codes")
        codes = new_codes or next_codes(connection, generation, parent, code, 2, **ASK["split"])
        edit.split(code, line, codes)

    return _run(
        engine,
        draft_id,
        version,
        actor,
        "split",
        apply,
        codes=[code],
        details={"line": line.wkt},
        keep_codes=keep_codes,
    )


def merge(
    engine: Engine,
    draft_id: int,
    codes: list[str],
    version: int,
    actor: str,
    keep_code: str | None = None,
    keep_codes: bool = False,
) -> dict[str, Any]:
    if len(set(codes)) < 2:
        raise InvalidInput("至少需要两个不同的网格编码", code="invalid_codes", where="body.codes")
    if keep_code is not None and keep_code not in codes:
        raise InvalidInput(
            "keep_code 应是被合并网格之一", code="invalid_codes", where="body.keep_code"
        )

    def apply(connection: Connection, draft: Draft, edit: HierarchyEdit) -> None:
        first = edit.grid(codes[0], "codes")
        result = (
            keep_code
            or next_codes(
                connection, draft.generation_id, first.parent_code, first.code, 1, **ASK["merge"]
            )[0]
        )
        edit.merge(codes, result)

    return _run(
        engine, draft_id, version, actor, "merge", apply, codes=codes, keep_codes=keep_codes
    )


def create(
    engine: Engine,
    draft_id: int,
    row: GridRow,
    version: int,
    actor: str,
    keep_codes: bool = False,
) -> dict[str, Any]:
    """A new grid inside its parent; the grids it overlaps give up that area."""

    def apply(connection: Connection, draft: Draft, edit: HierarchyEdit) -> dict[str, Any]:
        generation = draft.generation_id
        level = _level(connection, row.level)
        _kind_known(connection, row.kind)
        if row.code:
            code_free(connection, generation, row.code, "body.code")
            code_follows_rule(row.code, row.parent_code, level)
        else:
            if row.parent_code not in edit.rows:
                raise InvalidInput(
                    "自动编码需要 parent_code，否则请在 code 中给出编码",
                    code="codes_required",
                    where="body.code",
                )
            siblings = edit.children(row.parent_code or "")
            row.code = next_codes(
                connection,
                generation,
                row.parent_code,
                siblings[0] if siblings else row.parent_code or "",
                1,
                **ASK["create"],
            )[0]
        edit.create(row)
        return {"code": row.code}

    return _run(
        engine,
        draft_id,
        version,
        actor,
        "create",
        apply,
        codes=[c for c in (row.parent_code,) if c],
        region=row.geom,
        keep_codes=keep_codes,
    )


def update(
    engine: Engine,
    draft_id: int,
    code: str,
    changes: dict[str, Any],
    version: int,
    actor: str,
    keep_codes: bool = False,
) -> dict[str, Any]:
    """Change attributes, parent or code. A new parent without a new code: the grid (and its
    descendants) is recoded under it when its code breaks the rule there."""

    def apply(connection: Connection, draft: Draft, edit: HierarchyEdit) -> None:
        if changes.get("kind") is not None:
            _kind_known(connection, changes["kind"])
        if changes.get("code") and changes["code"] != code:
            code_free(connection, draft.generation_id, changes["code"], "body.code")
        edit.update(code, changes)
        if changes.get("code"):
            row = edit.grid(changes["code"])
            code_follows_rule(row.code, row.parent_code, _level(connection, row.level))

    codes = [c for c in (code, changes.get("parent_code")) if c]
    return _run(
        engine,
        draft_id,
        version,
        actor,
        "update",
        apply,
        codes=codes,
        details={"changes": sorted(changes)},
        keep_codes=keep_codes,
    )


def delete(
    engine: Engine, draft_id: int, code: str, with_children: bool, version: int, actor: str
) -> dict[str, Any]:
    def apply(_c: Connection, _d: Draft, edit: HierarchyEdit) -> None:
        edit.delete(code, with_children)

    return _run(engine, draft_id, version, actor, "delete", apply, codes=[code])


def reassign_buildings(
    engine: Engine,
    draft_id: int,
    building_codes: list[str],
    grid_code: str,
    version: int,
    actor: str,
    keep_codes: bool = False,
) -> dict[str, Any]:
    """Move boundaries so these buildings lie in `grid_code` (their strip changes grid)."""
    with engine.connect() as connection:
        found = footprints_by_code(connection, building_codes)
    missing = [c for c in building_codes if c not in found]
    if missing:
        raise InvalidInput(
            f"没有这些楼栋：{', '.join(missing[:20])}",
            code="building_not_found",
            where="body.buildings",
        )
    footprints = [shapely.from_wkb(bytes(found[c])) for c in building_codes]

    def apply(connection: Connection, _d: Draft, edit: HierarchyEdit) -> dict[str, Any]:
        sources = set()
        for building, footprint in zip(building_codes, footprints, strict=True):
            try:
                sources.update(edit.take_building(footprint, grid_code))
            except EditError as error:
                error.args = (f"楼栋 {building}：{error}",)
                raise
        cut = _buildings_cut(connection, edit, edit.rows[grid_code].level, set(building_codes))
        if cut:
            raise InvalidInput(
                f"这样调整会把楼栋 {'、'.join(cut[:10])} 分在两个网格：请把它们一并列入 buildings",
                code="would_split_building",
                where="body.buildings",
                details=[{"buildings": cut}],
            )
        return {"from": sorted(sources)}

    return _run(
        engine,
        draft_id,
        version,
        actor,
        "reassign_buildings",
        apply,
        codes=[grid_code],
        region=shapely.union_all(footprints),
        details={"buildings": building_codes, "to": grid_code},
        keep_codes=keep_codes,
    )


def _buildings_cut(
    connection: Connection, edit: HierarchyEdit, level: str, asked: set[str]
) -> list[str]:
    """Buildings (other than `asked`) that lay in one grid of `level` and would lie in two."""
    moved = [c for c in edit.touched() if c in edit.before and edit.rows[c].level == level]
    changed = shapely.union_all(
        [edit.before[c].geom.symmetric_difference(edit.rows[c].geom) for c in moved]
    )
    cut = []
    for code, wkb in sorted(draft_grids.buildings_meeting(connection, changed).items()):
        footprint = shapely.from_wkb(wkb)

        def holders(rows: list[GridRow], footprint: shapely.Geometry = footprint) -> int:
            return sum(
                footprint.intersection(r.geom).area >= SPLIT_SHARE * footprint.area for r in rows
            )

        before = holders([edit.before[c] for c in moved])
        if code not in asked and before <= 1 < holders([edit.rows[c] for c in moved]):
            cut.append(code)
    return cut


def undo(engine: Engine, draft_id: int, version: int, actor: str) -> dict[str, Any]:
    """Undo the newest edit not yet undone (repeat to go further back)."""
    with engine.begin() as connection:
        draft = lock(connection, draft_id, version)
        new_version, restored = undo_last(connection, draft, actor)
        return {
            "version": new_version,
            "restored": restored,
            "touched": grid_stats(connection, draft.generation_id, restored),
        }


def replace(
    engine: Engine,
    draft_id: int,
    code: str,
    changes: dict[str, Any],
    geometry: shapely.Geometry | None,
    version: int,
    actor: str,
    operation: str = "replace",
) -> dict[str, Any]:
    """One edit for OGC API PUT and PATCH: a new outline (reshaped, so neighbours give and take
    the difference and the coverage stays whole) and new attributes, parent or code (as `update`).
    An outline within the input snap of the current one, or an unchanged value, is left alone."""

    def apply(connection: Connection, draft: Draft, edit: HierarchyEdit) -> None:
        row = edit.grid(code)
        wanted = {k: v for k, v in changes.items() if getattr(row, k) != v}
        if geometry is not None and shapely.hausdorff_distance(row.geom, geometry) > SNAP_INPUT_DEG:
            edit.reshape(code, geometry)
        if wanted.get("kind") is not None:
            _kind_known(connection, wanted["kind"])
        if wanted.get("code"):
            code_free(connection, draft.generation_id, wanted["code"], "body.code")
        if wanted:
            edit.update(code, wanted)
        if wanted.get("code"):
            moved = edit.grid(wanted["code"])
            code_follows_rule(moved.code, moved.parent_code, _level(connection, moved.level))

    codes = [c for c in (code, changes.get("parent_code")) if c]
    return _run(
        engine,
        draft_id,
        version,
        actor,
        operation,
        apply,
        codes=codes,
        region=geometry,
        details={"changes": sorted(changes), "geometry": geometry is not None},
    )
