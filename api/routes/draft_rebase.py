"""Rebase a draft onto the generation that became active since it began (issue 16 §4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import EngineDep, NoNulCharacters, PlannerDep
from api.drafts.rebase import Choice, rebase_draft
from api.errors import error_responses

router = APIRouter(
    tags=["drafts"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    dependencies=[NoNulCharacters],
)


class RebaseRequest(BaseModel):
    version: int = Field(ge=0, description="The draft version (409 stale_draft when stale)")
    resolutions: dict[str, Choice] = Field(
        default_factory=dict,
        max_length=2000,
        description='Per conflicting grid code: "draft" keeps the draft\'s change, '
        '"active" drops it for the active generation\'s version',
    )


@router.post(
    "/drafts/{draft_id}/rebase",
    summary="Rebase: replay the draft's changes onto the generation that became active since it "
    "began (409 rebase_conflicts, per grid, until each conflict has a resolution)",
)
def rebase(
    draft_id: int, body: RebaseRequest, engine: EngineDep, principal: PlannerDep
) -> dict[str, Any]:
    return rebase_draft(engine, draft_id, body.version, body.resolutions, principal.actor)
