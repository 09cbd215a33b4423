"""Liveness and readiness."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.db.generations import NoActiveGeneration, postgis_version
from api.db.migrate import current_revision, head_revision
from api.deps import EngineDep, SettingsDep
from api.replica import read_source, replica_status

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Liveness: the process answers, with its pid and the generation its index is at",
    description=(
        "`worker` is the answering process's id and `generation` the grid generation its lookup "
        "index serves (null before one is active): behind a load balancer or with several "
        "workers, each answers for itself, so a publish can be watched reaching every one."
    ),
)
def health(request: Request) -> dict[str, Any]:
    store = getattr(request.app.state, "index_store", None)
    try:
        generation = store.active().generation if store is not None else None
    except NoActiveGeneration:
        generation = None
    return {"status": "ok", "worker": os.getpid(), "generation": generation}


@router.get(
    "/ready",
    summary="Readiness: database reachable and migrations current",
    description=(
        "With WANGGE_REPLICA_URL, `checks.replica` tells whether the read replica answers and "
        "how far behind it replays (`replay_lag_seconds`: time since the last transaction it "
        "replayed was committed on the primary, so it also grows while the primary is idle). "
        "A replica that is down does not make the service unready: its reads go to the primary."
    ),
    responses={503: {"description": "Not ready; the body says which check failed"}},
)
def ready(request: Request, engine: EngineDep, settings: SettingsDep) -> Any:
    checks: dict[str, Any] = {}
    if settings.replica_url:  # informative: a replica that is down sends reads to the primary
        checks["replica"] = replica_status(read_source(request.app))
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
