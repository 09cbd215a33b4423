"""The monthly partitions of `event` (migrations/0008): which exist, how many rows each holds,
and creating months through the schema's own SECURITY DEFINER functions — the service role has
no DDL right of its own.

Months are Asia/Shanghai calendar months. Anything without a month lands in
event_part.event_default, so nothing accepted is lost; creating its month moves it out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from api.workflow.calendar import SHANGHAI

log = logging.getLogger(__name__)
SCHEMA = "event_part"
DEFAULT = "event_default"
# Months known to have their partition, per process: intake asks the catalogue once per month.
_known: set[str] = set()


def month_name(moment: datetime) -> str:
    """The partition of a moment: event_YYYY_MM of its local month."""
    local = moment.astimezone(SHANGHAI)
    return f"event_{local.year:04d}_{local.month:02d}"


def ensure(connection: Connection, moments: Iterable[datetime]) -> list[str]:
    """Create the missing months of `moments` before rows are written to them.

    Runs in a short transaction of its own (the DDL's locks are not held for the caller's
    transaction) with a lock timeout: if a month cannot be created now, its rows go to the
    default partition and wait for `event_partitions_maintain` — never lost, never an error.
    Returns the months created."""
    wanted = {month_name(m): m for m in moments if m is not None}
    missing = [name for name in wanted if name not in _known]
    if not missing:
        return []
    present = set(
        connection.execute(
            text(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relname = ANY(:names)"
            ),
            {"schema": SCHEMA, "names": missing},
        ).scalars()
    )
    _known.update(present)
    created: list[str] = []
    todo = [name for name in missing if name not in present]
    if not todo:
        return created
    try:
        with connection.engine.connect() as own, own.begin():
            own.execute(text("SET LOCAL lock_timeout = '2s'"))
            for name in todo:
                made = own.execute(
                    text("SELECT event_partition_ensure(:at)"), {"at": wanted[name]}
                ).scalar_one()
                if made is not None:
                    created.append(str(made))
    except SQLAlchemyError as error:  # the rows wait in the default partition
        log.warning("event partitions %s not created now: %s", todo, error)
        return []
    _known.update(created)
    return created


def forget_known() -> None:
    """Forget which months exist (after partitions were dropped, e.g. in tests)."""
    _known.clear()


def maintain(connection: Connection, ahead: int) -> list[str]:
    """Create this month and `ahead` months after it, and every month waiting in the default
    partition (its rows moved into it). Returns the months created."""
    return [
        str(name)
        for name in connection.execute(
            text("SELECT * FROM event_partitions_maintain(:ahead)"), {"ahead": ahead}
        ).scalars()
    ]


def partition_rows(connection: Connection) -> list[dict[str, Any]]:
    """Every partition of `event` in month order (the default last): name, bounds, rows."""
    parts = connection.execute(
        text(
            "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST('event' AS regclass) ORDER BY c.relname"
        )
    ).mappings()
    counts: dict[str, int] = dict(
        connection.execute(
            text(
                "SELECT c.relname, count(*) FROM event e JOIN pg_class c ON c.oid = e.tableoid "
                "GROUP BY c.relname"
            )
        ).all()
    )
    rows = [
        {"name": p["name"], "bound": p["bound"], "rows": int(counts.get(p["name"], 0))}
        for p in parts
    ]
    rows.sort(key=lambda r: (r["name"] == DEFAULT, r["name"]))
    return rows
