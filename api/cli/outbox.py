"""`wangge outbox deliver|status` and `wangge warnings sweep`: notifications out, by hand."""

from __future__ import annotations

import threading
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from api.db.engine import make_engine
from api.outbox import Deliverer, sweep_warnings
from api.outbox.status import outbox_status
from api.settings import get_settings

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    outbox = typer.Typer(help="通知发件箱：向 Webhook 推送事件状态变更与预警", no_args_is_help=True)
    warnings = typer.Typer(help="逾期预警", no_args_is_help=True)
    app.add_typer(outbox, name="outbox")
    app.add_typer(warnings, name="warnings")
    outbox.command("deliver")(deliver)
    outbox.command("status")(status)
    warnings.command("sweep")(sweep)


def deliver(
    once: Annotated[bool, typer.Option("--once", help="投递一轮（直到没有到期的）后退出")] = False,
) -> None:
    """投递到期的通知；不加 --once 时每隔 sweep_seconds 秒一轮，直到 Ctrl-C。"""
    settings = get_settings()
    if not settings.workflow.webhooks:
        console.print("未配置 Webhook（WANGGE_WORKFLOW__WEBHOOKS），没有可投递的目标")
        return
    engine = make_engine(settings)
    stop = threading.Event()
    deliverer = Deliverer(engine, settings.workflow.webhooks, stop=stop)
    interval = settings.workflow.sweep_seconds or 30.0
    try:
        while True:
            report = deliverer.round()
            console.print(
                f"新匹配 {report.seeded}，送达 {report.delivered}，失败 {report.failed}"
                + "".join(f"\n  {name}: {error}" for name, error in report.errors.items()),
                highlight=False,
            )
            if once or stop.wait(interval):
                break
    except KeyboardInterrupt:
        stop.set()
    finally:
        deliverer.close()
        engine.dispose()


def status(
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出")] = False,
) -> None:
    """各 Webhook 目标的待投递、失败数和最早的待投递通知；有积压时退出码为 3。"""
    settings = get_settings()
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            answer = outbox_status(connection, settings.workflow, pending=True, limit=20)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        table = Table("目标", "已配置", "待投递", "失败中", "最早待投递", "下次尝试")
        for target in answer["targets"]:
            table.add_row(
                target["name"],
                "是" if target["configured"] else "否",
                str(target["pending"]),
                str(target["failing"]),
                target["oldest_pending_at"] or "—",
                target["next_attempt_at"] or "—",
            )
        console.print(table)
        for row in answer["last_errors"]:
            console.print(
                f"  #{row['outbox_id']} → {row['target']}（第 {row['attempts']} 次）：{row['last_error']}",
                highlight=False,
            )
    if any(target["pending"] for target in answer["targets"]):
        raise typer.Exit(3)


def sweep() -> None:
    """检查一次逾期预警：升级的写入发件箱并记录预警等级。"""
    settings = get_settings()
    engine = make_engine(settings)
    try:
        pushed = sweep_warnings(engine, settings.workflow)
    finally:
        engine.dispose()
    console.print(f"推送预警 {len(pushed)} 条")
    for payload in pushed:
        console.print(
            f"  事件 {payload['event_id']}（{payload['external_id']}）：{payload.get('label_zh')}，"
            f"期限 {payload['due_at']}",
            highlight=False,
        )
