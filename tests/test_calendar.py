"""Working time on China's calendar: weekends, public holidays, 调休 working days, lunch breaks."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import text

from api.workflow.calendar import SHANGHAI, WorkCalendar, parse_periods
from tests.conftest import bearer


def local(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=SHANGHAI)


@pytest.fixture
def calendar(engine) -> WorkCalendar:
    """The calendar as the migration seeded it from the chinesecalendar package."""
    with engine.connect() as connection:
        exceptions = dict(connection.execute(text("SELECT day, workday FROM work_calendar")).all())
    return WorkCalendar(exceptions=exceptions)


def test_seeded_holidays_and_swapped_working_days(calendar):
    assert calendar.exceptions[date(2026, 10, 1)] is False  # 国庆节
    assert calendar.exceptions[date(2026, 2, 16)] is False  # 春节
    assert calendar.exceptions[date(2026, 10, 10)] is True  # a Saturday worked (调休)
    assert calendar.exceptions[date(2026, 9, 20)] is True  # a Sunday worked (调休)
    assert calendar.is_workday(date(2026, 11, 30)) and not calendar.is_workday(date(2026, 11, 29))


def test_one_working_day_over_the_national_day_holiday(calendar):
    # Wednesday 30 September 16:00: 1.5 hours that day, then 1–7 October off, then 6 hours on
    # Thursday 8 October from 08:30 with the lunch break: 08:30–12:00 and 13:30–16:00.
    due = calendar.add(local("2026-09-30T16:00"), 1, "days")
    assert due.astimezone(SHANGHAI) == local("2026-10-08T16:00")
    assert calendar.hours_between(local("2026-09-30T16:00"), due) == pytest.approx(7.5)


def test_a_swapped_saturday_counts(calendar):
    # Friday 9 October 17:00 + 2 hours: 30 minutes on Friday, then Saturday 10 October is worked.
    due = calendar.add_hours(local("2026-10-09T17:00"), 2)
    assert due.astimezone(SHANGHAI) == local("2026-10-10T10:00")


def test_nights_weekends_and_lunch_do_not_count():
    plain = WorkCalendar()
    # Reported Saturday night: the clock starts on Monday at 08:30.
    assert plain.add_hours(local("2026-11-28T22:00"), 1).astimezone(SHANGHAI) == local(
        "2026-11-30T09:30"
    )
    # Reported at 11:30: half an hour before lunch, the rest after 13:30.
    assert plain.add_hours(local("2026-11-30T11:30"), 1).astimezone(SHANGHAI) == local(
        "2026-11-30T14:00"
    )
    assert plain.hours_between(local("2026-11-27T17:00"), local("2026-11-30T09:00")) == 1.0
    assert plain.hours_per_day == 7.5


def test_working_periods_are_validated():
    assert parse_periods("09:00-12:00, 14:00-18:00")[1][0].hour == 14
    for bad in ("12:00-09:00", "08:00-12:00,11:00-13:00", "nine-five"):
        with pytest.raises(ValueError):
            parse_periods(bad)


def test_admins_edit_the_calendar_and_deadlines_follow(client, tokens):
    admin = bearer(tokens["admin"])
    day = "2031-06-02"  # a Monday
    assert client.put(f"/api/v1/calendar/{day}", json={"workday": False}).status_code == 401
    refused = client.put(
        f"/api/v1/calendar/{day}", json={"workday": False}, headers=bearer(tokens["dispatcher"])
    )
    assert refused.status_code == 403
    answer = client.put(
        f"/api/v1/calendar/{day}", json={"workday": False, "name": "防汛停工"}, headers=admin
    )
    assert answer.status_code == 200
    listed = client.get("/api/v1/calendar", params={"year": 2031}).json()
    assert {"day": day, "workday": False, "name": "防汛停工"} in listed
    assert client.delete(f"/api/v1/calendar/{day}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/calendar/{day}", headers=admin).status_code == 404
    bad = client.put("/api/v1/calendar/2031-02-30", json={"workday": True}, headers=admin)
    assert bad.status_code == 422
