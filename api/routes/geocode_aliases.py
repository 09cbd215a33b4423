"""Address corrections (纠正地址): find a place by name, and teach the matcher a wording
(api/address_corrections.py). Dispatchers, supervisors and admins save aliases; dispatchers and
admins remove them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from api import address_corrections as service
from api.auth import Principal, Role
from api.db.generations import NoActiveGeneration
from api.deps import (
    ConnectionDep,
    EngineDep,
    IndexStoreDep,
    NoNulCharacters,
    OptionalPrincipal,
    ReaderDep,
)
from api.errors import Busy, Forbidden, Unauthorized, error_responses
from api.lookup.index_store import IndexStore
from api.routes.params import PageDep

router = APIRouter(
    tags=["geocode"],
    responses=error_responses(400, 401, 403, 422, 503),
    dependencies=[NoNulCharacters],
)

# Who teaches the matcher: the people who read tickets (调度员), watch them (督办员), and admins.
ALIAS_WRITERS = frozenset({Role.admin, Role.dispatcher, Role.supervisor})
ALIAS_READERS = ALIAS_WRITERS
ALIAS_REMOVERS = frozenset({Role.admin, Role.dispatcher})
BIGINT = 9_223_372_036_854_775_807  # ids are bigint: a larger number is a 422, not a 500
ROLE_NAMES = {Role.admin: "管理员", Role.dispatcher: "调度员", Role.supervisor: "督办员"}


def require_role(roles: frozenset[Role]) -> Callable[..., Awaitable[Principal]]:
    """A dependency that demands a token of one of `roles` (401 without one, else 403)."""
    allowed = "、".join(ROLE_NAMES[role] for role in sorted(roles, key=list(ROLE_NAMES).index))

    async def _check(principal: OptionalPrincipal) -> Principal:
        if principal is None:
            raise Unauthorized(
                "需要 API 令牌（Authorization: Bearer …）",
                code="token_required",
                where="header.Authorization",
            )
        if principal.role not in roles:
            raise Forbidden(
                f"角色 {principal.role.value} 无权执行此操作（仅限{allowed}）",
                code="insufficient_role",
            )
        return principal

    return _check


AliasWriterDep = Annotated[Principal, Depends(require_role(ALIAS_WRITERS))]
AliasReaderDep = Annotated[Principal, Depends(require_role(ALIAS_READERS))]
AliasRemoverDep = Annotated[Principal, Depends(require_role(ALIAS_REMOVERS))]


def _gazetteer(store: IndexStore) -> Any:
    """This worker's gazetteer (api/lookup/index_store.py), or 503 while it is not loaded."""
    gazetteer = getattr(store, "gazetteer", None)
    if gazetteer is None:
        raise Busy("地名地址库尚未加载，请稍后再试", code="gazetteer_unavailable")
    return gazetteer


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: StrictStr = Field(
        max_length=32,
        description="building | compound | house_number | road | poi | intersection",
    )
    code: StrictStr = Field(
        max_length=1000,
        description="The place's code; an intersection is '<road code>+<road code>'",
    )


class NewAlias(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(
        max_length=2000,
        description="The wording as the caller said it (1–200 characters), e.g. 新翠居小区4栋",
    )
    target: Target
    event_id: StrictInt | None = Field(
        default=None,
        ge=1,
        le=BIGINT,
        description="The event whose correction this is (kept for the record)",
    )


@router.get(
    "/geocode/places",
    summary="Places a name may mean (compounds, buildings, POIs, roads…), to correct an address",
)
def places(
    store: IndexStoreDep,
    _: ReaderDep,
    q: Annotated[str, Query(max_length=2000, description="地名，如 新翠居、星海小学、淞江路")],
    limit: Annotated[int, Query(ge=1, le=service.MAX_PLACES)] = 8,
) -> dict[str, Any]:
    gazetteer = _gazetteer(store)
    try:
        index = store.active()
    except NoActiveGeneration:
        index = None
    return service.find_places(gazetteer, index, q, limit)


@router.post(
    "/geocode/aliases",
    status_code=201,
    responses={
        200: {
            "description": "The same wording already meant this place, or the matcher already "
            "finds it confidently (`already_matches: true`, `id: null`): nothing saved"
        },
        **error_responses(404, 409),
    },
    summary="Save a dispatcher's correction: this wording means that place (an address alias)",
)
def add(
    body: NewAlias,
    response: Response,
    engine: EngineDep,
    store: IndexStoreDep,
    principal: AliasWriterDep,
) -> dict[str, Any]:
    gazetteer = _gazetteer(store)  # the register a new wording is checked against
    saved = service.add_alias(
        engine,
        text=body.text,
        target_kind=body.target.kind,
        target_code=body.target.code,
        event_id=body.event_id,
        actor=principal.actor,
        gazetteer=gazetteer,
    )
    if not saved.created:
        response.status_code = 200
    return service.answer(saved, gazetteer)


@router.get("/geocode/aliases", summary="Address aliases dispatchers saved, newest first")
def index(
    connection: ConnectionDep,
    store: IndexStoreDep,
    page: PageDep,
    _: AliasReaderDep,
) -> list[dict[str, Any]]:
    gazetteer = getattr(store, "gazetteer", None)
    aliases = service.list_aliases(connection, page.limit, page.offset)
    return [service.public(alias, gazetteer) for alias in aliases]


@router.delete(
    "/geocode/aliases/{alias_id}",
    status_code=204,
    responses=error_responses(404),
    summary="Remove an address alias (the matcher stops using it at its next reload)",
)
def remove(
    alias_id: Annotated[int, Path(ge=1, le=BIGINT)], engine: EngineDep, principal: AliasRemoverDep
) -> None:
    service.remove_alias(engine, alias_id, principal.actor)
