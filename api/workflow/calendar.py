"""Working time (工作时间): deadlines counted in working hours on China's working calendar.

A day is a working day by the Monday–Friday rule unless the calendar says otherwise: public
holidays (法定节假日) are days off, and the weekend days worked in exchange (调休上班) are working
days. The exceptions are data (table `work_calendar`, seeded from the chinesecalendar package,
editable). Each working day has the same working periods, in local time (default 08:30–12:00 and
13:30–17:30, 7.5 hours).

A deadline of N working days is N × the hours of one working day: an event accepted on Friday at
16:00 with 1 working day to go is due on Monday at 15:30 (16:00–17:30 Friday is 1.5 hours, the
other 6 hours on Monday from 08:30, with the lunch break). Times before or after the working
periods start the clock at the next period.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_PERIODS = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
MAX_DAYS = 3660  # a deadline ten years out is an input error, not a loop to run forever


class CalendarError(ValueError):
    """A working-time question the calendar cannot answer (a deadline beyond its range)."""


def parse_periods(text: str) -> tuple[tuple[time, time], ...]:
    """`08:30-12:00,13:30-17:30` → the working periods of a day, in order, not overlapping."""
    periods: list[tuple[time, time]] = []
    for part in text.split(","):
        start, _, end = part.strip().partition("-")
        begin, finish = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
        if finish <= begin:
            raise ValueError(f"工作时段 {part.strip()} 的结束时间应晚于开始时间")
        if periods and begin < periods[-1][1]:
            raise ValueError(f"工作时段 {part.strip()} 与前一时段重叠或顺序颠倒")
        periods.append((begin, finish))
    if not periods:
        raise ValueError("至少需要一个工作时段")
    return tuple(periods)


@dataclass(frozen=True)
class WorkCalendar:
    """Working days and hours; `exceptions` maps a date to whether it is a working day."""

    exceptions: Mapping[date, bool] = field(default_factory=dict)
    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS
    zone: ZoneInfo = SHANGHAI

    @property
    def hours_per_day(self) -> float:
        return sum(_hours(start, end) for start, end in self.periods)

    def is_workday(self, day: date) -> bool:
        known = self.exceptions.get(day)
        return known if known is not None else day.weekday() < 5

    def _windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working periods (aware, local) from the day of `start` on."""
        local = start.astimezone(self.zone)
        for offset in range(MAX_DAYS):
            day = local.date() + timedelta(days=offset)
            if not self.is_workday(day):
                continue
            for begin, end in self.periods:
                yield (
                    datetime.combine(day, begin, self.zone),
                    datetime.combine(day, end, self.zone),
                )
        raise CalendarError("期限超出工作日历可计算的范围（十年）")

    def add_hours(self, start: datetime, hours: float) -> datetime:
        """The moment `hours` working hours after `start` (an aware time; answered in UTC)."""
        if hours < 0:
            raise ValueError("工作时长不能为负")
        remaining = timedelta(hours=hours)
        for begin, end in self._windows(start):
            if end <= start:
                continue
            begin = max(begin, start)
            if begin + remaining <= end:
                return (begin + remaining).astimezone(UTC)
            remaining -= end - begin
        raise CalendarError("期限超出工作日历可计算的范围")  # pragma: no cover (windows raise)

    def add(self, start: datetime, amount: float, unit: str) -> datetime:
        """`amount` working hours or working days after `start`."""
        hours = amount * self.hours_per_day if unit == "days" else amount
        return self.add_hours(start, hours)

    def hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours from `start` to `end` (0 when end is not after start): the partial first
        and last days walked, the whole days between counted (any span, in constant time)."""
        if end <= start:
            return 0.0
        first_day = start.astimezone(self.zone).date()
        last_day = end.astimezone(self.zone).date()
        if (last_day - first_day).days < 2:
            return self._walk(start, end)
        after_first = datetime.combine(first_day + timedelta(days=1), time(), self.zone)
        last_midnight = datetime.combine(last_day, time(), self.zone)
        whole_days = self.workdays(first_day + timedelta(days=1), last_day)
        return (
            self._walk(start, after_first)
            + whole_days * self.hours_per_day
            + self._walk(last_midnight, end)
        )

    def workdays(self, first: date, end: date) -> int:
        """Working days in [first, end)."""
        if end <= first:
            return 0
        off, worked = self._exception_days
        weekdays = int(np.busday_count(first, end, holidays=off))
        extra = int(
            np.searchsorted(worked, np.datetime64(end))
            - np.searchsorted(worked, np.datetime64(first))
        )
        return weekdays + extra

    @cached_property
    def _exception_days(self) -> tuple[np.ndarray, np.ndarray]:
        """Weekdays off (holidays) and weekend days worked (调休), each sorted."""
        off = sorted(day for day, work in self.exceptions.items() if not work and day.weekday() < 5)
        worked = sorted(day for day, work in self.exceptions.items() if work and day.weekday() >= 5)
        return np.array(off, dtype="datetime64[D]"), np.array(worked, dtype="datetime64[D]")

    def _walk(self, start: datetime, end: datetime) -> float:
        total = timedelta()
        for begin, finish in self._windows(start):
            if begin >= end:
                break
            overlap = min(finish, end) - max(begin, start)
            if overlap > timedelta():
                total += overlap
        return total.total_seconds() / 3600


def _hours(start: time, end: time) -> float:
    anchor = date(2000, 1, 1)
    return (datetime.combine(anchor, end) - datetime.combine(anchor, start)).total_seconds() / 3600
