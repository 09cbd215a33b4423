"""`wangge patrols purge`: tracks are personal data, kept WANGGE_PATROLS__RETENTION_DAYS days."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console

from api.db.engine import make_engine
from api.patrols.views import purge_expired
from api.settings import get_settings

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    patrols = typer.Typer(help="巡查轨迹：按保存期限删除", no_args_is_help=True)
    app.add_typer(patrols, name="patrols")
    patrols.command("purge")(purge)


def purge(
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出")] = False,
) -> None:
    """删除开始时间早于保存期限（WANGGE_PATROLS__RETENTION_DAYS，默认 180 天）的巡查及其轨迹点。

    可由 cron 每天运行一次；API 在删除之前就不再返回过期的巡查。"""
    settings = get_settings()
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            answer = purge_expired(connection, settings.patrols, actor="cli:patrols purge")
    finally:
        engine.dispose()
    if as_json:
        typer.echo(orjson.dumps(answer).decode())
        return
    console.print(
        f"已删除 {answer['patrols']} 次巡查、{answer['points']} 个轨迹点"
        f"（开始于 {answer['before']} 之前，保存期限 {settings.patrols.retention_days} 天）",
        highlight=False,
    )
