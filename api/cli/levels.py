"""`wangge levels list|add|set|remove`: the level catalogue without SQL (same rules as the admin
API: api/levels.py, writing through the schema owner's functions of migration 0009)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api import levels as service
from api.db.engine import make_engine
from api.errors import WanggeError
from api.settings import get_settings

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

OPTIONS = {  # the API's field → this command's option, to name the one at fault
    "name": "--rename",
    "rank": "--rank",
    "label_zh": "--label",
    "code_pattern": "--pattern",
    "code_extends_parent": "--extends-parent",
    "households_min": "--households-min",
    "households_max": "--households-max",
    "required_roles": "--required-role",
}

Rank = Annotated[int | None, typer.Option("--rank", help="排序：0 为最高层级，不能重复")]
Label = Annotated[str | None, typer.Option("--label", help="中文名称，如 网格")]
Pattern = Annotated[
    str | None, typer.Option("--pattern", help="编码规则（Python 正则表达式；空字符串表示不限）")
]
Extends = Annotated[
    bool | None,
    typer.Option("--extends-parent/--no-extends-parent", help="编码须以上级编码开头"),
]
Households = Annotated[str | None, typer.Option(help="户数（none 表示不设）")]
Roles = Annotated[
    list[str] | None, typer.Option("--required-role", help="本层级必需的人员角色（可重复）")
]


def register(app: typer.Typer) -> None:
    levels = typer.Typer(help="层级目录：名称、编码规则、户数范围、必需角色", no_args_is_help=True)
    app.add_typer(levels, name="levels")
    levels.command("list")(list_levels)
    levels.command("add")(add)
    levels.command("set")(set_level)
    levels.command("remove")(remove)


def list_levels(
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出")] = False,
) -> None:
    """列出全部层级（由高到低），及现行版本中各层级的网格数。"""
    engine = make_engine(get_settings())
    try:
        with engine.connect() as connection:
            levels = service.list_levels(connection)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(orjson.dumps(levels).decode())
        return
    table = Table(
        "排序", "名称", "中文名", "编码规则", "延续上级编码", "户数范围", "必需角色", "网格数"
    )
    for level in levels:
        low, high = level["households_min"], level["households_max"]
        table.add_row(
            str(level["rank"]),
            level["name"],
            level["label_zh"],
            escape(level["code_pattern"] or "（不限）"),
            "是" if level["code_extends_parent"] else "否",
            f"{'' if low is None else low}–{'' if high is None else high}"
            if low is not None or high is not None
            else "（不限）",
            "、".join(level["required_roles"]) or "—",
            f"{level['grids']:,}",
        )
    console.print(table)
    console.print(f"共 {len(levels)} 个层级", highlight=False)


def add(
    name: Annotated[str, typer.Argument(help="层级名（小写字母、数字、下划线）")],
    rank: Rank = None,
    label: Label = None,
    pattern: Pattern = None,
    extends_parent: Extends = None,
    households_min: Households = None,
    households_max: Households = None,
    required_role: Roles = None,
) -> None:
    """新增一个层级。"""
    values = _values(rank, label, pattern, extends_parent, households_min, households_max)
    values["name"] = name
    if required_role:
        values["required_roles"] = required_role
    level = _run(lambda engine: service.add_level(engine, values, "cli:levels add"))
    console.print(f"已新增层级 {level['name']}（{level['label_zh']}，排序 {level['rank']}）")


def set_level(
    name: Annotated[str, typer.Argument(help="要修改的层级名")],
    rename: Annotated[
        str | None, typer.Option("--rename", help="改名（仅限尚无网格使用的层级）")
    ] = None,
    rank: Rank = None,
    label: Label = None,
    pattern: Pattern = None,
    extends_parent: Extends = None,
    households_min: Households = None,
    households_max: Households = None,
    required_role: Roles = None,
    clear_roles: Annotated[
        bool, typer.Option("--clear-roles", help="本层级不再要求任何人员角色")
    ] = False,
) -> None:
    """修改一个层级（只改给出的选项）；现行版本或草稿中的网格不符合新规则时拒绝。"""
    values = _values(rank, label, pattern, extends_parent, households_min, households_max)
    if rename is not None:
        values["name"] = rename
    if required_role or clear_roles:
        values["required_roles"] = [] if clear_roles else required_role
    answer = _run(lambda engine: service.change_level(engine, name, values, "cli:levels set"))
    changed = answer["changed"]
    console.print(
        f"层级 {answer['name']}：" + (f"已修改 {'、'.join(changed)}" if changed else "没有变化"),
        highlight=False,
    )


def remove(name: Annotated[str, typer.Argument(help="要删除的层级名")]) -> None:
    """删除一个层级（任何版本中都没有网格使用时才可以）。"""
    _run(lambda engine: service.remove_level(engine, name, "cli:levels remove"))
    console.print(f"已删除层级 {name}")


def _values(
    rank: int | None,
    label: str | None,
    pattern: str | None,
    extends_parent: bool | None,
    households_min: str | None,
    households_max: str | None,
) -> dict[str, Any]:
    given = {
        "rank": rank,
        "label_zh": label,
        "code_pattern": pattern,
        "code_extends_parent": extends_parent,
    }
    values: dict[str, Any] = {f: value for f, value in given.items() if value is not None}
    for field, text in (("households_min", households_min), ("households_max", households_max)):
        if text is not None:
            values[field] = _households(field, text)
    return values


def _households(field: str, text: str) -> int | None:
    if text.strip().lower() in ("none", ""):
        return None
    try:
        return int(text)
    except ValueError:
        _fail(OPTIONS[field], f"{field}：户数须为整数或 none，而不是 {text}")


def _run(operation: Callable[[Any], Any]) -> Any:
    engine = make_engine(get_settings())
    try:
        return operation(engine)
    except WanggeError as error:
        place, _, field = (error.where or "").partition(".")
        for detail in error.details[:10]:
            err.print(f"  - {escape(_describe(detail))}", highlight=False)
        _fail(OPTIONS.get(field, "") if place == "body" else "", error.message)
    finally:
        engine.dispose()


def _describe(detail: dict[str, Any]) -> str:
    where = "、".join("现行版本" if w == "active" else f"草稿 {w[6:]}" for w in detail["where"])
    why = detail.get("problem") or (
        f"上级层级 {detail.get('parent_level') or '（无）'}，"
        f"应为 {detail.get('expected_parent_level') or '（无）'}"
    )
    return f"{detail['code']}（{where}）：{why}"


def _fail(option: str, message: str) -> NoReturn:
    prefix = f"[red]错误[/red]（{option}）" if option else "[red]错误[/red]"
    err.print(f"{prefix}：{escape(message)}", highlight=False)
    raise typer.Exit(1)
