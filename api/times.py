"""Points in time from clients: aware times in UTC, with offsets PostgreSQL accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

MAX_UTC_OFFSET = timedelta(hours=14)  # the widest offset in use (Kiribati, UTC+14)


def in_utc(value: datetime) -> datetime:
    """An aware time in UTC. PostgreSQL refuses offsets beyond ±15:59 that Python accepts, and
    a time at the edge of Python's calendar may have no UTC equivalent: both are input errors."""
    offset = value.utcoffset()
    if offset is None:
        return value
    if abs(offset) > MAX_UTC_OFFSET:
        raise ValueError("时区偏移应在 -14:00 到 +14:00 之间")
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("时间超出可表示的范围") from error


# A point in time given by a client (ISO-8601); aware times arrive in UTC.
Instant = Annotated[datetime, AfterValidator(in_utc)]
