"""`wangge gazetteer aliases list|add|remove`: the address aliases dispatchers teach the matcher,
without SQL (same rules and audit as the API: api/address_corrections.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api import address_corrections as service
from api.db.engine import make_engine
from api.errors import WanggeError
from api.settings import get_settings

# Piped into grep or a file, a row stays one line (rich would wrap cells at 80 columns).
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

OPTIONS = {  # the service's field → this command's argument or option, to name the one at fault
    "text": "TEXT",
    "target.kind": "--kind",
    "target.code": "--code",
    "event_id": "--event",
}


def register(app: typer.Typer) -> None:
    gazetteer = typer.Typer(help="地名地址库", no_args_is_help=True)
    aliases = typer.Typer(help="地址别名：调度员纠正地址时保存的说法 → 地点", no_args_is_help=True)
    app.add_typer(gazetteer, name="gazetteer")
    gazetteer.add_typer(aliases, name="aliases")
    aliases.command("list")(list_aliases)
    aliases.command("add")(add)
    aliases.command("remove")(remove)


def list_aliases(
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="最多列出多少条")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="跳过前多少条")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出")] = False,
) -> None:
    """列出地址别名（最新的在前）。"""
    aliases = _run(
        lambda engine: _read(
            engine, lambda connection: service.list_aliases(connection, limit, offset)
        )
    )
    answers = [service.public(alias) for alias in aliases]
    if as_json:
        typer.echo(orjson.dumps(answers).decode())
        return
    table = Table("编号", "说法", "规范化", "地点类型", "地点编码", "事件", "保存人", "保存时间")
    for alias in answers:
        table.add_row(
            str(alias["id"]),
            escape(alias["text"]),
            escape(alias["normalised"]),
            service.KIND_LABELS.get(alias["target"]["kind"], alias["target"]["kind"]),
            escape(alias["target"]["code"]),
            "" if alias["event_id"] is None else f"#{alias['event_id']}",
            escape(alias["created_by"] or ""),
            (alias["created_at"] or "")[:16].replace("T", " "),
        )
    console.print(table)
    console.print(f"共 {len(answers)} 条", highlight=False)


def add(
    text: Annotated[str, typer.Argument(help="说法，如 新翠居小区4栋")],
    kind: Annotated[
        str,
        typer.Option(help="地点类型：building、compound、house_number、road、poi、intersection"),
    ],
    code: Annotated[str, typer.Option(help="地点编码；路口为 道路编码+道路编码")],
    event: Annotated[
        int | None, typer.Option(min=1, max=2**63 - 1, help="来自哪个事件的纠正（可选）")
    ] = None,
) -> None:
    """保存一条地址别名：以后这种说法将匹配到给定地点。"""
    from api.db.gazetteer import load_gazetteer  # the matcher, only for this command
    from api.geocode.index import Gazetteer

    saved = _run(
        lambda engine: service.add_alias(
            engine,
            text=text,
            target_kind=kind,
            target_code=code,
            event_id=event,
            actor="cli:gazetteer aliases add",
            gazetteer=_read(engine, lambda c: Gazetteer.build(load_gazetteer(c))),
            where="",
        )
    )
    alias = saved.alias
    if alias is None:
        match = saved.match
        console.print(
            f"未保存：「{escape(text.strip())}」已能以 {match.confidence:.2f} 的把握匹配到"
            f"{service.KIND_LABELS.get(match.kind, match.kind)} {escape(match.code)}，无需别名",
            highlight=False,
        )
        return
    label = service.KIND_LABELS[alias["target_kind"]]
    verb = "已保存" if saved.created else "已存在（未改动）"
    console.print(
        f"{verb}地址别名 #{alias['id']}：「{escape(alias['text'])}」→ {label} "
        f"{escape(alias['target_code'])}",
        highlight=False,
    )


def remove(alias_id: Annotated[int, typer.Argument(help="别名编号（见 list）")]) -> None:
    """删除一条地址别名。"""
    _run(
        lambda engine: service.remove_alias(
            engine, alias_id, "cli:gazetteer aliases remove", where="ID"
        )
    )
    console.print(f"已删除地址别名 #{alias_id}", highlight=False)


def _read(engine: Any, query: Callable[[Any], Any]) -> Any:
    with engine.connect() as connection:
        return query(connection)


def _run(operation: Callable[[Any], Any]) -> Any:
    engine = make_engine(get_settings())
    try:
        return operation(engine)
    except WanggeError as error:
        _fail(OPTIONS.get(error.where or "", error.where or ""), error.message)
    finally:
        engine.dispose()


def _fail(option: str, message: str) -> NoReturn:
    prefix = f"[red]错误[/red]（{option}）" if option else "[red]错误[/red]"
    err.print(f"{prefix}：{escape(message)}", highlight=False)
    raise typer.Exit(1)
