"""The figures a supervisor is judged by (考核), per grid, community, street, unit or staff member.

Definitions (README, 考核指标), for a period [from, to] of local days:
- received 受理数: events reported in the period, duplicates merged into another not counted;
- response_rate 响应率: of those, answered (立案, 不予立案, 合并 or 作废) within the time to accept;
- due 应结案数: events whose deadline (after any approved postponement) falls in the period,
  except those rejected, cancelled or merged;
- closure_rate 结案率 = closed / due (closed: verified and closed, by now);
- on_time_rate 按期结案率 = closed on time / (due − postponed) — postponed events are counted
  separately (`postponed`), neither for nor against;
- rework_rate 返工率 = of the due events that were handled at least once, the share sent back
  at least once (返工);
- mean_handling_hours, p90_handling_hours: working hours from dispatch to closing, closed events
  among the due ones;
- overdue_now 当前逾期: open events past their deadline (to accept or to handle) at this moment,
  whatever the period;
- supervised 督办数: supervision orders issued in the period;
- satisfaction 满意度: mean of the reporters' ratings (1–5) of the due events evaluated.
A rate with nothing to divide by is null, never 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection

from api.db import kpis as kpi_rows
from api.lookup.index_store import IndexStore
from api.workflow.calendar import SHANGHAI

GROUPS = ("grid", "community", "street", "unit", "staff")
COUNTS = (
    "received",
    "accepted",
    "responded_on_time",
    "due",
    "closed",
    "postponed",
    "closed_on_time",
    "handled",
    "reworked",
    "overdue_now",
    "supervised",
    "evaluated",
    "satisfaction_sum",
)
UNPLACED = "(未定位)"


class Tally:
    """Counts and handling times of one group."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTS, 0)
        self.hours: list[float] = []

    def add(self, row: dict[str, Any]) -> None:
        for name in COUNTS:
            if name in row:
                self.counts[name] += int(row[name])
        self.hours.extend(row.get("hours") or [])

    def figures(self) -> dict[str, Any]:
        c = self.counts
        hours = np.array(self.hours, dtype=float)
        return {
            "received": c["received"],
            "accepted": c["accepted"],
            "accepted_on_time": c["responded_on_time"],
            "response_rate": _rate(c["responded_on_time"], c["received"]),
            "due": c["due"],
            "closed": c["closed"],
            "closure_rate": _rate(c["closed"], c["due"]),
            "postponed": c["postponed"],
            "closed_on_time": c["closed_on_time"],
            "on_time_rate": _rate(c["closed_on_time"], c["due"] - c["postponed"]),
            "handled": c["handled"],
            "reworked": c["reworked"],
            "rework_rate": _rate(c["reworked"], c["handled"]),
            "mean_handling_hours": round(float(hours.mean()), 2) if len(hours) else None,
            "p90_handling_hours": round(float(np.percentile(hours, 90)), 2) if len(hours) else None,
            "overdue_now": c["overdue_now"],
            "supervised": c["supervised"],
            "evaluated": c["evaluated"],
            "satisfaction": round(c["satisfaction_sum"] / c["evaluated"], 2)
            if c["evaluated"]
            else None,
        }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """Local days [start, end] as instants [from, to)."""
    return (
        datetime.combine(start, time(), SHANGHAI),
        datetime.combine(end + timedelta(days=1), time(), SHANGHAI),
    )


def _grouper(store: IndexStore, group_by: str) -> Callable[[Any], tuple[str, str]]:
    """Key → (group key, group name): grids roll up to their community or street."""
    if group_by in ("unit", "staff"):
        return lambda key: (str(key) if key is not None else UNPLACED, "")
    index = store.active()

    def group(code: Any) -> tuple[str, str]:
        position = index.by_code.get(code) if code else None
        if position is None:
            return UNPLACED, "未定位或网格已撤销"
        chain = index.path(position)
        if group_by == "grid":
            return chain[-1].code, chain[-1].name
        for record in chain:
            if record.level == group_by:
                return record.code, record.name
        return UNPLACED, f"不在任何{group_by}内"

    return group


def scope_codes(store: IndexStore, within: str | None) -> list[str] | None:
    """Grid codes (active generation) at and below `within`; None for everything."""
    if within is None:
        return None
    codes = store.descendants(within)
    if not codes:
        raise LookupError(within)
    return codes


def kpis(
    connection: Connection,
    store: IndexStore,
    group_by: str,
    start: date,
    end: date,
    now: datetime,
    within: str | None = None,
) -> dict[str, Any]:
    """Figures per group and in total for local days [start, end]."""
    key = group_by if group_by in ("unit", "staff") else "grid"
    begin, finish = period(start, end)
    codes = scope_codes(store, within)
    group = _grouper(store, group_by)
    tallies: dict[str, Tally] = {}
    names: dict[str, str] = {}
    total = Tally()
    for rows in (
        kpi_rows.received(connection, key, begin, finish, codes),
        kpi_rows.due(connection, key, begin, finish, codes),
        kpi_rows.overdue_now(connection, key, now, codes),
        kpi_rows.supervised(connection, key, begin, finish, codes),
    ):
        for row in rows:
            group_key, name = group(row["key"])
            tallies.setdefault(group_key, Tally()).add(row)
            names.setdefault(group_key, name)
            total.add(row)
    if group_by == "unit":
        names.update(kpi_rows.unit_names(connection))
    if group_by == "staff":
        ids = [int(k) for k in tallies if k.isdigit()]
        names.update({str(k): v for k, v in kpi_rows.staff_names(connection, ids).items()})
    rows_out = [
        {"key": group_key, "name": names.get(group_key) or group_key, **tally.figures()}
        for group_key, tally in sorted(tallies.items())
    ]
    return {
        "group_by": group_by,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "within": within,
        "rows": rows_out,
        "totals": total.figures(),
    }


def trend(
    connection: Connection,
    store: IndexStore,
    interval: str,
    start: date,
    end: date,
    within: str | None = None,
) -> dict[str, Any]:
    begin, finish = period(start, end)
    rows = kpi_rows.trend(
        connection, interval, begin, finish, SHANGHAI.key, scope_codes(store, within)
    )
    found = {row["period"].date(): row for row in rows}
    empty = {"received": 0, "closed": 0, "closed_on_time": 0, "overdue": 0}
    return {
        "interval": interval,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "rows": [
            {**empty, **found.get(first, {}), "period": first.isoformat()}
            for first in _periods(interval, start, end)
        ],
    }


def _periods(interval: str, start: date, end: date) -> list[date]:
    """The first day of every day, week (Monday) or month from start to end: a dense series."""
    if interval == "day":
        first = start
    elif interval == "week":
        first = start - timedelta(days=start.weekday())
    else:
        first = start.replace(day=1)
    periods = []
    while first <= end:
        periods.append(first)
        if interval == "day":
            first += timedelta(days=1)
        elif interval == "week":
            first += timedelta(days=7)
        else:
            first = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return periods
