"""The loop's data: handling units, categories, the working calendar, and the figures (KPIs)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from api.db import audit
from api.db import workflow as workflow_rows
from api.deps import (
    AdminDep,
    CallerDep,
    ConnectionDep,
    EngineDep,
    IndexStoreDep,
    NoNulCharacters,
    ReaderDep,
)
from api.errors import Forbidden, InvalidInput, NotFound, error_responses
from api.replica import ReplicaConnectionDep
from api.workflow import kpis as figures
from api.workflow.calendar import SHANGHAI
from api.workflow.kpi_export import kpi_workbook

router = APIRouter(
    tags=["workflow"],
    responses=error_responses(400, 401, 403, 404, 422, 503),
    dependencies=[NoNulCharacters],
)
MAX_PERIOD_DAYS = 3660
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    """[from, to] in local days; by default this month up to today."""
    today = datetime.now(SHANGHAI).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise InvalidInput("from 不能晚于 to", code="invalid_period", where="query.from")
    for day, where in ((start, "query.from"), (end, "query.to")):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput(
                f"日期应在 {FIRST_DAY} 至 {LAST_DAY} 之间", code="invalid_period", where=where
            )
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidInput(
            f"统计区间最长 {MAX_PERIOD_DAYS} 天", code="invalid_period", where="query.to"
        )
    return start, end


From = Annotated[
    date | None, Query(alias="from", description="First local day (default: 1st of this month)")
]
To = Annotated[
    date | None, Query(alias="to", description="Last local day, inclusive (default: today)")
]
Within = Annotated[
    str | None, Query(max_length=64, description="Only events in this grid (any level)")
]
GroupBy = Annotated[
    Literal["grid", "community", "street", "unit", "staff"],
    Query(description="staff: callers entitled to personal data only (names)"),
]


def _report(
    connection: ConnectionDep,
    store: IndexStoreDep,
    caller: CallerDep,
    group_by: str,
    start: date | None,
    end: date | None,
    within: str | None,
) -> dict[str, Any]:
    if group_by == "staff" and not caller.sees_all_personal:
        raise Forbidden(
            "按人员统计含姓名，仅限有权查看个人信息的角色",
            code="insufficient_role",
            where="query.group_by",
        )
    first, last = _period(start, end)
    try:
        return figures.kpis(
            connection, store, group_by, first, last, datetime.now(UTC), within=within
        )
    except LookupError:
        raise NotFound(
            f"当前版本中没有网格 {within}", code="grid_not_found", where="query.within"
        ) from None


@router.get(
    "/kpis",
    summary="Figures a supervisor is judged by (考核): per grid, community, street, unit or staff",
    description=(
        "received (受理数), response_rate (响应率), due (应结案数), closure_rate (结案率 = closed / due), "
        "on_time_rate (按期结案率 = closed on time / (due − postponed)), rework_rate (返工率), mean and "
        "p90 handling time in working hours, overdue_now, supervised (督办), satisfaction. "
        "Definitions: README, 考核指标. Rates are null when there is nothing to divide by."
    ),
)
def kpis(
    connection: ReplicaConnectionDep,
    store: IndexStoreDep,
    caller: CallerDep,
    group_by: GroupBy = "community",
    start: From = None,
    end: To = None,
    within: Within = None,
) -> dict[str, Any]:
    return _report(connection, store, caller, group_by, start, end, within)


@router.get(
    "/kpis.xlsx",
    summary="The same figures as an Excel workbook (.xlsx)",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}},
)
def kpis_xlsx(
    connection: ReplicaConnectionDep,
    store: IndexStoreDep,
    caller: CallerDep,
    group_by: GroupBy = "community",
    start: From = None,
    end: To = None,
    within: Within = None,
) -> Response:
    report = _report(connection, store, caller, group_by, start, end, within)
    name = f"wangge-kpis-{group_by}-{report['from']}-{report['to']}.xlsx"
    return Response(
        kpi_workbook(report),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/kpis/trend", summary="Reported, closed, closed on time and missed deadlines per period"
)
def kpi_trend(
    connection: ReplicaConnectionDep,
    store: IndexStoreDep,
    _: ReaderDep,
    interval: Literal["day", "week", "month"] = "day",
    start: From = None,
    end: To = None,
    within: Within = None,
) -> dict[str, Any]:
    first, last = _period(start, end)
    try:
        return figures.trend(connection, store, interval, first, last, within=within)
    except LookupError:
        raise NotFound(
            f"当前版本中没有网格 {within}", code="grid_not_found", where="query.within"
        ) from None


@router.get("/units", summary="Handling units (处置单位) and the areas they answer for")
def units(connection: ConnectionDep, _: ReaderDep) -> list[dict[str, Any]]:
    return workflow_rows.handling_units(connection)


@router.get("/categories", summary="Event categories (GB/T 30428.2 family) with their default tier")
def categories(connection: ConnectionDep, _: ReaderDep) -> list[dict[str, Any]]:
    return workflow_rows.categories(connection)


@router.get("/dispatch-rules", summary="What a category at a tier proposes: unit kind, deadlines")
def dispatch_rules(connection: ConnectionDep, _: ReaderDep) -> list[dict[str, Any]]:
    return workflow_rows.dispatch_rules(connection)


@router.get("/calendar", summary="The working calendar's exceptions (holidays, 调休 working days)")
def calendar(
    connection: ConnectionDep,
    _: ReaderDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> list[dict[str, Any]]:
    return [
        {**row, "day": row["day"].isoformat()}
        for row in workflow_rows.calendar_rows(connection, year)
    ]


class CalendarDay(BaseModel):
    workday: bool = Field(description="true: a working day (e.g. 调休上班); false: a day off")
    name: str | None = Field(default=None, max_length=100, description="e.g. 国庆节")


@router.put("/calendar/{day}", summary="Mark a day as a working day or a day off (admin)")
def set_calendar_day(
    day: date, body: CalendarDay, engine: EngineDep, admin: AdminDep
) -> dict[str, Any]:
    with engine.begin() as connection:
        workflow_rows.set_calendar_day(connection, day, body.workday, body.name)
        audit.record(
            connection,
            admin.actor,
            "calendar.set",
            "work_calendar",
            day.isoformat(),
            {"workday": body.workday, "name": body.name},
        )
    return {"day": day.isoformat(), "workday": body.workday, "name": body.name}


@router.delete(
    "/calendar/{day}", status_code=204, summary="Let a day follow the Monday–Friday rule (admin)"
)
def delete_calendar_day(day: date, engine: EngineDep, admin: AdminDep) -> None:
    with engine.begin() as connection:
        if not workflow_rows.delete_calendar_day(connection, day):
            raise NotFound(
                f"工作日历中没有 {day.isoformat()} 的例外", code="day_not_found", where="path.day"
            )
        audit.record(connection, admin.actor, "calendar.delete", "work_calendar", day.isoformat())


class UnitIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="Matched by dispatch rules")
    tier: int = Field(ge=1, le=3, description="3 社区, 2 街道, 1 区级部门")
    areas: list[str] = Field(
        default_factory=list,
        max_length=5000,
        description="Grid codes (any level); none: everywhere",
    )
    phone: str | None = Field(default=None, max_length=32)
    active: bool = True


@router.put(
    "/units/{code}",
    summary="Create or change a handling unit (admin)",
    responses={201: {"description": "Created"}},
)
def put_unit(
    code: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")],
    body: UnitIn,
    response: Response,
    engine: EngineDep,
    store: IndexStoreDep,
    admin: AdminDep,
) -> dict[str, Any]:
    known = store.active().by_code
    unknown = [area for area in body.areas if area not in known]
    if unknown:
        raise InvalidInput(
            f"当前版本中没有这些网格：{'、'.join(unknown[:20])}",
            code="unknown_area",
            where="body.areas",
        )
    with engine.begin() as connection:
        created = workflow_rows.upsert_unit(connection, code, body.model_dump())
        audit.record(connection, admin.actor, "unit.put", "handling_unit", code, body.model_dump())
    response.status_code = 201 if created else 200
    return {"code": code, **body.model_dump()}


class RuleIn(BaseModel):
    category_code: str | None = Field(
        default=None, max_length=16, description="None: the tier's fallback rule"
    )
    tier: int = Field(ge=1, le=3)
    unit_kind: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    accept_hours: float = Field(gt=0, le=1000, description="Working hours to accept (立案)")
    handle_amount: float = Field(gt=0, le=1000)
    handle_unit: Literal["hours", "days"] = "days"


@router.put("/dispatch-rules", summary="Create or change the rule of a category and tier (admin)")
def put_rule(body: RuleIn, engine: EngineDep, admin: AdminDep) -> dict[str, Any]:
    with engine.begin() as connection:
        known = {c["code"] for c in workflow_rows.categories(connection)}
        if body.category_code is not None and body.category_code not in known:
            raise InvalidInput(
                f"未知事件类别 {body.category_code}",
                code="unknown_category",
                where="body.category_code",
            )
        workflow_rows.upsert_rule(connection, body.model_dump())
        audit.record(connection, admin.actor, "rule.put", "dispatch_rule", None, body.model_dump())
    return body.model_dump()
