"""The field worker's own API: who I am, my tasks (我的任务), and reporting from the street (上报)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from api.db import tokens as token_rows
from api.deps import (
    ConnectionDep,
    EngineDep,
    IndexStoreDep,
    NoNulCharacters,
    ReporterDep,
    SettingsDep,
    WorkerDep,
)
from api.errors import error_responses
from api.event_views import my_tasks
from api.events import EventIn, intake
from api.privacy import Caller
from api.routes.events import outcome_answer
from api.times import Instant
from api.workflow.transitions import position_in_china

router = APIRouter(
    tags=["field staff"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    dependencies=[NoNulCharacters],
)


@router.get("/me", summary="Who the caller's token is: role, grids, unit, the person")
def me(connection: ConnectionDep, store: IndexStoreDep, principal: WorkerDep) -> dict[str, Any]:
    index = store.active()
    grids = [
        {"code": code, "name": index.records[index.by_code[code]].name}
        for code in principal.grid_codes
        if code in index.by_code
    ]
    return {
        "role": principal.role.value,
        "name": principal.name,
        "grid_codes": list(principal.grid_codes),
        "grids": grids,
        "unit_code": principal.unit_code,
        "staff_id": principal.staff_id,
        "staff_name": token_rows.staff_name(connection, principal.staff_id)
        if principal.staff_id
        else None,
    }


@router.get(
    "/me/tasks",
    summary="My tasks (我的任务): what is dispatched to me or my grids, soonest deadline first",
    description=(
        "Field staff: events in their grids (today's, and below them) or assigned to them; "
        "handlers: their unit's; others: every open event being handled. States dispatched, "
        "processing, handled (awaiting verification) and returned, each with its warning now, "
        "督办 count and the actions the caller may take; `counts` by state and warning."
    ),
)
def tasks(
    connection: ConnectionDep, store: IndexStoreDep, settings: SettingsDep, principal: WorkerDep
) -> dict[str, Any]:
    return my_tasks(connection, store, settings.workflow, Caller(principal))


class ReportIn(BaseModel):
    client_id: str = Field(
        pattern=r"^[A-Za-z0-9-]{8,64}$",
        description="Made on the phone when the report is made (a UUID): a replay is the same report",
    )
    category_code: str = Field(min_length=1, max_length=16)
    description: str | None = Field(default=None, max_length=4000)
    lon: float | None = None
    lat: float | None = None
    crs: str = Field(default="EPSG:4326", max_length=32, description="Browser geolocation: WGS84")
    address: str | None = Field(default=None, max_length=5000)
    reported_at: Instant | None = None

    @model_validator(mode="after")
    def _located(self) -> ReportIn:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("lon 与 lat 需同时给出")
        if self.lon is None and not self.address:
            raise ValueError("需要位置（lon、lat）或地址（address）")
        return self


@router.post(
    "/reports",
    summary="Report from the street (上报): an event with source patrol",
    description=(
        "Idempotent on `client_id` per token: a replay from the phone's offline queue answers 200 "
        "with the same event; the same client_id with different content 409. Answers like POST "
        "/events (201, 200, 409, 422)."
    ),
    responses={201: {"description": "Created"}},
)
def report(
    body: Annotated[ReportIn, Body()],
    store: IndexStoreDep,
    engine: EngineDep,
    settings: SettingsDep,
    principal: ReporterDep,
) -> JSONResponse:
    if body.lon is not None and body.lat is not None:
        position_in_china(body.lon, body.lat, body.crs, "body.lon,lat")
    event = EventIn(
        source="patrol",
        external_id=f"t{principal.token_id}-{body.client_id}",
        category_code=body.category_code,
        description=body.description,
        lon=body.lon,
        lat=body.lat,
        crs=body.crs if body.lon is not None else None,
        address=body.address,
        reported_at=body.reported_at,
    )
    [result] = intake(
        engine,
        store,
        [event],
        actor=principal.actor,
        caller=Caller(principal),
        settings=settings.workflow,
    )
    return outcome_answer(result)
