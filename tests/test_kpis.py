"""The figures (考核) against hand-computed cases: eight events in March 2024, counted by hand."""

from __future__ import annotations

import io
from datetime import datetime

import openpyxl
import pytest
from sqlalchemy import text

from tests.conftest import bearer

A_MICRO = "320571005001001001"  # community 320571005001
B_MICRO = "320571005002001001"  # community 320571005002
PERIOD = {"from": "2024-03-01", "to": "2024-03-31"}


def _t(day: str) -> datetime:
    return datetime.fromisoformat(f"2024-{day}T10:00:00+08:00")


# (grid, status, reported, accept_due, responded, accepted, due, handled, closed, postponed,
#  rework, hours, satisfaction)
EVENTS = [
    (
        A_MICRO,
        "evaluated",
        "03-02",
        "03-02",
        "03-02",
        True,
        "03-05",
        "03-04",
        "03-04",
        0,
        0,
        10.0,
        5,
    ),
    (
        A_MICRO,
        "closed",
        "03-03",
        "03-03",
        "03-04",
        True,
        "03-10",
        "03-11",
        "03-12",
        0,
        1,
        30.0,
        None,
    ),
    (
        A_MICRO,
        "closed",
        "03-04",
        "03-04",
        "03-04",
        True,
        "03-26",
        "03-24",
        "03-25",
        1,
        0,
        20.0,
        None,
    ),
    (A_MICRO, "processing", "03-05", "03-05", "03-05", True, "03-15", None, None, 0, 0, None, None),
    (A_MICRO, "rejected", "03-06", "03-06", "03-06", False, None, None, None, 0, 0, None, None),
    (A_MICRO, "merged", "03-07", "03-07", "03-07", False, None, None, None, 0, 0, None, None),
    (
        B_MICRO,
        "evaluated",
        "02-27",
        "02-27",
        "02-27",
        True,
        "03-02",
        "03-01",
        "03-01",
        0,
        0,
        5.0,
        3,
    ),
    (A_MICRO, "reported", "03-30", "03-30", None, False, None, None, None, 0, 0, None, None),
]


@pytest.fixture
def march(engine):
    """Only the eight events above (the demo's are removed), two supervision orders."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM event"))
        ids = []
        for n, (
            grid,
            status,
            rep,
            acc_due,
            resp,
            accepted,
            due,
            handled,
            closed,
            post,
            rework,
            hours,
            sat,
        ) in enumerate(EVENTS):
            ids.append(
                connection.execute(
                    text(
                        "INSERT INTO event (source, external_id, category_code, grid_code, status, "
                        "reported_at, accept_due_at, responded_at, accepted_at, due_at, handled_at, "
                        "closed_at, postpone_count, rework_count, handling_hours, satisfaction, "
                        "unit_code) VALUES ('tests', :ext, 'E01', :grid, :status, :rep, :acc_due, "
                        ":resp, :accepted, :due, :handled, :closed, :post, :rework, :hours, :sat, "
                        ":unit) RETURNING id"
                    ),
                    {
                        "ext": f"kpi-{n}",
                        "grid": grid,
                        "status": status,
                        "rep": _t(rep),
                        "acc_due": _t(acc_due),
                        "resp": _t(resp) if resp else None,
                        "accepted": _t(rep) if accepted else None,
                        "due": _t(due) if due else None,
                        "handled": _t(handled) if handled else None,
                        "closed": _t(closed) if closed else None,
                        "post": post,
                        "rework": rework,
                        "hours": hours,
                        "sat": sat,
                        "unit": "community" if grid == A_MICRO else "street_office",
                    },
                ).scalar_one()
            )
        # #2 was late accepted: responded 03-04 10:00 after its time to accept (03-03 10:00).
        connection.execute(
            text(
                "INSERT INTO supervision (event_id, reason, issued_by, issued_at) VALUES "
                "(:a, '加快', 'tests', '2024-03-08T10:00:00+08:00'), "
                "(:b, '加快', 'tests', '2024-02-28T10:00:00+08:00')"
            ),
            {"a": ids[1], "b": ids[6]},
        )
    return ids


def test_figures_match_hand_computed_values(client, march):
    body = client.get("/api/v1/kpis", params={**PERIOD, "group_by": "community"}).json()
    totals = body["totals"]
    expected = {
        "received": 6,  # #1–#5 and #8; the merged duplicate #6 is not, #7 was reported in February
        "accepted": 4,
        "accepted_on_time": 4,  # #1, #3, #4 accepted in time, #5 rejected in time; #2 late, #8 not yet
        "response_rate": round(4 / 6, 4),
        "due": 5,  # deadlines in March: #1, #2, #3 (postponed to 03-26), #4, #7
        "closed": 4,
        "closure_rate": 0.8,
        "postponed": 1,
        "closed_on_time": 2,  # #1 and #7; #2 closed late; #3 postponed, counted apart
        "on_time_rate": 0.5,  # 2 / (5 − 1)
        "handled": 4,
        "reworked": 1,
        "rework_rate": 0.25,
        "mean_handling_hours": 16.25,  # (10 + 30 + 20 + 5) / 4
        "p90_handling_hours": 27.0,  # 20 + 0.7 × (30 − 20), linear between ranks
        "overdue_now": 2,  # #4 past its deadline, #8 past its time to accept
        "supervised": 1,  # the February order is outside the period
        "evaluated": 2,
        "satisfaction": 4.0,
    }
    assert totals == expected
    rows = {row["key"]: row for row in body["rows"]}
    assert set(rows) == {"320571005001", "320571005002"}
    a, b = rows["320571005001"], rows["320571005002"]
    assert a["name"] and (a["received"], a["due"], a["closed"], a["postponed"]) == (6, 4, 3, 1)
    assert a["on_time_rate"] == round(1 / 3, 4) and a["closure_rate"] == 0.75
    assert (b["received"], b["response_rate"], b["due"], b["on_time_rate"]) == (0, None, 1, 1.0)


def test_grouping_by_grid_street_unit_and_within(client, march):
    by_street = client.get("/api/v1/kpis", params={**PERIOD, "group_by": "street"}).json()
    assert [row["key"] for row in by_street["rows"]] == ["320571005"]
    by_grid = client.get("/api/v1/kpis", params={**PERIOD, "group_by": "grid"}).json()
    assert {row["key"] for row in by_grid["rows"]} == {A_MICRO, B_MICRO}
    by_unit = client.get("/api/v1/kpis", params={**PERIOD, "group_by": "unit"}).json()
    units = {row["key"]: row for row in by_unit["rows"]}
    assert (
        set(units) == {"community", "street_office"} and units["community"]["name"] == "社区工作站"
    )
    within = client.get(
        "/api/v1/kpis", params={**PERIOD, "group_by": "community", "within": "320571005002"}
    ).json()
    assert within["totals"]["due"] == 1 and within["totals"]["received"] == 0


def test_staff_figures_need_personal_data_rights(client, tokens, march):
    params = {**PERIOD, "group_by": "staff"}
    assert client.get("/api/v1/kpis", params=params).status_code == 403
    assert (
        client.get("/api/v1/kpis", params=params, headers=bearer(tokens["field_staff"])).status_code
        == 403
    )
    assert (
        client.get("/api/v1/kpis", params=params, headers=bearer(tokens["supervisor"])).status_code
        == 200
    )


def test_bad_periods_are_refused(client):
    for params, where in (
        ({"from": "2024-04-01", "to": "2024-03-01"}, "query.from"),
        ({"from": "2000-01-01", "to": "2024-03-01"}, "query.to"),
        ({"from": "2024-13-01"}, "query.from"),
        ({"within": "999"}, "query.within"),
        ({"group_by": "planet"}, "query.group_by"),
    ):
        answer = client.get("/api/v1/kpis", params=params)
        assert 400 <= answer.status_code < 500, params
        error = answer.json()["error"]
        assert error.get("where") == where or any(
            d["where"].endswith(where.split(".")[1]) for d in error.get("details", [])
        ), (params, error)


def test_excel_export_has_the_same_figures_and_no_formulas(client, engine, march):
    with engine.begin() as connection:
        connection.execute(text("UPDATE handling_unit SET name = '=1+1' WHERE code = 'community'"))
    answer = client.get("/api/v1/kpis.xlsx", params={**PERIOD, "group_by": "unit"})
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].endswith('.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][:3] == ("编码", "名称", "受理数")
    by_key = {row[0]: row for row in rows[2:]}
    assert set(by_key) == {"community", "street_office", "合计"}
    assert by_key["community"][1] == "=1+1"  # text, not a formula
    assert sheet.cell(row=3, column=2).data_type == "s"
    assert by_key["合计"][2:4] == (6, 4) and by_key["合计"][8] == 0.8  # received, accepted, 结案率


def test_trend_per_day(client, march):
    body = client.get("/api/v1/kpis/trend", params={**PERIOD, "interval": "day"}).json()
    rows = {row["period"]: row for row in body["rows"]}
    assert rows["2024-03-02"]["received"] == 1 and rows["2024-03-04"]["closed"] == 1
    assert sum(row["received"] for row in body["rows"]) == 6  # the merged duplicate is not
    assert rows["2024-03-15"]["overdue"] == 1  # #4 missed its deadline that day
    assert len(body["rows"]) == 31 and rows["2024-03-20"]["received"] == 0  # dense: every day
    weeks = client.get("/api/v1/kpis/trend", params={**PERIOD, "interval": "week"}).json()
    assert [row["period"] for row in weeks["rows"]][:2] == ["2024-02-26", "2024-03-04"]
    assert sum(row["received"] for row in weeks["rows"]) == 6
