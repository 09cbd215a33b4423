"""Event intake (single and batch) and reading one event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import JSONResponse

from api.db import events as event_rows
from api.deps import (
    CallerDep,
    ConnectionDep,
    DispatcherDep,
    EngineDep,
    IndexStoreDep,
    NoNulCharacters,
    SettingsDep,
    WorkerDep,
)
from api.errors import InvalidInput, NotFound, error_responses
from api.event_views import Clock, event_collection, event_record
from api.events import EventBatch, EventIn, intake, intake_batch
from api.lookup.index_store import IndexStore
from api.privacy import Caller, redact_event_features
from api.routes.layers import OutCrs, reproject
from api.routes.params import BBoxDep, PageDep
from api.workflow.kpis import scope_codes
from api.workflow.machine import State
from api.workflow.transitions import TransitionIn, apply_transition, load_catalogue

router = APIRouter(
    tags=["events"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    dependencies=[NoNulCharacters],
)
STATUS_CODES = {"created": 201, "existing": 200, "conflict": 409, "invalid": 422}


def outcome_answer(outcome: dict[str, Any]) -> JSONResponse:
    """One intake outcome as its HTTP answer: the event (201 / 200) or its error (409 / 422).
    Every single-event intake (events, reports from phones, point alerts) answers this way."""
    status = STATUS_CODES[outcome["status"]]
    if "error" in outcome:
        return JSONResponse(status_code=status, content={"error": outcome["error"]})
    return JSONResponse(status_code=status, content=outcome["event"])


@router.post(
    "/events",
    summary='Receive one event, or a batch as {"events": [...]}: geocode, assign grid and staff',
    description=(
        "Idempotent on (source, external_id): a retry with the same payload returns the stored event "
        "(200); a different payload under an existing id is rejected (409), never merged. A single "
        "event answers 201 / 200 / 409 / 422; a batch answers 200 with one result per event, in order. "
        "Events are committed before the response is sent. An event that cannot be placed on a grid is "
        "still accepted, with `assignment.needs_manual_dispatch: true`."
    ),
    responses={
        201: {"description": "Created"},
        409: {"description": "Same external_id, different payload"},
    },
)
def receive(
    store: IndexStoreDep,
    engine: EngineDep,
    settings: SettingsDep,
    principal: DispatcherDep,
    body: Annotated[EventBatch | EventIn, Body()],
) -> JSONResponse:
    caller = Caller(principal)
    flow = settings.workflow
    if isinstance(body, EventBatch):
        results = intake_batch(
            engine, store, body.events, actor=principal.actor, caller=caller, settings=flow
        )
        counts: dict[str, int] = {}
        for result in results:
            counts[result["status"]] = counts.get(result["status"], 0) + 1
        return JSONResponse({"counts": counts, "results": results})
    [result] = intake(engine, store, [body], actor=principal.actor, caller=caller, settings=flow)
    return outcome_answer(result)


@router.get(
    "/events",
    summary="Events as GeoJSON for maps (citizens' text only for entitled callers)",
    description=(
        "`fields` (comma list) keeps only those properties of each feature, plus `id` and the "
        "geometry, with coordinates rounded to 6 decimals (about 0.1 m): a map or a wall screen "
        "that reads a few properties of thousands of events asks for them, e.g. "
        "`fields=status,warning,due_at`. Names are those of the full feature ("
        + ", ".join(event_rows.EVENT_PROPERTIES)
        + "); an unknown one answers 422 `unknown_fields` (`query.fields`). Choosing a "
        "property never widens access: `description` stays absent where the caller may not "
        "see the citizen's text."
    ),
    responses={200: {"content": {"application/geo+json": {}}}},
)
def list_events(
    store: IndexStoreDep,
    connection: ConnectionDep,
    settings: SettingsDep,
    caller: CallerDep,
    bbox: BBoxDep,
    page: PageDep,
    status: Annotated[
        Literal["open", "all"], Query(description="open: not finished (closed, rejected …)")
    ] = "open",
    state: Annotated[
        str | None, Query(description="Comma list of states, e.g. reported,accepted,returned")
    ] = None,
    warning: Annotated[
        str | None, Query(description="Comma list of warning levels: yellow, red")
    ] = None,
    unit: Annotated[str | None, Query(max_length=32, description="Handling unit code")] = None,
    category: Annotated[str | None, Query(max_length=16, description="Category code")] = None,
    within: Annotated[
        str | None, Query(max_length=64, description="Only events in this grid (any level)")
    ] = None,
    with_unplaced: Annotated[
        bool, Query(description="Include events that could not be placed (null geometry)")
    ] = False,
    unassigned: Annotated[
        bool,
        Query(
            description="Only events on no grid, waiting to be placed by hand (人工分派): an "
            "address spanning grids or not found; with with_unplaced also those without a point"
        ),
    ] = False,
    sort: Annotated[
        Literal["id", "deadline"], Query(description="deadline: the running clock, soonest first")
    ] = "id",
    out_crs: OutCrs = "EPSG:4326",
    fields: Annotated[
        str | None,
        Query(max_length=400, description="Comma list of properties to keep (id always kept)"),
    ] = None,
) -> dict[str, Any]:
    kept = None if fields is None else _listed(fields, set(event_rows.EVENT_PROPERTIES), "fields")
    chosen = event_rows.EventFilter(
        open_only=status == "open",
        states=_listed(state, {s.value for s in State}, "state"),
        unit=unit,
        category=category,
        grid_codes=tuple(_scope(store, within)) if within else None,
        with_unplaced=with_unplaced,
        unassigned_only=unassigned,
        sort=sort,
    )
    levels = _listed(warning, {"yellow", "red"}, "warning")
    catalogue = load_catalogue(connection, settings.workflow)
    clock = Clock(catalogue, settings.workflow, datetime.now(UTC))
    found = event_collection(connection, chosen, clock, warnings=levels, bbox=bbox, page=page)
    redact_event_features(found, caller, store.active_path)
    found = reproject(found, out_crs)
    return found if kept is None else event_rows.keep_properties(found, kept)


def _listed(value: str | None, known: set[str], name: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    unknown = [item for item in items if item not in known]
    if unknown:
        raise InvalidInput(
            f"{name} 不认识：{'、'.join(unknown)}；可选：{'、'.join(sorted(known))}",
            code=f"unknown_{name}",
            where=f"query.{name}",
        )
    return items


def _scope(store: IndexStore, within: str) -> list[str]:
    try:
        codes = scope_codes(store, within)
    except LookupError:
        raise NotFound(
            f"当前版本中没有网格 {within}", code="grid_not_found", where="query.within"
        ) from None
    assert codes is not None
    return codes


@router.get(
    "/events/{event_id}",
    summary="One event: its state, deadlines, warning, allowed actions and history",
    description=(
        "`allowed_actions` lists what the caller's role may do next (POST "
        "/events/{id}/transitions). `warning` is computed now on the working calendar: yellow "
        "once the configured share of the working time is used, red when overdue. Citizens' "
        "text, history notes and actors only for entitled callers."
    ),
)
def get_event(
    event_id: int,
    store: IndexStoreDep,
    connection: ConnectionDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> dict[str, Any]:
    return event_record(connection, store, settings.workflow, caller, event_id)


@router.post(
    "/events/{event_id}/transitions",
    summary="Move an event through the loop: accept, dispatch, start, handle, verify, rework …",
    description=(
        "Body: `{action, version, note?, unit?, assignee?, deadline?, photos?, lon?, lat?, crs?, "
        "category_code?, tier?, target?, satisfaction?}`. `version` is the event's version as "
        "last read: a stale one answers 409 `stale_version`. An action the event's state does not "
        "allow answers 409 `illegal_transition` with the allowed actions in `details`; a role "
        "that may not take it, or an event outside the caller's grids or unit, 403. Each "
        "transition is one history line and one outbox notification, in the same transaction. "
        "Actions and roles: README, 事件闭环."
    ),
    responses={200: {"description": "The transition applied; the event's new state and version"}},
)
def transition(
    event_id: int,
    body: TransitionIn,
    store: IndexStoreDep,
    engine: EngineDep,
    settings: SettingsDep,
    principal: WorkerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=100,
            pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
            description="A key the client made for this action: a replay gets the first answer",
        ),
    ] = None,
) -> JSONResponse:
    answer, replayed = apply_transition(
        engine, store, settings.workflow, event_id, body, principal, idempotency_key=idempotency_key
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(answer, headers=headers)
