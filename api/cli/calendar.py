"""`wangge calendar seed|list`: the working calendar's holidays and 调休 days, kept up to date.

The State Council publishes each year's holidays in the autumn before; the chinesecalendar package
follows within days. After upgrading it (`.venv/bin/pip install -U chinesecalendar`), `wangge
calendar seed` adds the days wangge does not know yet; days an admin set by hand stay as they are
unless `--replace`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.db import workflow as workflow_rows
from api.db.engine import make_engine
from api.settings import get_settings

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    calendar = typer.Typer(help="工作日历：法定节假日与调休", no_args_is_help=True)
    app.add_typer(calendar, name="calendar")
    calendar.command("seed")(seed)
    calendar.command("list")(list_days)


NAMES_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}


def _zh(name: object) -> str:
    return NAMES_ZH.get(str(name), str(name))


def package_days() -> list[tuple[date, bool, str]]:
    """Holidays on weekdays and working weekend days, as the chinesecalendar package knows them."""
    import chinese_calendar

    days = [
        (day, False, _zh(name))
        for day, name in chinese_calendar.holidays.items()
        if day.weekday() < 5 and day.year >= 2020
    ]
    days += [
        (day, True, f"{_zh(name)}调休上班")
        for day, name in chinese_calendar.workdays.items()
        if day.weekday() >= 5 and day.year >= 2020
    ]
    return sorted(days)


def seed(
    replace: Annotated[bool, typer.Option("--replace", help="覆盖手工设置过的日子")] = False,
) -> None:
    """从 chinesecalendar 补入节假日与调休上班日。"""
    days = package_days()
    added = 0
    with make_engine(get_settings()).begin() as connection:
        known = {row["day"] for row in workflow_rows.calendar_rows(connection)}
        for day, workday, name in days:
            if day in known and not replace:
                continue
            workflow_rows.set_calendar_day(connection, day, workday, name)
            added += 1
    last = max(day for day, _, _ in days)
    console.print(
        f"工作日历：写入 {added} 天；chinesecalendar 的数据到 {last.year} 年为止，"
        f"之后的年份按周一至周五计算，待国务院公布后升级该包并重新运行本命令"
    )


def list_days(
    year: Annotated[int | None, typer.Option(help="只列出这一年")] = None,
) -> None:
    """列出工作日历中的例外日子。"""
    with make_engine(get_settings()).connect() as connection:
        rows = workflow_rows.calendar_rows(connection, year)
    table = Table("日期", "上班", "名称")
    for row in rows:
        table.add_row(row["day"].isoformat(), "是" if row["workday"] else "否", row["name"] or "")
    console.print(table)
    console.print(f"共 {len(rows)} 天")
