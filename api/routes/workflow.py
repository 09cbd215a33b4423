"""The loop's data: handling units, dispatch rules, the working calendar, and the figures (KPIs)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import NoNulCharacters
from api.errors import error_responses

router = APIRouter(
    tags=["workflow"],
    responses=error_responses(400, 401, 403, 404, 422, 503),
    dependencies=[NoNulCharacters],
)
