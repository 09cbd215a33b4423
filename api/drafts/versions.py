"""Draft storage: read and lock a draft, load an edit's neighbourhood, save it, undo it.

A draft owns an inactive generation; its rows are written copy-on-write (api.db.draft_grids),
so history and the active generation are never touched. Every edit carries the draft's version:
a stale version gets 409 (a colleague saved first) and nothing is overwritten. Each edit keeps
the rows it replaced, so it can be undone.
"""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import Connection

from api.db import audit, draft_grids
from api.db import drafts as draft_rows
from api.db.catalogue import level_ranks
from api.db.drafts import Draft
from api.errors import Conflict, NotFound
from spatial.editing import GridRow, HierarchyEdit

Lineage = list[tuple[str | None, str | None, str]]

_LOAD_PAD_DEG = 1e-6  # load grids this close to an edit's region too (they may share an edge)


class StaleDraft(Conflict):
    code = "stale_draft"


def register_draft(
    connection: Connection, generation: int, base: int, name: str, actor: str, source: str
) -> int:
    """Make an (inactive) generation a draft, edited and published through the drafts API."""
    draft_id = draft_rows.insert_draft(connection, generation, base, name, actor, source)
    audit.record(
        connection,
        actor,
        "draft.create",
        "draft",
        str(draft_id),
        {"base": base, "generation": generation, "source": source},
    )
    return draft_id


def draft_by_id(connection: Connection, draft_id: int, *, for_update: bool = False) -> Draft:
    row = draft_rows.find_draft(connection, draft_id, for_update=for_update)
    if row is None:
        raise NotFound(
            f"没有编号为 {draft_id} 的草稿", code="draft_not_found", where="path.draft_id"
        )
    return row


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def draft_row(connection: Connection, draft_id: int) -> dict[str, Any]:
    """A draft with its edit history (newest first), as the API answers it."""
    draft = draft_by_id(connection, draft_id).as_json()
    draft["edits"] = [_plain(e) for e in draft_rows.edit_log(connection, draft_id)]
    return draft


def list_drafts(connection: Connection, status: str | None) -> list[dict[str, Any]]:
    return [d.as_json() for d in draft_rows.find_drafts(connection, status)]


def lock(connection: Connection, draft_id: int, version: int) -> Draft:
    """The draft row, locked for this transaction; 409 unless it is open and at `version`."""
    row = draft_by_id(connection, draft_id, for_update=True)
    if row.status != "open":
        state = "发布" if row.status == "published" else "放弃"
        raise Conflict(f"草稿 {draft_id} 已{state}，不能再编辑", code="draft_closed")
    if row.version != version:
        raise StaleDraft(
            f"草稿已被他人修改（当前版本 {row.version}，你的版本 {version}）：请刷新后重做",
            where="body.version",
            details=[{"current_version": row.version}],
        )
    return row


def load_edit(
    connection: Connection,
    generation: int,
    region: shapely.Geometry | None = None,
    codes: list[str] | None = None,
) -> HierarchyEdit:
    """The draft's grids within the extent of `region` and of the grids named in `codes`
    (so their neighbours and children come too), ready to edit."""
    grids = draft_grids.grids_around(connection, generation, region, codes or [], _LOAD_PAD_DEG)
    return HierarchyEdit(grids, level_ranks(connection))


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
    draft: Draft,
    edit: HierarchyEdit,
    operation: str,
    actor: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Write the edit's rows, log it with what it replaced (for undo), and move to the next version."""
    generation = draft.generation_id
    for code in sorted(edit.removed):
        draft_grids.drop(connection, generation, code)
    for code in edit.touched():
        draft_grids.write(connection, generation, edit.rows[code])
    undo = {
        "before": [_snapshot(row) for _, row in sorted(edit.before.items())],
        "created": sorted(edit.created),
    }
    record = {**(details or {}), "lineage": edit.lineage, "undo": undo}
    return log_new_version(
        connection, draft, operation, sorted(set(edit.before) | edit.created), record, actor
    )


def log_new_version(
    connection: Connection,
    draft: Draft,
    operation: str,
    codes: list[str],
    details: dict[str, Any],
    actor: str,
) -> int:
    version = draft.version + 1
    draft_rows.log_edit(connection, draft.id, version, operation, codes, details, actor)
    audit.record(
        connection,
        actor,
        f"draft.{operation}",
        "draft",
        str(draft.id),
        {"version": version, "codes": codes[:100]},
    )
    return version


def undo_last(connection: Connection, draft: Draft, actor: str) -> tuple[int, list[str]]:
    """Put back what the newest edit not yet undone replaced; returns (version, codes restored)."""
    last = draft_rows.last_live_edit(connection, draft.id)
    if last is None:
        raise Conflict("草稿没有可撤销的修改", code="nothing_to_undo")
    if last.operation == "rebase":
        # The edits before a rebase kept rows of the old base: putting them back would undo
        # what the other publish changed. Undo stops here (redo those edits by hand instead).
        raise Conflict(
            f"第 {last.version} 版是变基（草稿已改为基于第 {draft.base_generation} 版），"
            "撤销到此为止：变基之前的修改不能再撤销",
            code="undo_stops_at_rebase",
            details=[{"rebase_version": last.version}],
        )
    generation = draft.generation_id
    undo = last.details.get("undo", {})
    for code in undo.get("created", []):
        draft_grids.drop(connection, generation, code)
    restored = [_restore(s) for s in undo.get("before", [])]
    for row in restored:
        draft_grids.write(connection, generation, row)
    draft_rows.mark_undone(connection, last.id)
    codes = sorted({r.code for r in restored} | set(undo.get("created", [])))
    version = log_new_version(
        connection,
        draft,
        "undo",
        codes,
        {"undid": last.version, "operation": last.operation},
        actor,
    )
    return version, [r.code for r in restored]


def compose_lineage(edits: list[Lineage], redrawn: list[str], final_codes: set[str]) -> Lineage:
    """Collapse the edits' steps into base-code → final-code pairs.

    A code made and unmade inside the draft (split, then merged again) never reaches the
    published generation, so only its base ancestors and final descendants are reported.
    Grids whose outline changed without a structural step (a neighbour's reshape) are 'redraw'.
    """
    origins: dict[str, set[tuple[str | None, str]]] = {}
    deleted: set[tuple[str, str]] = set()
    pairs: set[tuple[str | None, str | None, str]]
    for steps in edits:
        for old, new, relation in steps:
            sources = origins.pop(old, {(old, relation)}) if old is not None else {(None, relation)}
            if old is not None and all(r == "recode" for _, r in sources):
                sources = {(base, relation) for base, _ in sources}
            if new is None:
                deleted |= {(base, relation) for base, _ in sources if base is not None}
            else:
                origins.setdefault(new, set()).update(sources)
    pairs = {
        (base, new, relation)
        for new, sources in origins.items()
        if new in final_codes
        for base, relation in sources
    }
    pairs |= {(base, None, "delete") for base, _ in deleted}
    explained = {new for _, new, _ in pairs}
    pairs |= {(code, code, "redraw") for code in redrawn if code not in explained}
    return sorted(pairs, key=lambda p: (p[0] or "", p[1] or "", p[2]))
