"""Drafts: start, list, edit (with optimistic locking), undo, diff, publish; re-activate a generation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import CallerDep, ConnectionDep, EngineDep, NoNulCharacters, PlannerDep, ReaderDep
from api.drafts import edits
from api.drafts.diff import draft_diff
from api.drafts.publish import create_draft, discard_draft, publish_draft, reactivate
from api.drafts.stats import grid_stats
from api.drafts.suggest import suggest_draft
from api.drafts.versions import draft_by_id, draft_row, list_drafts
from api.errors import InvalidInput, error_responses
from api.privacy import public_record
from api.routes.draft_diff_models import DraftDiff
from api.routes.params import geometry_from_geojson
from spatial.grids import GridRow

router = APIRouter(
    tags=["drafts"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    dependencies=[NoNulCharacters],
)


class DraftRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class Versioned(BaseModel):
    version: int = Field(
        ge=0, description="The draft version this edit was made on (409 when stale)"
    )


class KeepsCodes(BaseModel):
    keep_codes: bool = Field(
        default=False,
        description=(
            "Refuse (409 code_rule) rather than recode grids whose code would break their "
            "level's rule under a new parent (default: recode them, listed in `recoded`)"
        ),
    )


class Drawn(Versioned):
    crs: Literal["EPSG:4326", "gcj02", "bd09"] = Field(
        default="EPSG:4326", description="CRS of the drawn geometry (gcj02 when drawn on AMap)"
    )


class GeometryRequest(Drawn):
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon (WGS84)")


class ReshapeRequest(GeometryRequest, KeepsCodes):
    code: str


class SplitRequest(Drawn, KeepsCodes):
    code: str
    line: dict[str, Any] = Field(description="GeoJSON LineString (WGS84) crossing the grid")
    new_codes: list[str] | None = Field(default=None, min_length=2, max_length=2)


class MergeRequest(Versioned, KeepsCodes):
    codes: list[str] = Field(min_length=2, max_length=50)
    keep_code: str | None = Field(
        default=None, description="Keep this member's code (default: a new code)"
    )


class CreateRequest(GeometryRequest, KeepsCodes):
    code: str | None = Field(
        default=None, max_length=64, description="Default: next free code under the parent"
    )
    name: str = Field(min_length=1, max_length=200)
    level: str
    parent_code: str | None = None
    kind: str = "other"
    households: int | None = Field(default=None, ge=0)
    population: int | None = Field(default=None, ge=0)
    attributes: dict[str, Any] = Field(default_factory=dict)


class UpdateRequest(Versioned, KeepsCodes):
    """Only the fields given change. null clears households, population (unknown) and
    parent_code (top level only); code, name, kind and attributes cannot be null (422)."""

    code: str | None = Field(
        default=None, min_length=1, max_length=64, description="A new code (children follow)"
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = None
    parent_code: str | None = Field(default=None, description="null: none (top level only)")
    households: int | None = Field(default=None, ge=0, description="null: unknown")
    population: int | None = Field(default=None, ge=0, description="null: unknown")
    attributes: dict[str, Any] | None = Field(default=None, description="Replaces them; {} clears")


# Grid columns that cannot be empty (the table refuses NULL; a 500 otherwise).
NOT_NULL = {
    "code": "编码不能为 null",
    "name": "名称不能为 null",
    "kind": "网格类型不能为 null",
    "attributes": "扩展属性不能为 null（清空请用 {}）",
}


class ReassignRequest(Versioned, KeepsCodes):
    buildings: list[str] = Field(min_length=1, max_length=200, description="Building codes")
    grid_code: str = Field(description="The grid they should belong to")


class PublishRequest(Versioned):
    acknowledge_warnings: bool = False
    replace_newer: bool = Field(
        default=False,
        description="Publish even though another generation became active after the draft began",
    )


class SuggestRequest(BaseModel):
    community: str = Field(description="Code of the community to partition")
    name: str | None = Field(default=None, max_length=200)
    households_min: int = Field(default=300, ge=1)
    households_max: int = Field(default=500, ge=1)
    seed: int = Field(default=0, description="Random seed (the same seed gives the same proposal)")


@router.post(
    "/drafts", status_code=201, summary="Start a draft: a working copy of the active generation"
)
def new_draft(body: DraftRequest, engine: EngineDep, principal: PlannerDep) -> dict[str, Any]:
    return create_draft(engine, body.name, principal.actor)


@router.get("/drafts", summary="List drafts (newest first)")
def drafts(
    connection: ConnectionDep,
    caller: CallerDep,
    status: Literal["open", "published", "discarded"] | None = None,
) -> dict[str, Any]:
    return {"drafts": [public_record(d, caller) for d in list_drafts(connection, status)]}


@router.post(
    "/drafts/suggest",
    status_code=201,
    summary="Auto-suggest: partition a community into contiguous grids of 300–500 households, as a new draft",
)
def suggest(body: SuggestRequest, engine: EngineDep, principal: PlannerDep) -> dict[str, Any]:
    if body.households_min > body.households_max:
        raise InvalidInput(
            "households_min 不能大于 households_max",
            code="invalid_range",
            where="body.households_min",
        )
    return suggest_draft(
        engine,
        body.community,
        body.name or f"{body.community} 网格划分建议",
        (body.households_min, body.households_max),
        body.seed,
        principal.actor,
    )


@router.get(
    "/drafts/{draft_id}",
    summary="A draft and its edit history (its generation id works with every read endpoint)",
)
def get_draft(draft_id: int, connection: ConnectionDep, caller: CallerDep) -> dict[str, Any]:
    return public_record(draft_row(connection, draft_id), caller)


@router.get(
    "/drafts/{draft_id}/stats", summary="Live statistics of the draft's grids (by code or by level)"
)
def stats(
    draft_id: int,
    connection: ConnectionDep,
    _: ReaderDep,
    codes: Annotated[list[str] | None, Query(max_length=500)] = None,
    level: str | None = None,
) -> dict[str, Any]:
    if not codes and not level:
        raise InvalidInput(
            "需要 codes 或 level", code="codes_or_level_required", where="query.level"
        )
    draft = draft_by_id(connection, draft_id)
    return {
        "version": draft.version,
        "grids": grid_stats(connection, draft.generation_id, codes, level),
    }


@router.get(
    "/drafts/{draft_id}/diff",
    response_model=DraftDiff,
    summary=(
        "What publishing would change, per level: buildings, households, cameras, open events and "
        "staff changing hands (from → to), totals per receiving and losing grid"
    ),
)
def diff(draft_id: int, connection: ConnectionDep, caller: CallerDep) -> dict[str, Any]:
    return draft_diff(connection, draft_id, caller)


@router.put(
    "/drafts/{draft_id}/grids/{code}", summary="Replace one grid's geometry (neighbours untouched)"
)
def redraw(
    draft_id: int, code: str, body: GeometryRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    geometry = geometry_from_geojson(body.geometry, "body.geometry", body.crs)
    return edits.redraw(engine, draft_id, code, geometry, body.version, principal.actor)


@router.post(
    "/drafts/{draft_id}/reshape",
    summary="Move a grid's boundary: neighbours give and take the difference (no gap, no overlap)",
)
def reshape(
    draft_id: int, body: ReshapeRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    geometry = geometry_from_geojson(body.geometry, "body.geometry", body.crs)
    return edits.reshape(
        engine, draft_id, body.code, geometry, body.version, principal.actor, body.keep_codes
    )


@router.post(
    "/drafts/{draft_id}/split",
    summary="Split a grid along a line (neighbours get the new vertices)",
)
def split(
    draft_id: int, body: SplitRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    line = geometry_from_geojson(body.line, "body.line", body.crs)
    return edits.split(
        engine,
        draft_id,
        body.code,
        line,
        body.version,
        principal.actor,
        body.new_codes,
        body.keep_codes,
    )


@router.post("/drafts/{draft_id}/merge", summary="Merge neighbouring grids of one parent")
def merge(
    draft_id: int, body: MergeRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return edits.merge(
        engine,
        draft_id,
        body.codes,
        body.version,
        principal.actor,
        body.keep_code,
        body.keep_codes,
    )


@router.post(
    "/drafts/{draft_id}/grids",
    status_code=201,
    summary="Create a grid inside its parent (overlapped grids give up the area)",
)
def create_grid(
    draft_id: int, body: CreateRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    row = GridRow(
        body.code or "",
        body.name,
        body.level,
        body.kind,
        body.parent_code,
        body.households,
        body.population,
        body.attributes,
        geometry_from_geojson(body.geometry, "body.geometry", body.crs),
    )
    return edits.create(engine, draft_id, row, body.version, principal.actor, body.keep_codes)


@router.patch(
    "/drafts/{draft_id}/grids/{code}", summary="Change a grid's attributes, parent or code"
)
def update_grid(
    draft_id: int, code: str, body: UpdateRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude={"version", "keep_codes"})
    if not changes:
        raise InvalidInput("没有要修改的字段", code="nothing_to_change", where="body")
    for field, label in NOT_NULL.items():
        if field in changes and changes[field] is None:
            raise InvalidInput(f"{field}：{label}", code="null_not_allowed", where=f"body.{field}")
    return edits.update(
        engine, draft_id, code, changes, body.version, principal.actor, body.keep_codes
    )


@router.delete(
    "/drafts/{draft_id}/grids/{code}",
    summary="Delete a grid (its area is left uncovered until redrawn)",
)
def delete_grid(
    draft_id: int,
    code: str,
    engine: EngineDep,
    principal: PlannerDep,
    version: Annotated[int, Query(ge=0)],
    with_children: bool = False,
) -> dict[str, Any]:
    return edits.delete(engine, draft_id, code, with_children, version, principal.actor)


@router.post(
    "/drafts/{draft_id}/buildings/reassign",
    summary="Move boundaries so these buildings belong to a grid",
)
def reassign(
    draft_id: int, body: ReassignRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return edits.reassign_buildings(
        engine,
        draft_id,
        body.buildings,
        body.grid_code,
        body.version,
        principal.actor,
        body.keep_codes,
    )


@router.post(
    "/drafts/{draft_id}/undo",
    summary="Undo the newest edit not yet undone (repeat to go further back)",
)
def undo(
    draft_id: int, body: Versioned, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return edits.undo(engine, draft_id, body.version, principal.actor)


@router.post(
    "/drafts/{draft_id}/publish",
    summary="Publish: coverage check, then activate atomically, record lineage, re-assign open events",
)
def publish(
    draft_id: int, body: PublishRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return publish_draft(
        engine,
        draft_id,
        body.version,
        body.acknowledge_warnings,
        principal.actor,
        body.replace_newer,
    )


@router.post(
    "/drafts/{draft_id}/discard",
    summary="Discard a draft (kept for the record, no longer editable)",
)
def discard(
    draft_id: int, body: Versioned, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return discard_draft(engine, draft_id, body.version, principal.actor)


@router.post(
    "/generations/{generation_id}/activate",
    summary="Re-activate a generation (e.g. undo a publish)",
)
def activate_generation(
    generation_id: int, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return reactivate(engine, generation_id, principal.actor)
