"""Rebase a draft onto the generation that became active since it began (issue 16 §4).

Three generations: the draft's base B, the active A, and the draft's own D (B + its edits).
What a side changed is the codes whose rows differ from B (copy-on-write: a row shared with B
is unchanged, and so is a copy with the same content). The rebase rewrites D as A + the draft's
changes:
- a code only the active side changed gets A's row; one only the draft changed keeps D's row;
- a code both changed alike is agreed; where one side only inserted vertices (same outline, same
  attributes) the other side's change is taken, and vertices are healed where the sides meet;
- anything else is a conflict, reported per grid: both changed it; the draft's grid needs a parent
  the active side removed; the draft's grid overlaps a grid the active side changed. Nothing
  changes until each has a resolution: "draft" keeps the draft's change (and leaves out the
  grids the active side made from that one: split halves, a merge result), "active" drops the
  draft's change (and the grids the draft made from it). The coverage check of the result is the
  backstop for everything a row-level merge cannot see; it is run and reported.
Then base_generation moves to A and the rebase is one edit in the log. Undo stops at it: the
edits before it kept rows of B, and putting those back would revert the other publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import shapely
from sqlalchemy import Connection, Engine

from api.coverage import run_check
from api.db import draft_grids
from api.db import drafts as draft_rows
from api.db.drafts import Draft
from api.db.versioning import active_or_none, lock_generations
from api.drafts import rebase_rows as cmp
from api.drafts.versions import Lineage, compose_lineage, lock, log_new_version
from api.errors import Conflict, InvalidInput
from spatial.cleanup import vertices_inserted
from spatial.coverage import CheckOptions
from spatial.grids import GridRow

Choice = Literal["draft", "active"]
OVERLAP_M2 = 1.0  # a draft grid overlapping a grid the active side changed by more: conflict


@dataclass
class Sides:
    """Rows of every code either side changed, in B, A and D, and each side's lineage."""

    base: dict[str, GridRow]
    active: dict[str, GridRow]
    draft: dict[str, GridRow]
    drafted: set[str]  # codes the draft changed
    activated: set[str]  # codes the active side changed
    draft_pairs: Lineage
    active_pairs: Lineage
    draft_groups: list[set[str]]  # the codes of each of the draft's edits
    active_groups: list[set[str]]  # the same for the drafts published since the base
    active_codes: set[str]  # every code of A
    draft_codes: set[str]  # every code of D
    take_draft: set[str] = field(default_factory=set)
    take_active: set[str] = field(default_factory=set)
    merged: dict[str, GridRow] = field(default_factory=dict)  # both sides' columns in one row

    def mine(self, code: str) -> GridRow | None:
        """The row the draft side brings for `code`: merged with the active side's columns."""
        return self.merged.get(code) or self.draft.get(code)


def load_sides(connection: Connection, draft: Draft, active: int) -> Sides:
    base, own = draft.base_generation, draft.generation_id
    in_draft = draft_rows.differing_codes(connection, base, own)
    in_active = draft_rows.differing_codes(connection, base, active)
    codes = sorted(set(in_draft) | set(in_active))
    b = draft_rows.rows_in(connection, base, codes)
    a = draft_rows.rows_in(connection, active, codes)
    d = draft_rows.rows_in(connection, own, codes)
    steps = [[tuple(s) for s in (e or [])] for e in draft_rows.live_lineages(connection, draft.id)]
    draft_codes = set(draft_grids.codes_in(connection, own))
    return Sides(
        base=b,
        active=a,
        draft=d,
        drafted={c for c in in_draft if not cmp.same_row(b.get(c), d.get(c))},
        activated={c for c in in_active if not cmp.same_row(b.get(c), a.get(c))},
        draft_pairs=compose_lineage(steps, [], draft_codes),
        active_pairs=draft_rows.lineage_since(connection, base),
        draft_groups=draft_rows.edit_groups(connection, draft.id),
        active_groups=[
            group
            for published in draft_rows.drafts_published_since(connection, base)
            for group in draft_rows.edit_groups(connection, published)
        ],
        active_codes=set(draft_grids.codes_in(connection, active)),
        draft_codes=draft_codes,
    )


def _conflict(s: Sides, code: str, kind: str, other: str | None = None) -> dict[str, Any]:
    row = s.draft.get(code) or s.active.get(code) or s.base[code]
    theirs = other or code
    return {
        "code": code,
        "name": row.name,
        "level": row.level,
        "kind": kind,
        "other_code": other,
        "draft": cmp.change(code, s.base.get(code), s.draft.get(code), s.draft_pairs),
        "active": {
            "code": theirs,
            **cmp.change(theirs, s.base.get(theirs), s.active.get(theirs), s.active_pairs),
        },
        "base_area_m2": cmp.area(s.base.get(code)),
    }


def find_conflicts(s: Sides) -> dict[str, dict[str, Any]]:
    """Sort every changed code into take_draft / take_active, and return the conflicts."""
    conflicts: dict[str, dict[str, Any]] = {}
    for code in sorted(s.drafted | s.activated):
        b, a, d = s.base.get(code), s.active.get(code), s.draft.get(code)
        merged = cmp.merged_row(b, a, d) if code in s.drafted and code in s.activated else None
        if code not in s.activated:
            s.take_draft.add(code)
        elif code not in s.drafted:
            s.take_active.add(code)
        elif cmp.same_row(a, d):
            continue  # agreed: D already holds it
        elif merged is not None:
            s.merged[code] = merged
            s.take_draft.add(code)
        else:
            conflicts[code] = _conflict(s, code, "both_changed")

    def in_result(code: str) -> bool:
        if code in s.take_draft or code in conflicts:
            return code in s.draft_codes
        return code in s.active_codes

    for code in sorted(s.take_draft):
        row = s.mine(code)
        parent = row.parent_code if row else None
        if parent and not in_result(parent) and parent in s.draft_codes:
            conflicts[code] = _conflict(s, code, "parent_removed", parent)
    # Only outlines moved by both sides can overlap: the draft's against the active side's.
    theirs = [
        c
        for c in sorted(s.take_active | set(s.merged))
        if c in s.active and cmp.moved(s.base.get(c), s.active[c])
    ]
    tree = shapely.STRtree([s.active[c].geom for c in theirs])
    for code in sorted(s.take_draft - set(conflicts)):
        mine = s.draft.get(code)
        if mine is None or not cmp.moved(s.base.get(code), mine):
            continue
        for index in tree.query(mine.geom, predicate="intersects"):
            other = s.active[theirs[int(index)]]
            if other.level != mine.level or other.code == code:
                continue
            overlap = mine.geom.intersection(other.geom)
            if not overlap.is_empty and cmp.m2(overlap) > OVERLAP_M2:
                conflicts[code] = _conflict(s, code, "overlap", other.code)
                break
    return conflicts


def _resolve(
    s: Sides, conflicts: dict[str, dict[str, Any]], resolutions: dict[str, Choice]
) -> dict[str, list[str]]:
    """Apply the planner's choices to take_draft / take_active; what each choice affected."""
    for code in resolutions:
        if code not in conflicts:
            raise InvalidInput(
                f"{code[:64]} 不是变基冲突中的网格（冲突：{'、'.join(sorted(conflicts)[:20]) or '无'}）",
                code="unknown_conflict",
                where=f"body.resolutions.{code[:64]}",
            )
    open_ = sorted(c for c in conflicts if c not in resolutions)
    if open_:
        raise Conflict(
            f"变基发现 {len(conflicts)} 处冲突（{len(open_)} 处未解决），草稿未改动："
            "请逐个选择保留草稿的修改或采用现行版本",
            code="rebase_conflicts",
            details=[{**c, "resolution": resolutions.get(k)} for k, c in conflicts.items()],
        )
    affected: dict[str, list[str]] = {}
    for code, choice in sorted(resolutions.items()):
        if choice == "active":  # the draft's change goes, with what the draft made from it
            found = cmp.together({code}, s.draft_pairs, s.draft_groups, s.drafted)
        else:  # the active side's change goes (and that of the grid it overlaps or removed)
            other = conflicts[code]["other_code"]
            seeds = {code} | ({other} & s.activated if other else set())
            found = cmp.together(seeds, s.active_pairs, s.active_groups, s.activated)
        affected[code] = sorted(found)
    drop = {c for k, v in affected.items() if resolutions[k] == "active" for c in v}
    keep = {c for k, v in affected.items() if resolutions[k] == "draft" for c in v}
    both = sorted(drop & keep)
    if both:
        raise InvalidInput(
            f"这些网格既要保留草稿又要保留现行版本：{'、'.join(both[:20])}",
            code="resolutions_contradict",
            where="body.resolutions",
        )
    s.take_draft = (s.take_draft | keep) - drop
    s.take_active = (s.take_active | drop) - keep
    return affected


def _heal(s: Sides) -> dict[str, GridRow]:
    """Where rows from the two sides meet, each gets the other side's vertices on its edges
    (no T-junctions); the rows that changed. A side's own rows already match each other."""
    mine = {c: row for c in s.take_draft if (row := s.mine(c)) is not None}
    theirs = {c: s.active[c] for c in s.take_active if c in s.active}
    merged = {c: row for c, row in s.merged.items() if c in mine}  # may hold A's outline
    plain = {c: row for c, row in mine.items() if c not in merged}
    healed: dict[str, GridRow] = {}
    for rows, other in ((mine, theirs), (theirs, mine), (merged, plain)):
        if not rows or not other:
            continue
        fresh = {tuple(p) for r in other.values() for p in shapely.get_coordinates(r.geom)}
        levels = {r.level for r in other.values()}
        current = {c: healed.get(c, row) for c, row in rows.items()}
        for code, geometry in vertices_inserted(current, levels, fresh).items():
            healed[code] = GridRow(**{**vars(current[code]), "geom": geometry})
    return healed


REVERSED = {
    "split": "merge",
    "merge": "split",
    "recode": "recode",
    "create": "delete",
    "delete": "create",
}


def _lineage(
    s: Sides, dropped: set[str], reverted: set[str], final: set[str]
) -> list[list[str | None]]:
    """The draft's lineage relative to A: the active side's steps a "draft" resolution turned
    back (its split halves merge again), then the draft's steps that survived (a base code A
    lacks makes a creation)."""
    kept: list[list[str | None]] = []
    for old, new, relation in s.active_pairs:
        back = relation in REVERSED and bool({old, new} & reverted)
        if back and (new is None or new in s.active_codes) and (old is None or old in final):
            kept.append([new, old, REVERSED[relation]])
    mine = [
        (old, new, relation)
        for old, new, relation in s.draft_pairs
        if not (old in dropped or new in dropped or (relation == "delete" and old in final))
    ]
    kept += [list(pair) for pair in cmp.onto(mine, s.active_pairs, s.active_codes, final)]
    return kept


def _listed(s: Sides, codes: set[str], rows: dict[str, GridRow], pairs: Lineage) -> list[dict]:
    return [
        {
            "code": c,
            "level": (rows.get(c) or s.base[c]).level,
            **cmp.change(c, s.base.get(c), rows.get(c), pairs),
        }
        for c in sorted(codes)
    ]


def rebase_in(
    connection: Connection,
    draft: Draft,
    active: int,
    resolutions: dict[str, Choice],
    actor: str,
    check: bool = True,
) -> dict[str, Any]:
    """Rebase in the caller's transaction (generations and the draft row locked): 409
    rebase_conflicts while a conflict is unresolved, else rewrite D, log, check (unless
    check=False: the diff's preview, in a savepoint it rolls back)."""
    s = load_sides(connection, draft, active)
    conflicts = find_conflicts(s)
    affected = _resolve(s, conflicts, resolutions)
    healed = _heal(s)
    own = draft.generation_id
    written = set()
    for code in sorted(s.take_active):
        row = healed.get(code) or s.active.get(code)
        if cmp.same_row(row, s.draft.get(code)):
            continue
        if row is None:
            draft_grids.drop(connection, own, code)
        else:
            draft_grids.write(connection, own, row)
        written.add(code)
    for code in sorted((set(healed) | set(s.merged)) & s.take_draft):
        row = healed.get(code) or s.mine(code)
        if row is not None:  # healed and merged rows always are
            draft_grids.write(connection, own, row)
            written.add(code)
    dropped = {c for v in affected.values() for c in v} & (s.drafted - s.take_draft)
    reverted = {c for k, v in affected.items() if resolutions[k] == "draft" for c in v}
    final = set(draft_grids.codes_in(connection, own))
    carried = s.take_draft & s.drafted - set(s.merged)
    details = {
        "from_generation": draft.base_generation,
        "to_generation": active,
        "carried": sorted(carried),
        "merged": sorted(set(s.merged) & s.take_draft),
        "from_active": sorted(s.take_active & s.activated),
        "resolutions": dict(sorted(resolutions.items())),
        "dropped": sorted(dropped),
        "healed": sorted(healed),
        "groups": cmp.components(s.draft_groups, s.take_draft & s.drafted),
        "lineage": _lineage(s, dropped, reverted, final),
    }
    draft_rows.move_base(connection, draft.id, active)
    version = log_new_version(
        connection, draft, "rebase", sorted(written | carried), details, actor
    )
    summary = run_check(connection, own, CheckOptions())["summary"] if check else None
    return {
        "draft_id": draft.id,
        "version": version,
        "rebased": True,
        "from_generation": draft.base_generation,
        "base_generation": active,
        "carried": _listed(s, carried, s.draft, s.draft_pairs),
        "merged": [
            {
                "code": c,
                "level": row.level,
                "draft": cmp.change(c, s.base.get(c), s.draft.get(c), s.draft_pairs),
                "active": cmp.change(c, s.base.get(c), s.active.get(c), s.active_pairs),
            }
            for c, row in sorted(s.merged.items())
            if c in s.take_draft
        ],
        "from_active": _listed(s, s.take_active & s.activated, s.active, s.active_pairs),
        "resolved": [
            {"code": c, "resolution": resolutions[c], "grids": affected[c]}
            for c in sorted(resolutions)
        ],
        "healed": sorted(healed),
        "check": {k: summary[k] for k in ("errors", "warnings", "by_kind")} if summary else None,
    }


def rebase_draft(
    engine: Engine, draft_id: int, version: int, resolutions: dict[str, Choice], actor: str
) -> dict[str, Any]:
    """POST /drafts/{id}/rebase: nothing to do when the draft is based on the active generation."""
    with engine.begin() as connection:
        lock_generations(connection)  # the same order as publish: generations, then the draft
        draft = lock(connection, draft_id, version)
        active = active_or_none(connection)
        if active is None or active == draft.base_generation:
            if resolutions:
                raise InvalidInput(
                    f"草稿已基于现行的第 {draft.base_generation} 版，没有冲突可解决",
                    code="unknown_conflict",
                    where=f"body.resolutions.{next(iter(resolutions))[:64]}",
                )
            return {
                "draft_id": draft.id,
                "version": draft.version,
                "rebased": False,
                "from_generation": draft.base_generation,
                "base_generation": draft.base_generation,
                "carried": [],
                "merged": [],
                "from_active": [],
                "resolved": [],
                "healed": [],
                "check": None,
            }
        return rebase_in(connection, draft, active, resolutions, actor)
