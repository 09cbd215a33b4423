"""The command centre's pages: /map/dashboard (一屏全览) and /map/dispatch (调度台).

Both pages are a folium base map (the configured basemap, Leaflet from /static/vendor) and a
script: everything they show — KPIs, trend, open events, units, one event's history — is fetched
from the API by web/assets/dashboard.js and dispatch.js, and refreshed without reloading the page.
Only the caller's role reaches the page, to decide between the page and the login offer; the API
still decides, per request, what each token may read and do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.auth import Principal, Role
from api.db.generations import NoActiveGeneration
from api.deps import IndexStoreDep, ReaderDep
from api.errors import error_responses
from api.lookup.index_store import IndexStore
from api.workflow.calendar import SHANGHAI
from api.workflow.machine import ACTIONS
from web.geocode_view import FIXERS, LABELS
from web.maps import STATUS_COLOURS, STATUS_LABELS, MapFactory, render_map
from web.render import page

router = APIRouter(
    tags=["map pages"],
    responses=error_responses(401, 403, 404, 422, 503),
    include_in_schema=False,
)
HTML: dict[str, Any] = {"content": {"text/html": {}}}
ECHARTS = "/static/vendor/echarts/dist/echarts.min.js"
# Who works in the command centre: dispatchers act, supervisors watch and issue 督办, admins both.
COMMAND_ROLES = frozenset({Role.admin, Role.dispatcher, Role.supervisor})
ROLE_LABELS = {Role.admin: "管理员", Role.dispatcher: "调度员", Role.supervisor: "督办员"}
# Colours of the states that never appear on the street page (it shows open events only).
EXTRA_COLOURS = {"rejected": "#a0aec0", "cancelled": "#a0aec0", "merged": "#a0aec0"}


def _allowed(principal: Principal | None) -> bool:
    return principal is not None and principal.role in COMMAND_ROLES


def _street_name(store: IndexStore) -> str:
    """The active generation's street (the hierarchy's top), for the page's heading."""
    try:
        index = store.active()
    except NoActiveGeneration:
        return ""
    streets = [record.name for record in index.records if record.level == "street"]
    return streets[0] if len(streets) == 1 else ""


def _command_page(
    request: Request,
    store: IndexStoreDep,
    principal: Principal | None,
    *,
    template: str,
    title: str,
    path: str,
    extra: dict[str, Any],
) -> HTMLResponse:
    street = _street_name(store)
    heading = f"{street} · {title}" if street else title
    if not _allowed(principal):
        return page(
            request,
            template,
            title=f"{title} · wangge",
            heading=heading,
            allowed=False,
            signed_in=principal is not None,
            login_next=path,
        )
    assert principal is not None
    factory = MapFactory(request.app.state.settings.maps)
    rendered = render_map(factory.new_map())
    return page(
        request,
        template,
        title=f"{title} · wangge",
        heading=heading,
        allowed=True,
        map=rendered,
        role_label=ROLE_LABELS[principal.role],
        page_data={
            "map": rendered.name,
            "outCrs": factory.api_crs,
            "role": principal.role.value,
            # Periods and deadlines are local days and times where the street is (as the API's).
            "timeZone": SHANGHAI.key,
            "statusColours": {**STATUS_COLOURS, **EXTRA_COLOURS},
            "statusLabels": STATUS_LABELS,
            **extra,
        },
    )


@router.get(
    "/map/dashboard",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="一屏全览: the map shaded by a KPI, open events by state, trend, ranking, queue",
)
def dashboard_page(request: Request, store: IndexStoreDep, principal: ReaderDep) -> HTMLResponse:
    return _command_page(
        request,
        store,
        principal,
        template="dashboard.html",
        title="指挥中心 · 一屏全览",
        path="/map/dashboard",
        extra={"echarts": ECHARTS, "refreshSeconds": 60},
    )


@router.get(
    "/map/dispatch",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="调度台: events to act on, one event's details and history, the dispatcher's actions",
)
def dispatch_page(request: Request, store: IndexStoreDep, principal: ReaderDep) -> HTMLResponse:
    return _command_page(
        request,
        store,
        principal,
        template="dispatch.html",
        title="指挥中心 · 调度台",
        path="/map/dispatch",
        extra={
            "actionLabels": {name: action.label_zh for name, action in ACTIONS.items()},
            "refreshSeconds": 60,
            "geocodeLabels": LABELS,
            "geocodeFixers": sorted(role.value for role in FIXERS),
        },
    )
