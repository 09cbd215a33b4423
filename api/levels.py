"""Levels as data, changed without SQL: the one service behind the admin API and `wangge levels`.

A change is validated against the grids already stored, then written and audited in one
transaction by the schema owner's functions (migration 0009: the service role has no write right
on the catalogue itself). Changes are serialised by an advisory lock, so each validates against
the last:
- a code rule (code_pattern, code_extends_parent) that a grid of the active generation or of an
  open draft breaks is refused (409 code_rule_broken: how many, and examples);
- ranks keep the hierarchy: every grid's parent stays at the next coarser level, and grids
  without a parent stay at the top (409 hierarchy_broken). Ranks are used only for their order
  (the lookup index sorts by it), and any rank change this allows keeps the order of the levels
  grids use, so the lookup index needs no rebuild;
- a level any generation's grids use cannot be removed or renamed (409 level_in_use): renaming
  would rewrite history, OGC collection ids and exported files;
- patterns are bounded against catastrophic backtracking (api/code_patterns.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, ProgrammingError

from api.code_patterns import pattern_problem
from api.codes import code_problem
from api.db import catalogue as rows
from api.errors import Conflict, InvalidInput, NotFound, WanggeError

FIELDS = (*rows.LEVEL_COLUMNS, "required_roles")
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_RANK = 1000
MAX_LABEL = 32
MAX_HOUSEHOLDS = 10_000_000
EXAMPLES = 10


class CatalogueReadOnly(WanggeError):
    """The database has no level_admin_* functions yet (schema older than migration 0009)."""

    status = 503
    code = "catalogue_read_only"


# --- validation of values ---------------------------------------------------------------


def _invalid(field: str, message: str, code: str = "invalid_level") -> InvalidInput:
    return InvalidInput(f"{field}：{message}", code=code, where=f"body.{field}")


def _checked_value(field: str, value: Any) -> Any:
    """One field's value, checked alone (what needs the database or other fields comes later)."""
    if field == "name":
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise _invalid(
                field, "层级名须以小写字母开头，只含小写字母、数字和下划线，最长 32 个字符"
            )
        return value
    if field == "rank":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RANK:
            raise _invalid(field, f"排序须为 0 到 {MAX_RANK} 的整数（0 为最高层级）")
        return value
    if field == "label_zh":
        label = value.strip() if isinstance(value, str) else ""
        if not label or len(label) > MAX_LABEL:
            raise _invalid(field, f"中文名称不能为空，最长 {MAX_LABEL} 个字符")
        return label
    if field == "code_pattern":
        if value is None or value == "":
            return None  # no code rule at this level
        if not isinstance(value, str):
            raise _invalid(field, "编码规则须为正则表达式字符串", "invalid_pattern")
        problem = pattern_problem(value)
        if problem:
            raise _invalid(field, problem, "invalid_pattern")
        return value
    if field == "code_extends_parent":
        if not isinstance(value, bool):
            raise _invalid(field, "须为 true 或 false")
        return value
    if field in ("households_min", "households_max"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(field, "户数须为整数")
        if not 0 <= value <= MAX_HOUSEHOLDS:
            raise _invalid(field, f"户数须在 0 到 {MAX_HOUSEHOLDS} 之间")
        return value
    if field == "required_roles":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _invalid(field, "须为角色名列表")
        return sorted(set(value))
    raise InvalidInput(f"未知字段 {field}", code="unknown_field", where=f"body.{field}")


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    return {field: _checked_value(field, value) for field, value in values.items()}


def _check_band(level: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    low, high = level["households_min"], level["households_max"]
    if low is not None and high is not None and low > high:
        field = "households_min" if "households_min" in given else "households_max"
        raise _invalid(field, f"户数下限 {low} 不能大于上限 {high}", "invalid_range")


# --- validation against the database ------------------------------------------------------


def _check_roles(
    connection: Connection, level: str, roles: list[str], before: str | None = None
) -> None:
    known = rows.role_levels(connection)
    unknown = [role for role in roles if role not in known]
    if unknown:
        raise InvalidInput(
            f"required_roles：没有名为 {'、'.join(unknown)} 的人员角色"
            f"（已有：{'、'.join(sorted(known))}）",
            code="unknown_role",
            where="body.required_roles",
        )
    elsewhere = [r for r in roles if known[r] is not None and known[r] not in (level, before)]
    if elsewhere:
        role = elsewhere[0]
        raise Conflict(
            f"required_roles：角色 {role} 已是 {known[role]} 层级的必需角色"
            f"（一个角色只属于一个层级），请先从 {known[role]} 层级去掉",
            code="role_required_elsewhere",
            where="body.required_roles",
        )


def _parent_of(level: str, ranks: Mapping[str, int]) -> str | None:
    """The next coarser level under `ranks` (None at the top)."""
    if level not in ranks:
        return None
    above = [name for name, rank in ranks.items() if rank < ranks[level]]
    return max(above, key=lambda name: ranks[name]) if above else None


def _merge_finding(found: dict[str, dict[str, Any]], code: str, place: str, **facts: Any) -> None:
    if code in found:
        found[code]["where"].append(place)
    else:
        found[code] = {"code": code, **facts, "where": [place]}


def _check_hierarchy(connection: Connection, before: dict[str, int], after: dict[str, int]) -> None:
    """Refuse an order of levels that puts a stored grid's parent (or its lack of one) out of
    place where it was in place before."""
    found: dict[str, dict[str, Any]] = {}
    for generation, place in rows.checked_generations(connection):
        for grid in rows.parent_levels(connection, generation):
            expected = _parent_of(grid.level, after)
            if expected == grid.parent_level or _parent_of(grid.level, before) != grid.parent_level:
                continue
            _merge_finding(
                found,
                grid.code,
                place,
                level=grid.level,
                parent_level=grid.parent_level,
                expected_parent_level=expected,
            )
    if found:
        examples = list(found.values())[:EXAMPLES]
        first = examples[0]
        why = (
            f"它没有上级，而 {first['expected_parent_level']} 将排在 {first['level']} 之上"
            if first["parent_level"] is None
            else f"其上级属 {first['parent_level']} 层级，而紧邻的上一层级将是 "
            f"{first['expected_parent_level'] or '（无）'}"
        )
        raise Conflict(
            f"rank：新的排序会打乱 {len(found)} 个网格的层级关系（现行版本或未发布的草稿中），"
            f"例如 {first['code']}：{why}",
            code="hierarchy_broken",
            where="body.rank",
            details=examples,
        )


def _rule_breakers(
    connection: Connection, level: dict[str, Any], generation: int
) -> list[dict[str, Any]]:
    """The grids of `generation` at `level` whose code breaks its rule: code, parent, problem."""
    found = []
    for grid in rows.codes_at_level(connection, level["name"], generation):
        problem = code_problem(grid.code, grid.parent_code, level)
        if problem:
            found.append(
                {
                    "code": grid.code,
                    "level": level["name"],
                    "parent_code": grid.parent_code,
                    "problem": problem,
                }
            )
    return found


def _check_code_rule(connection: Connection, level: dict[str, Any], field: str) -> None:
    """Refuse a code rule that a grid of the active generation or an open draft breaks."""
    found: dict[str, dict[str, Any]] = {}
    for generation, place in rows.checked_generations(connection):
        for grid in _rule_breakers(connection, level, generation):
            _merge_finding(
                found,
                grid["code"],
                place,
                parent_code=grid["parent_code"],
                problem=grid["problem"],
            )
    if found:
        examples = list(found.values())[:EXAMPLES]
        raise Conflict(
            f"{field}：现行版本或未发布的草稿中有 {len(found)} 个 {level['name']} 网格不符合新的"
            f"编码规则，例如 {'、'.join(e['code'] for e in examples)}",
            code="code_rule_broken",
            where=f"body.{field}",
            details=examples,
        )


def code_rule_violations(connection: Connection, generation: int) -> list[dict[str, Any]]:
    """Every grid of `generation` whose code breaks its level's rule as the catalogue stands
    now (read from the table, not the cache): code, level, parent_code, problem. A level change
    is checked against the active generation and open drafts only; an older generation may
    break a rule set since, so re-activating one should check it first."""
    return [
        grid
        for level in rows.level_rows(connection)
        if level["code_pattern"]
        for grid in _rule_breakers(connection, level, generation)
    ]


def refuse_code_rule_violations(connection: Connection, generation: int) -> None:
    """409 code_rule_broken (where path.generation_id, details: up to EXAMPLES grids) when
    `generation`'s codes break the levels' rules as they stand now. Takes the level-change lock
    until the caller's transaction ends, so no rule changes between this check and the commit
    of what the caller does with the generation (e.g. re-activating it)."""
    rows.lock_levels(connection)
    found = code_rule_violations(connection, generation)
    if found:
        examples = found[:EXAMPLES]
        raise Conflict(
            f"第 {generation} 版有 {len(found)} 个网格不符合现行的层级编码规则，"
            f"例如 {'、'.join(e['code'] for e in examples)}：请先修改层级编码规则"
            "（wangge levels set 或 PATCH /api/v1/levels/{name}）再启用",
            code="code_rule_broken",
            where="path.generation_id",
            details=examples,
        )


# --- the operations -------------------------------------------------------------------------


def list_levels(connection: Connection) -> list[dict[str, Any]]:
    """Every level, coarsest first: its columns, `required_roles`, `grids` (in the active
    generation) and `used` (by any generation: it cannot be removed or renamed)."""
    return rows.level_rows(connection)


def add_level(engine: Engine, values: Mapping[str, Any], actor: str) -> dict[str, Any]:
    given = _checked(values)
    for field in ("name", "rank", "label_zh"):
        if field not in given:
            raise InvalidInput(f"{field}：必须给出", code="missing_field", where=f"body.{field}")
    level = {
        "code_pattern": None,
        "code_extends_parent": True,
        "households_min": None,
        "households_max": None,
        "required_roles": [],
        **given,
    }
    _check_band(level, given)

    def change(connection: Connection, levels: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if level["name"] in levels:
            raise Conflict(
                f"name：已有名为 {level['name']} 的层级", code="level_exists", where="body.name"
            )
        _check_rank_free(levels, level["rank"], level["name"])
        _check_roles(connection, level["name"], level["required_roles"])
        ranks = {name: lv["rank"] for name, lv in levels.items()}
        _check_hierarchy(connection, ranks, {**ranks, level["name"]: level["rank"]})
        roles = level["required_roles"]
        rows.save_level(connection, actor, "level.add", None, level, roles, {"after": level})
        return _answer(connection, level["name"])

    return _changing(engine, change)


def change_level(
    engine: Engine, name: str, changes: Mapping[str, Any], actor: str
) -> dict[str, Any]:
    given = _checked(changes)
    if not given:
        raise InvalidInput("没有要修改的字段", code="nothing_to_change", where="body")

    def change(connection: Connection, levels: dict[str, dict[str, Any]]) -> dict[str, Any]:
        before = _existing(levels, name)
        level = {**before, **given}
        _check_band(level, given)
        changed = sorted(f for f in given if given[f] != before[f])
        if "name" in changed:
            if level["name"] in levels:
                raise Conflict(
                    f"name：已有名为 {level['name']} 的层级", code="level_exists", where="body.name"
                )
            if before["used"]:
                raise Conflict(
                    f"name：层级 {name} 已有网格使用（含历史版本），不能改名；"
                    "可修改其中文名称 label_zh",
                    code="level_in_use",
                    where="body.name",
                )
        if "rank" in changed:
            _check_rank_free(levels, level["rank"], name)
            ranks = {n: lv["rank"] for n, lv in levels.items()}
            _check_hierarchy(connection, ranks, {**ranks, name: level["rank"]})
        if "required_roles" in changed:
            _check_roles(connection, level["name"], level["required_roles"], before=name)
        rule = [f for f in ("code_pattern", "code_extends_parent") if f in changed]
        if rule and level["code_pattern"] is not None:
            _check_code_rule(connection, {**level, "name": name}, rule[0])
        if not changed:
            return {**_answer(connection, name), "changed": []}
        rows.save_level(
            connection,
            actor,
            "level.change",
            name,
            level,
            level["required_roles"] if "required_roles" in changed else None,
            {
                "changed": changed,
                "before": {f: before[f] for f in changed},
                "after": {f: level[f] for f in changed},
            },
        )
        return {**_answer(connection, level["name"]), "changed": changed}

    return _changing(engine, change)


def remove_level(engine: Engine, name: str, actor: str) -> None:
    def change(connection: Connection, levels: dict[str, dict[str, Any]]) -> None:
        before = _existing(levels, name)
        if before["used"]:
            raise Conflict(
                f"层级 {name} 已有网格使用（含历史版本），不能删除",
                code="level_in_use",
                where="path.name",
            )
        rows.remove_level(connection, actor, name, {"before": before})

    _changing(engine, change)


# --- helpers --------------------------------------------------------------------------------


def _changing(
    engine: Engine, change: Callable[[Connection, dict[str, dict[str, Any]]], Any]
) -> Any:
    """Run `change` in one transaction under the level lock, then forget this process's cached
    catalogue (the owner's functions NOTIFY the other processes at commit)."""
    try:
        with engine.begin() as connection:
            rows.lock_levels(connection)
            levels = {level["name"]: level for level in rows.level_rows(connection)}
            answer = change(connection, levels)
    except ProgrammingError as error:
        if getattr(error.orig, "pgcode", None) in ("42883", "42501"):  # no function, no right
            raise CatalogueReadOnly(
                "数据库结构尚未升级到可修改层级的版本：请先运行 wangge migrate"
            ) from error
        raise
    except IntegrityError as error:  # a change made meanwhile by hand in SQL
        raise Conflict("层级目录刚被其他操作修改，请重试", code="level_conflict") from error
    finally:
        rows.forget_levels()
    return answer


def _existing(levels: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    level = levels.get(name)
    if level is None:
        raise NotFound(
            f"没有名为 {name} 的层级（已有：{'、'.join(levels)}）",
            code="level_not_found",
            where="path.name",
        )
    return level


def _check_rank_free(levels: dict[str, dict[str, Any]], rank: int, name: str) -> None:
    taken = next((n for n, lv in levels.items() if lv["rank"] == rank and n != name), None)
    if taken is not None:
        raise Conflict(
            f"rank：排序 {rank} 已被层级 {taken} 使用（排序不能重复）",
            code="rank_taken",
            where="body.rank",
        )


def _answer(connection: Connection, name: str) -> dict[str, Any]:
    return next(level for level in rows.level_rows(connection) if level["name"] == name)
