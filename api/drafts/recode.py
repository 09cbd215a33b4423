"""Every level's code rule after an edit re-parents grids: recode what breaks it, or refuse.

A split, merge, parent change or a transfer that carries micro-grids whole gives grids a new
parent; under the default convention (codes extend their parent's code) their codes then point
at a grid they no longer belong to. They get the next free codes under the new parent (digits
extending it, never a code used in any generation, as `api.drafts.stats.next_codes`), coarsest
level first, so a recoded grid's own children are recoded under its new code in turn. Each
recode is a lineage step ("recode"). With `keep_codes` the edit is refused instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from api.codes import code_problem
from api.db import draft_grids
from api.db.catalogue import Level, grid_levels
from api.errors import Conflict, InvalidInput
from spatial.editing import HierarchyEdit

NAMED_IN_MESSAGE = 10


class CodeRuleBroken(Conflict):
    code = "code_rule"


def code_follows_rule(
    code: str, parent_code: str | None, level: Level, where: str = "body.code"
) -> None:
    """The same code rule as an import (api/codes.py)."""
    problem = code_problem(code, parent_code, level)
    if problem:
        raise InvalidInput(f"编码 {code!r}：{problem}", code="invalid_code", where=where)


def code_free(connection: Connection, generation: int, code: str, where: str) -> None:
    """A code given by hand must not be in the draft already (nor ever have been used)."""
    used = draft_grids.first_generation_of(connection, code)
    if used is not None:
        raise Conflict(
            f"编码 {code} 已被使用（第 {used} 版起），编码不可重复使用",
            code="code_taken",
            where=where,
        )


def _broken(edit: HierarchyEdit, levels: dict[str, Level], level: str | None) -> list[str]:
    """Re-parented (or new) grids, of `level` or of every level, whose code breaks the rule."""
    return [
        code
        for code in edit.reparented()
        if (level is None or edit.rows[code].level == level)
        and edit.rows[code].level in levels
        and code_problem(code, edit.rows[code].parent_code, levels[edit.rows[code].level])
    ]


def _refuse(edit: HierarchyEdit, levels: dict[str, Level], broken: list[str]) -> CodeRuleBroken:
    details = []
    for code in broken:
        row = edit.rows[code]
        details.append(
            {
                "code": code,
                "level": row.level,
                "parent_code": row.parent_code,
                "problem": code_problem(code, row.parent_code, levels[row.level]),
            }
        )
    named = "；".join(
        f"{code}（{levels[edit.rows[code].level].label_zh}，上级 {edit.rows[code].parent_code}）"
        f"{detail['problem']}"
        for code, detail in zip(broken[:NAMED_IN_MESSAGE], details, strict=False)
    )
    more = f" 等 {len(details)} 个网格" if len(details) > NAMED_IN_MESSAGE else ""
    return CodeRuleBroken(
        f"保留编码时不能这样修改：{len(details)} 个网格的编码会违反层级编码规则"
        f"（编码须符合本层级格式并以上级编码开头）：{named}{more}。取消“保留编码”（keep_codes）即可自动重新编码",
        where="body.keep_codes",
        details=details,
    )


def keep_code_rule(
    connection: Connection, generation: int, edit: HierarchyEdit, keep_codes: bool
) -> list[dict[str, Any]]:
    """Recode the grids this edit re-parented whose codes break their level's rule, and their
    descendants; returns what was recoded. `keep_codes`: refuse (409 code_rule) instead."""
    levels = {level.name: level for level in grid_levels(connection)}
    broken = _broken(edit, levels, None)
    if not broken:
        return []
    if keep_codes:
        raise _refuse(edit, levels, broken)
    recoded: list[dict[str, Any]] = []
    for level in sorted(levels.values(), key=lambda lv: lv.rank):
        broken = _broken(edit, levels, level.name)
        if not broken:
            continue
        # Their children must be in memory to follow the new codes (normally loaded already).
        for code, row in draft_grids.children_rows(connection, generation, broken).items():
            if code not in edit.removed:
                edit.rows.setdefault(code, row)
        by_parent: dict[str | None, list[str]] = {}
        for code in broken:
            by_parent.setdefault(edit.rows[code].parent_code, []).append(code)
        for parent, olds in sorted(by_parent.items(), key=lambda item: item[0] or ""):
            news = _free_codes(connection, generation, edit, parent, level, olds)
            for old, new in zip(olds, news, strict=True):
                edit.recode(old, new)
                recoded.append(
                    {"old_code": old, "new_code": new, "level": level.name, "parent_code": parent}
                )
    return recoded


def _free_codes(
    connection: Connection,
    generation: int,
    edit: HierarchyEdit,
    parent: str | None,
    level: Level,
    olds: list[str],
) -> list[str]:
    """The next free codes under `parent` for `olds` (in their order): digits extending the
    parent after its children's highest sequence number, skipping every code ever used."""
    prefix = parent or ""
    siblings = (
        set(draft_grids.child_codes(connection, generation, parent)) - edit.removed - set(olds)
    ) | {c for c in edit.children(prefix) if c not in olds}
    tails = [
        c[len(prefix) :] for c in siblings if c.startswith(prefix) and c[len(prefix) :].isdigit()
    ]
    width = max(len(t) for t in tails) if tails else _old_width(edit, olds[0], prefix)
    number = max((int(t) for t in tails), default=0)
    used = draft_grids.codes_used_under(connection, prefix) | set(edit.rows) | edit.removed
    codes: list[str] = []
    while len(codes) < len(olds):
        number += 1
        candidate = f"{prefix}{number:0{width}d}"
        if candidate in used:
            continue
        problem = code_problem(candidate, parent, level)
        if problem:
            raise CodeRuleBroken(
                f"无法为 {olds[len(codes)]} 自动生成上级 {parent} 下符合规则的新编码"
                f"（{candidate}：{problem}）：请先手动修改编码",
                where="body",
            )
        codes.append(candidate)
    return codes


def _old_width(edit: HierarchyEdit, old: str, prefix: str) -> int:
    """The sequence width of `old` under its former parent (else what the code length leaves)."""
    before = edit.before.get(old)
    former = before.parent_code if before is not None else None
    if former and old.startswith(former) and old[len(former) :].isdigit():
        return len(old) - len(former)
    return max(len(old) - len(prefix), 1)
