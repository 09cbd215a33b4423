"""人工定位: a dispatcher puts an event on a grid by hand (api/event_location.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from api.auth import Principal, Role
from api.deps import EngineDep, IndexStoreDep, NoNulCharacters, SettingsDep
from api.errors import error_responses
from api.event_location import BIGINT, LocationIn, locate_event
from api.routes.geocode_aliases import require_role

router = APIRouter(
    tags=["events"],
    responses=error_responses(401, 403, 404, 409, 422, 503),
    dependencies=[NoNulCharacters],
)

# Who places events by hand: the dispatchers who read the tickets, supervisors, admins.
LOCATORS = frozenset({Role.admin, Role.dispatcher, Role.supervisor})
LocatorDep = Annotated[Principal, Depends(require_role(LOCATORS))]


@router.post(
    "/events/{event_id}/location",
    summary="Put an event on a grid by hand (人工定位): by grid, gazetteer place or point",
    description=(
        "Body: `{version, grid_code? | place: {kind, code}? | lon, lat, crs?, note?}` — exactly "
        "one way: a grid of the active generation (网格 or finer), a gazetteer place (its one "
        "grid; a place spanning grids answers 409 `spans_grids` with the candidates unless "
        "`grid_code` names one of them), or a point located with the index. The event's point "
        "stays when it lies in the chosen grid, else moves just inside it (`details.moved_m`); "
        "an event without a point gets the grid's point on surface. Open events only (409 "
        "`event_finished`); a stale `version` answers 409 `stale_version`. One history line "
        "(`locate`), one outbox notification, audited. Answers the event as GET /events/{id}."
    ),
    responses={200: {"description": "The event, placed: grid, point, proposal, history"}},
)
def locate(
    event_id: Annotated[int, Path(ge=1, le=BIGINT)],
    body: LocationIn,
    store: IndexStoreDep,
    engine: EngineDep,
    settings: SettingsDep,
    principal: LocatorDep,
) -> dict[str, Any]:
    return locate_event(engine, store, settings.workflow, event_id, body, principal)
