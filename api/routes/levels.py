"""The level catalogue: read by anyone who may read, changed by admins (api/levels.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from api import levels as service
from api.deps import AdminDep, ConnectionDep, EngineDep, NoNulCharacters, ReaderDep
from api.errors import error_responses

router = APIRouter(
    tags=["levels"],
    responses=error_responses(400, 401, 403, 413, 422, 503),
    dependencies=[NoNulCharacters],
)


class LevelChange(BaseModel):
    """Fields of a level; types are checked here, strictly (`true` is not rank 1, `1` is not
    true), values by api/levels.py (one place for the API and the command line)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None,
        max_length=64,
        description="Identifier (lowercase letters, digits, _): only while no grid uses the level",
    )
    rank: StrictInt | None = Field(default=None, description="0 is the coarsest level; unique")
    label_zh: str | None = Field(default=None, max_length=64, description="Chinese name, e.g. 网格")
    code_pattern: str | None = Field(
        default=None,
        max_length=1000,
        description="Python regular expression every code at this level must match (null: none)",
    )
    code_extends_parent: StrictBool | None = Field(
        default=None, description="Codes must start with the parent's code"
    )
    households_min: StrictInt | None = Field(
        default=None, description="Household band (null: none)"
    )
    households_max: StrictInt | None = Field(default=None)
    required_roles: list[str] | None = Field(
        default=None,
        max_length=50,
        description="Staff role kinds required at this level (the coverage check warns)",
    )


class NewLevel(LevelChange):
    name: str = Field(max_length=64)
    rank: StrictInt
    label_zh: str = Field(max_length=64)


@router.get(
    "/levels",
    summary="The grid hierarchy's levels: code rules, household bands, required roles, grids",
)
def levels(connection: ConnectionDep, _: ReaderDep) -> list[dict[str, Any]]:
    return service.list_levels(connection)


@router.post(
    "/levels",
    status_code=201,
    responses=error_responses(409),
    summary="Add a level (admin)",
)
def add(body: NewLevel, engine: EngineDep, admin: AdminDep) -> dict[str, Any]:
    return service.add_level(engine, body.model_dump(exclude_unset=True), admin.actor)


@router.patch(
    "/levels/{name}",
    responses=error_responses(404, 409),
    summary="Change a level (admin): refused if stored grids would break its rules",
)
def change(name: str, body: LevelChange, engine: EngineDep, admin: AdminDep) -> dict[str, Any]:
    return service.change_level(engine, name, body.model_dump(exclude_unset=True), admin.actor)


@router.delete(
    "/levels/{name}",
    status_code=204,
    responses=error_responses(404, 409),
    summary="Remove a level no grid of any generation uses (admin)",
)
def remove(name: str, engine: EngineDep, admin: AdminDep) -> None:
    service.remove_level(engine, name, admin.actor)
