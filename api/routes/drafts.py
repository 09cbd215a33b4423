"""Drafts: create, edit (redraw, split) with optimistic locking, publish; re-activate a generation."""

from __future__ import annotations

import json
from typing import Any

import shapely
from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ConnectionDep, EngineDep, PlannerDep, ReaderDep
from api.drafts import (
    create_draft,
    draft_row,
    merge_grids,
    publish_draft,
    reactivate,
    replace_geometry,
    split_grid,
)
from api.errors import InvalidInput

router = APIRouter(tags=["drafts"])


def _shape(geojson: dict[str, Any], where: str) -> shapely.Geometry:
    try:
        return shapely.from_geojson(json.dumps(geojson))
    except Exception as error:  # shapely raises GEOSException for malformed GeoJSON
        raise InvalidInput(
            f"不是有效的 GeoJSON 几何：{error}", code="invalid_geometry", where=where
        ) from error


class DraftRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class Versioned(BaseModel):
    version: int = Field(
        ge=0, description="The draft version this edit was made on (409 when stale)"
    )


class RedrawRequest(Versioned):
    geometry: dict[str, Any]


class SplitRequest(Versioned):
    code: str
    line: dict[str, Any] = Field(description="GeoJSON LineString (WGS84) crossing the grid")
    new_codes: list[str] | None = Field(default=None, min_length=2, max_length=2)


class MergeRequest(Versioned):
    codes: list[str] = Field(min_length=2, max_length=50)
    keep_code: str | None = Field(
        default=None, description="Keep this member's code (default: a new code)"
    )


class PublishRequest(Versioned):
    acknowledge_warnings: bool = False


@router.post(
    "/drafts", status_code=201, summary="Start a draft: a working copy of the active generation"
)
def new_draft(body: DraftRequest, engine: EngineDep, principal: PlannerDep) -> dict[str, Any]:
    return create_draft(engine, body.name, principal.actor)


@router.get(
    "/drafts/{draft_id}", summary="A draft (its generation id is usable with every read endpoint)"
)
def get_draft(draft_id: int, connection: ConnectionDep, _: ReaderDep) -> dict[str, Any]:
    return draft_row(connection, draft_id)


@router.put("/drafts/{draft_id}/grids/{code}", summary="Replace a grid's geometry in the draft")
def redraw(
    draft_id: int, code: str, body: RedrawRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return replace_geometry(
        engine,
        draft_id,
        code,
        _shape(body.geometry, "body.geometry"),
        body.version,
        principal.actor,
    )


@router.post(
    "/drafts/{draft_id}/split",
    summary="Split a grid along a line (neighbours get the new vertices)",
)
def split(
    draft_id: int, body: SplitRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return split_grid(
        engine,
        draft_id,
        body.code,
        _shape(body.line, "body.line"),
        body.version,
        principal.actor,
        body.new_codes,
    )


@router.post("/drafts/{draft_id}/merge", summary="Merge neighbouring grids of one parent")
def merge(
    draft_id: int, body: MergeRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return merge_grids(engine, draft_id, body.codes, body.version, principal.actor, body.keep_code)


@router.post(
    "/drafts/{draft_id}/publish",
    summary="Publish: coverage check, then activate atomically, record lineage, re-assign open events",
)
def publish(
    draft_id: int, body: PublishRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return publish_draft(engine, draft_id, body.version, body.acknowledge_warnings, principal.actor)


@router.post(
    "/generations/{generation_id}/activate",
    summary="Re-activate a generation (e.g. undo a publish)",
)
def activate_generation(
    generation_id: int, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return reactivate(engine, generation_id, principal.actor)
