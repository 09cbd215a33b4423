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
from api.drafts.rebase import rebase_in
from api.drafts.rebase_rows import onto
from api.drafts.versions import (
    Lineage,
    compose_lineage,
    draft_by_id,
    draft_row,
    lock,
    register_draft,
)
from api.errors import Conflict, NotFound
from api.levels import refuse_code_rule_violations
from spatial.coverage import CheckOptions
from spatial.editing import SAME_GEOMETRY_DEG


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


def _lineage(connection: Connection, draft: Draft, replaced: int | None) -> Lineage:
    """Old code → new code relative to the generation the publish replaces. That is the
    draft's base, except with replace_newer: then the steps from the base are carried onto
    the replaced generation (a base grid it recoded continues under its code there)."""
    steps = [
        [tuple(step) for step in (edit or [])]
        for edit in draft_rows.live_lineages(connection, draft.id)
    ]
    new, old = draft.generation_id, draft.base_generation
    redrawn = draft_grids.redrawn_codes(connection, old, new, SAME_GEOMETRY_DEG)
    final = set(draft_grids.codes_in(connection, new))
    pairs = compose_lineage(steps, redrawn, final)
    if replaced is not None and replaced != old:
        before = set(draft_grids.codes_in(connection, replaced))
        pairs = onto(pairs, draft_rows.lineage_since(connection, old), before, final)
        return explain_all(pairs, before, final)
    return explain_all(pairs, set(draft_grids.codes_in(connection, old)), final)


def explain_all(pairs: Lineage, before: set[str], after: set[str]) -> Lineage:
    """Every code that leaves or arrives has a lineage row: what no step explains (a grid put
    back by a rebase resolution) is a plain 'delete' or 'create'."""
    olds = {o for o, _, _ in pairs}
    news = {n for _, n, _ in pairs}
    extra: Lineage = [(c, None, "delete") for c in sorted(before - after - olds)]
    extra += [(None, c, "create") for c in sorted(after - before - news)]
    return sorted(pairs + extra, key=lambda p: (p[0] or "", p[1] or "", p[2]))


def _refuse_unless_clean(summary: dict[str, Any], acknowledge_warnings: bool, note: str) -> None:
    if summary["errors"]:
        raise Conflict(
            f"{note}覆盖检查发现 {summary['errors']} 个错误，不能发布",
            code="coverage_errors",
            details=[{"by_kind": summary["by_kind"]}],
        )
    if summary["warnings"] and not acknowledge_warnings:
        raise Conflict(
            f"{note}覆盖检查有 {summary['warnings']} 个提示，确认后（acknowledge_warnings=true）再发布",
            code="warnings_not_acknowledged",
            details=[{"by_kind": summary["by_kind"]}],
        )


def publish_draft(
    engine: Engine,
    draft_id: int,
    version: int,
    acknowledge_warnings: bool,
    actor: str,
    replace_newer: bool = False,
) -> dict[str, Any]:
    """Coverage check, then one transaction: activate, lineage, re-assign open events.

    When another generation became active since the draft began, the draft is rebased onto it
    first, in the same transaction: a conflict (409 rebase_conflicts, per grid) or a result
    that fails the check refuses the publish and leaves the draft exactly as it was.
    replace_newer=true publishes the draft as it is instead, over the newer generation.
    """
    summary: dict[str, Any] | None = None
    with engine.connect() as connection:
        draft = draft_by_id(connection, draft_id)
        if replace_newer or active_or_none(connection) == draft.base_generation:
            summary = run_check(connection, draft.generation_id, CheckOptions())["summary"]
    if summary is not None:  # checked before taking the lock, as it is slow
        _refuse_unless_clean(summary, acknowledge_warnings, "")
    with engine.begin() as connection:
        lock_generations(connection)
        draft = lock(connection, draft_id, version)
        generation = draft.generation_id
        active = active_or_none(connection)
        rebased = None
        if active is not None and active != draft.base_generation and not replace_newer:
            rebased = rebase_in(connection, draft, active, {}, actor)
            draft = draft_by_id(connection, draft_id)
            note = f"已自动变基到第 {active} 版（未保存）："
            _refuse_unless_clean(rebased["check"], acknowledge_warnings, note)
            summary = rebased["check"]
        elif summary is None:  # the draft's base became active again meanwhile
            summary = run_check(connection, generation, CheckOptions())["summary"]
            _refuse_unless_clean(summary, acknowledge_warnings, "")
        lineage = _lineage(connection, draft, active)
        events = go_live(connection, generation, lineage, actor)
        draft_rows.set_status(connection, draft_id, "published")
        audit.record(
            connection,
            actor,
            "draft.publish",
            "generation",
            str(generation),
            {"draft": draft_id, "lineage": len(lineage), "rebased": rebased is not None, **events},
        )
    return {
        "generation": generation,
        **events,
        "lineage": [{"old_code": o, "new_code": n, "relation": r} for o, n, r in lineage],
        "warnings": summary["warnings"],
        "rebase": rebased,
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
        # Its codes were checked against the rules of its day: a rule changed since must hold.
        refuse_code_rule_violations(connection, generation)
        events = go_live(connection, generation, [], actor)
        audit.record(
            connection, actor, "generation.activate", "generation", str(generation), events
        )
    return {"generation": generation, **events}
