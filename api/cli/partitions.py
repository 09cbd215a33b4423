"""`wangge events partitions`: the monthly partitions of the event table, their rows, and the
months ahead (cron-able; intake also creates a missing month itself)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from api.db import partitions as event_partitions
from api.db.engine import make_engine
from api.settings import get_settings

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    events = typer.Typer(help="事件表：按月分区", no_args_is_help=True)
    app.add_typer(events, name="events")
    events.command("partitions")(partitions)


def partitions(
    ahead: Annotated[
        int,
        typer.Option(
            "--ahead", min=0, max=12, help="提前创建本月之后的月份数（并移出默认分区中的事件）"
        ),
    ] = 3,
    list_only: Annotated[bool, typer.Option("--list", help="只列出，不创建")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出")] = False,
) -> None:
    """列出事件表的月分区及各分区事件数；默认同时创建本月及之后 --ahead 个月的分区，
    并为默认分区（event_default）中的事件建立所在月份的分区、把它们移入。"""
    settings = get_settings()
    engine = make_engine(settings)
    try:
        created: list[str] = []
        if not list_only:
            with engine.begin() as connection:
                created = event_partitions.maintain(connection, ahead)
        with engine.connect() as connection:
            rows = event_partitions.partition_rows(connection)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(orjson.dumps({"created": created, "partitions": rows}).decode())
        return
    table = Table("分区", "范围", "事件数")
    for row in rows:
        table.add_row(row["name"], row["bound"], f"{row['rows']:,}")
    console.print(table)
    total = sum(row["rows"] for row in rows)
    console.print(
        f"共 {len(rows)} 个分区、{total:,} 个事件；本次新建 {len(created)} 个"
        + (f"：{', '.join(created)}" if created else ""),
        highlight=False,
    )
