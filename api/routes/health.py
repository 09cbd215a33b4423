"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.db.generations import postgis_version
from api.db.migrate import current_revision, head_revision
from api.deps import EngineDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: database reachable and migrations current",
    responses={503: {"description": "Not ready; the body says which check failed"}},
)
def ready(engine: EngineDep, settings: SettingsDep) -> Any:
    checks: dict[str, Any] = {}
    try:
        with engine.connect() as connection:
            checks["postgis"] = postgis_version(connection)
        checks["database"] = "ok"
        current = current_revision(engine)
        head = head_revision(settings.resolved_database_url())
        checks["migration"] = {"current": current, "head": head}
        ok = current == head
    except SQLAlchemyError as error:
        checks["database"] = f"unreachable: {error.__class__.__name__}"
        ok = False
    body = {"status": "ready" if ok else "not_ready", "checks": checks}
    return JSONResponse(status_code=200 if ok else 503, content=body)
