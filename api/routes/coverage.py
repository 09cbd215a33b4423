"""Coverage checks: run and store (planner), read as JSON or as GeoJSON problems."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.coverage import find_check, problems_geojson, propose_fix_draft, run_check, store_check
from api.db.generations import generation_at, generation_exists
from api.deps import CallerDep, ConnectionDep, EngineDep, NoNulCharacters, PlannerDep
from api.errors import InvalidInput, NotFound, error_responses
from api.privacy import public_record
from api.routes.params import geometry_from_geojson, known_level
from spatial.coverage import CheckOptions

router = APIRouter(
    tags=["coverage"],
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
    dependencies=[NoNulCharacters],
)


class CheckRequest(BaseModel):
    generation: int | None = Field(
        default=None, description="Generation (or draft) to check; default: active"
    )
    level: str | None = Field(
        default=None, description="Only families whose children are at this level"
    )
    gap_width_m: float = Field(
        default=0.2, ge=0, le=1000, description="Report gaps at least this wide"
    )
    min_gap_area_m2: float = Field(default=1.0, ge=0, description="…and at least this large")
    allowed_gaps: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=1000,
        description="GeoJSON geometries of legitimate enclaves (WGS84)",
    )
    outline: dict[str, Any] | None = Field(
        default=None,
        description="GeoJSON (Multi)Polygon, WGS84: the known outer boundary the top level must "
        "cover — gaps and strips of the roots are measured against it",
    )


@router.post(
    "/coverage/checks", status_code=201, summary="Run a coverage check, store it, return the report"
)
def create_check(body: CheckRequest, engine: EngineDep, principal: PlannerDep) -> dict[str, Any]:
    allowed = [
        geometry_from_geojson(geometry, f"body.allowed_gaps[{number}]")
        for number, geometry in enumerate(body.allowed_gaps)
    ]
    outline = (
        geometry_from_geojson(body.outline, "body.outline") if body.outline is not None else None
    )
    if outline is not None and (
        outline.geom_type not in ("Polygon", "MultiPolygon")
        or not outline.is_valid
        or outline.area <= 0
    ):
        raise InvalidInput(
            "outline 需要是有效的、面积大于零的面（Polygon 或 MultiPolygon）",
            code="invalid_geometry",
            where="body.outline",
        )
    options = CheckOptions(
        level=body.level,
        gap_width_m=body.gap_width_m,
        min_gap_area_m2=body.min_gap_area_m2,
        allowed_gaps=allowed,
        outline=outline,
    )
    with engine.connect() as connection:
        if body.level is not None:
            known_level(connection, body.level, where="body.level")
        generation = body.generation if body.generation is not None else generation_at(connection)
        if not generation_exists(connection, generation):
            raise NotFound(
                f"没有第 {generation} 版网格", code="generation_not_found", where="body.generation"
            )
        report = run_check(connection, generation, options)
    report["id"] = store_check(engine, report, principal.actor)
    return report


@router.get("/coverage/checks/{check_id}", summary="A stored check's report (JSON)")
def get_check(check_id: int, connection: ConnectionDep, caller: CallerDep) -> dict[str, Any]:
    found = find_check(connection, check_id)
    if found is None:
        raise NotFound(
            f"没有编号为 {check_id} 的检查", code="check_not_found", where="path.check_id"
        )
    return public_record(found, caller)


@router.get(
    "/coverage/checks/{check_id}/problems",
    summary="A stored check's findings as GeoJSON",
    responses={200: {"content": {"application/geo+json": {}}}},
)
def get_problems(check_id: int, connection: ConnectionDep, caller: CallerDep) -> dict[str, Any]:
    return problems_geojson(get_check(check_id, connection, caller))


class FixRequest(BaseModel):
    gap_width_m: float = Field(
        default=1.0, ge=0, le=100, description="Merge gaps narrower than this"
    )


@router.post(
    "/coverage/checks/{check_id}/fix",
    status_code=201,
    summary="Propose a fix as a new draft (coverage_clean); the active generation is untouched",
)
def fix_check(
    check_id: int, body: FixRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    with engine.connect() as connection:
        found = find_check(connection, check_id)
    if found is None:
        raise NotFound(
            f"没有编号为 {check_id} 的检查", code="check_not_found", where="path.check_id"
        )
    return propose_fix_draft(
        engine, found["generation"], found.get("level"), body.gap_width_m, principal.actor
    )
