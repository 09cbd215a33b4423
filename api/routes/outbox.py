"""Notifications out: the delivery status of the outbox (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import AdminDep, ConnectionDep, NoNulCharacters, SettingsDep
from api.errors import error_responses
from api.outbox.status import outbox_status

router = APIRouter(
    tags=["outbox"],
    responses=error_responses(400, 401, 403, 422, 503),
    dependencies=[NoNulCharacters],
)


@router.get(
    "/outbox",
    summary="Webhook delivery status: per target pending, failing, oldest pending, last errors",
    description=(
        "Every state change and warning is a notification in the outbox, delivered to each "
        "configured webhook at least once. `pending=true` lists the undelivered rows (and skips "
        "the delivered totals, which count the whole table)."
    ),
)
def status(
    connection: ConnectionDep,
    settings: SettingsDep,
    admin: AdminDep,
    pending: Annotated[bool, Query(description="List undelivered rows")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="Rows listed at most")] = 100,
) -> dict[str, Any]:
    return outbox_status(connection, settings.workflow, pending=pending, limit=limit)
