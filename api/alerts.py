"""Alerts from monitoring points (视频/传感器告警, the "看" channel) become events at the point.

A video platform or sensor gateway posts an alert against a camera or sensor code; the event goes
through the one intake (api/events.py) with source `video` or `sensor` and external id
`<point code>:<alert id>`, so a retried alert finds its event and a different alert under the same
id is a conflict, exactly as for any other channel.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Engine

from api.auth import Principal
from api.db import alerts as alert_rows
from api.errors import NotFound
from api.events import EventIn, intake
from api.lookup.index_store import IndexStore
from api.privacy import Caller
from api.settings import WorkflowSettings
from api.times import Instant

SOURCE_OF_KIND = {"camera": "video", "sensor": "sensor"}
# Intake names event fields; an alert's caller sent other ones.
WHERE_IN_ALERT = {
    "category_code": "body.category_code",
    "lon,lat": "path.code",
    "external_id": "body.alert_id",
}


class AlertIn(BaseModel):
    alert_id: str = Field(
        min_length=1,
        max_length=63,  # with a point code of up to 64 characters, within external_id's 128
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The alert's id in the video platform or sensor gateway (idempotency key)",
    )
    category_code: str | None = Field(default=None, max_length=16)
    description: str | None = Field(default=None, max_length=4000)
    kind: Literal["video", "sensor"] | None = Field(
        default=None, description="Default: video for a camera, sensor for a sensor"
    )
    at: Instant | None = Field(default=None, description="When the alert fired (reported_at)")


def receive_alert(
    engine: Engine,
    store: IndexStore,
    code: str,
    alert: AlertIn,
    *,
    principal: Principal,
    settings: WorkflowSettings,
) -> dict[str, Any]:
    """Intake's outcome for the alert's event: created, existing, conflict or invalid."""
    with engine.connect() as connection:
        point = alert_rows.monitoring_point(connection, code)
    if point is None:
        raise NotFound(f"没有编号为 {code} 的监控点", code="point_not_found", where="path.code")
    event = EventIn(
        source=alert.kind or SOURCE_OF_KIND[point["kind"]],
        external_id=f"{code}:{alert.alert_id}",
        category_code=alert.category_code,
        description=alert.description,
        lon=point["lon"],
        lat=point["lat"],
        crs="EPSG:4326",
        reported_at=alert.at,
    )
    [outcome] = intake(
        engine, store, [event], actor=principal.actor, caller=Caller(principal), settings=settings
    )
    error = outcome.get("error")
    if error is not None:
        error["where"] = WHERE_IN_ALERT.get(error.get("where", ""), error.get("where"))
    return outcome
