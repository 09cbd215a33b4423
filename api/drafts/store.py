"""Draft storage: fetch and lock a draft, copy-on-write rows, load an edit's neighbourhood, save it.

A draft owns an inactive generation. Editing a grid that the draft still shares with other
generations first gives the draft its own row (copy-on-write), so history and the active
generation are never touched. Every edit carries the draft's version: a stale version gets 409
(a colleague saved first) and nothing is overwritten. Each edit keeps the rows it replaced, so it
can be undone.
"""

from __future__ import annotations

import json
from typing import Any

import shapely
from sqlalchemy import Connection, text

from api.db import audit
from api.db.versioning import grid_row
from api.errors import Conflict, NotFound
from spatial.editing import GridRow, HierarchyEdit
from spatial.validity import as_multipolygon

_COLUMNS = "code, name, level, kind, parent_code, households, population, attributes, geom"
_LOAD_PAD_DEG = 1e-6  # load grids this close to an edit's region too (they may share an edge)


class StaleDraft(Conflict):
    code = "stale_draft"


def register_draft(
    connection: Connection, generation: int, base: int, name: str, actor: str, source: str
) -> int:
    """Make an (inactive) generation a draft, edited and published through the drafts API."""
    draft_id = int(
        connection.execute(
            text(
                "INSERT INTO draft (generation_id, base_generation, name, created_by, source) "
                "VALUES (:g, :b, :n, :a, :s) RETURNING id"
            ),
            {"g": generation, "b": base, "n": name, "a": actor, "s": source},
        ).scalar_one()
    )
    audit.record(
        connection,
        actor,
        "draft.create",
        "draft",
        str(draft_id),
        {"base": base, "generation": generation, "source": source},
    )
    return draft_id


def fetch(connection: Connection, draft_id: int, *, for_update: bool = False) -> dict[str, Any]:
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
    return dict(row)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def draft_row(connection: Connection, draft_id: int) -> dict[str, Any]:
    """A draft with its edit history (newest first)."""
    draft = _plain(fetch(connection, draft_id))
    edits = connection.execute(
        text(
            "SELECT version, operation, codes, actor, at, undone FROM draft_edit "
            "WHERE draft_id = :d ORDER BY version DESC"
        ),
        {"d": draft_id},
    ).mappings()
    draft["edits"] = [_plain(dict(e)) for e in edits]
    return draft


def list_drafts(connection: Connection, status: str | None) -> list[dict[str, Any]]:
    rows = connection.execute(
        text("SELECT * FROM draft WHERE CAST(:s AS text) IS NULL OR status = :s ORDER BY id DESC"),
        {"s": status},
    ).mappings()
    return [_plain(dict(r)) for r in rows]


def lock(connection: Connection, draft_id: int, version: int) -> dict[str, Any]:
    """The draft row, locked for this transaction; 409 unless it is open and at `version`."""
    row = fetch(connection, draft_id, for_update=True)
    if row["status"] != "open":
        state = "发布" if row["status"] == "published" else "放弃"
        raise Conflict(f"草稿 {draft_id} 已{state}，不能再编辑", code="draft_closed")
    if row["version"] != version:
        raise StaleDraft(
            f"草稿已被他人修改（当前版本 {row['version']}，你的版本 {version}）：请刷新后重做",
            where="body.version",
            details=[{"current_version": row["version"]}],
        )
    return row


def _neighbour_generation(connection: Connection, generation: int, direction: str) -> int | None:
    query = (
        "SELECT max(id) FROM generation WHERE id < :g"
        if direction == "before"
        else "SELECT min(id) FROM generation WHERE id > :g"
    )
    return connection.execute(text(query), {"g": generation}).scalar()


def own(connection: Connection, generation: int, code: str) -> int | None:
    """The id of a row of `code` that belongs to this generation only (copy-on-write)."""
    row = connection.execute(
        text(
            "SELECT id, generation_low, generation_high FROM grid WHERE code = :c "
            "AND generation_low <= :g AND generation_high >= :g FOR UPDATE"
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


def load_edit(
    connection: Connection,
    generation: int,
    region: shapely.Geometry | None = None,
    codes: list[str] | None = None,
) -> HierarchyEdit:
    """The draft's grids within the extent of `region` and of the grids named in `codes`
    (so their neighbours and children come too), ready to edit."""
    envelope = shapely.to_wkb(region.envelope if region is not None else shapely.Point())
    in_draft = "generation_low <= :g AND generation_high >= :g"
    rows = connection.execute(
        text(
            "WITH focus AS (SELECT ST_Expand(ST_Extent(shape)::geometry, :pad) AS box FROM ("
            " SELECT ST_GeomFromWKB(:env, 4326) AS shape"
            f" UNION ALL SELECT geom FROM grid WHERE code = ANY(:codes) AND {in_draft}) named) "
            "SELECT code, name, level, kind, parent_code, households, population, attributes, "
            f"ST_AsBinary(geom) AS wkb FROM grid, focus WHERE {in_draft} "
            "AND (geom && focus.box OR code = ANY(:codes) OR parent_code = ANY(:codes))"
        ),
        {"g": generation, "env": envelope, "pad": _LOAD_PAD_DEG, "codes": codes or []},
    ).all()
    ranks: dict[str, int] = dict(
        connection.execute(text("SELECT name, rank FROM grid_level")).all()
    )
    grids = {r.code: grid_row(r) for r in rows}
    return HierarchyEdit(grids, ranks)


def _write(connection: Connection, generation: int, row: GridRow) -> None:
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
    row_id = own(connection, generation, row.code)
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


def _drop(connection: Connection, generation: int, code: str) -> None:
    row_id = own(connection, generation, code)
    if row_id is not None:
        connection.execute(text("DELETE FROM grid WHERE id = :id"), {"id": row_id})


def _snapshot(row: GridRow) -> dict[str, Any]:
    return {
        **{k: v for k, v in vars(row).items() if k != "geom"},
        "wkb": shapely.to_wkb(row.geom, hex=True),
    }


def _restore(snapshot: dict[str, Any]) -> GridRow:
    fields = {k: v for k, v in snapshot.items() if k != "wkb"}
    return GridRow(**fields, geom=shapely.from_wkb(snapshot["wkb"]))


def save_edit(
    connection: Connection,
    draft: dict[str, Any],
    edit: HierarchyEdit,
    operation: str,
    actor: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Write the edit's rows, log it with what it replaced (for undo), bump the version."""
    generation = draft["generation_id"]
    for code in sorted(edit.removed):
        _drop(connection, generation, code)
    for code in edit.touched():
        _write(connection, generation, edit.rows[code])
    undo = {
        "before": [_snapshot(row) for _, row in sorted(edit.before.items())],
        "created": sorted(edit.created),
    }
    record = {**(details or {}), "lineage": edit.lineage, "undo": undo}
    return bump(
        connection, draft, operation, sorted(set(edit.before) | edit.created), record, actor
    )


def bump(
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
    audit.record(
        connection,
        actor,
        f"draft.{operation}",
        "draft",
        str(draft["id"]),
        {"version": version, "codes": codes[:100]},
    )
    return version


def undo_last(connection: Connection, draft: dict[str, Any], actor: str) -> tuple[int, list[str]]:
    """Put back what the newest edit not yet undone replaced; returns (version, codes restored)."""
    last = connection.execute(
        text(
            "SELECT id, version, operation, details FROM draft_edit WHERE draft_id = :d "
            "AND NOT undone AND operation <> 'undo' ORDER BY version DESC LIMIT 1"
        ),
        {"d": draft["id"]},
    ).first()
    if last is None:
        raise Conflict("草稿没有可撤销的修改", code="nothing_to_undo")
    generation = draft["generation_id"]
    undo = last.details.get("undo", {})
    for code in undo.get("created", []):
        _drop(connection, generation, code)
    restored = [_restore(s) for s in undo.get("before", [])]
    for row in restored:
        _write(connection, generation, row)
    connection.execute(text("UPDATE draft_edit SET undone = true WHERE id = :id"), {"id": last.id})
    codes = sorted({r.code for r in restored} | set(undo.get("created", [])))
    version = bump(
        connection,
        draft,
        "undo",
        codes,
        {"undid": last.version, "operation": last.operation},
        actor,
    )
    return version, [r.code for r in restored]
