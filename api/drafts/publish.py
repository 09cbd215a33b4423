"""Start a draft, publish it (coverage check, then one transaction), re-activate a generation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from api.coverage import run_check
from api.db import audit, draft_grids
from api.db import drafts as draft_rows
from api.db.drafts import Draft
from api.db.events import reassign_open_events, unplace_stranded_events
from api.db.generations import activate, generation_exists
from api.db.versioning import active_or_none, lock_generations, publish
from api.drafts.versions import draft_by_id, draft_row, lock, register_draft
from api.errors import Conflict, NotFound
from spatial.coverage import CheckOptions
from spatial.editing import SAME_GEOMETRY_DEG

Lineage = list[tuple[str | None, str | None, str]]


def start_draft(connection: Connection, name: str, actor: str, source: str) -> Draft:
    """A new draft row and its generation: a copy of the active one that only the draft sees."""
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
    draft_id = register_draft(connection, generation, base, name, actor, source)
    return draft_by_id(connection, draft_id)


def create_draft(engine: Engine, name: str, actor: str) -> dict[str, Any]:
    with engine.begin() as connection:
        return draft_row(connection, start_draft(connection, name, actor, "copy").id)


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


def _lineage(connection: Connection, draft: Draft) -> Lineage:
    steps = [
        [tuple(step) for step in (edit or [])]
        for edit in draft_rows.live_lineages(connection, draft.id)
    ]
    new, old = draft.generation_id, draft.base_generation
    redrawn = draft_grids.redrawn_codes(connection, old, new, SAME_GEOMETRY_DEG)
    final = draft_grids.codes_in(connection, new)
    return compose_lineage(steps, redrawn, set(final))


def publish_draft(
    engine: Engine,
    draft_id: int,
    version: int,
    acknowledge_warnings: bool,
    actor: str,
    replace_newer: bool = False,
) -> dict[str, Any]:
    """Coverage check, then one transaction: activate, lineage, re-assign open events."""
    with engine.connect() as connection:
        draft = draft_by_id(connection, draft_id)
        report = run_check(connection, draft.generation_id, CheckOptions())
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
        draft = lock(connection, draft_id, version)
        generation = draft.generation_id
        active = active_or_none(connection)
        if active != draft.base_generation and not replace_newer:
            # Publishing would silently undo whatever became active since the draft was made.
            raise Conflict(
                f"草稿基于第 {draft.base_generation} 版，但现行的是第 {active} 版：发布会撤销其间的改动。"
                "请查看差异后确认（replace_newer=true），或基于现行版本重新起草",
                code="base_changed",
                details=[{"base_generation": draft.base_generation, "active_generation": active}],
            )
        lineage = _lineage(connection, draft)
        events = go_live(connection, generation, lineage, actor)
        draft_rows.set_status(connection, draft_id, "published")
        audit.record(
            connection,
            actor,
            "draft.publish",
            "generation",
            str(generation),
            {"draft": draft_id, "lineage": len(lineage), **events},
        )
    return {
        "generation": generation,
        **events,
        "lineage": [{"old_code": o, "new_code": n, "relation": r} for o, n, r in lineage],
        "warnings": summary["warnings"],
    }


def discard_draft(engine: Engine, draft_id: int, version: int, actor: str) -> dict[str, Any]:
    with engine.begin() as connection:
        lock(connection, draft_id, version)
        draft_rows.set_status(connection, draft_id, "discarded")
        audit.record(connection, actor, "draft.discard", "draft", str(draft_id), {})
        return draft_row(connection, draft_id)


def go_live(
    connection: Connection, generation: int, lineage: Lineage, actor: str
) -> dict[str, int]:
    """What every activation does, in the caller's transaction: activate, record the lineage,
    move open events onto the new grids, and flag those no grid covers any more."""
    activate(connection, generation, actor)
    draft_grids.record_lineage(connection, generation, lineage)
    moved = reassign_open_events(connection, generation)
    return {
        "events_reassigned": moved,
        "events_unplaced": unplace_stranded_events(connection, generation, actor),
    }


def reactivate(engine: Engine, generation: int, actor: str) -> dict[str, Any]:
    with engine.begin() as connection:
        lock_generations(connection)
        if not generation_exists(connection, generation):
            raise NotFound(
                f"没有第 {generation} 版网格",
                code="generation_not_found",
                where="path.generation_id",
            )
        events = go_live(connection, generation, [], actor)
        audit.record(
            connection, actor, "generation.activate", "generation", str(generation), events
        )
    return {"generation": generation, **events}
