"""Writing the demo street: emptying the data tables and copying grids, buildings, cameras,
staff, events and their history in (ids from 1, sequences moved past them). Events go in by
COPY street by street, into their monthly partitions (migrations/0008), with their keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from api.db.copy import copy_rows
from api.workflow.calendar import SHANGHAI
from spatial.demo_street import DemoGrid

DATA_TABLES = (
    "patrol_point",
    "patrol",
    "outbox_delivery",
    "outbox",
    "supervision",
    "event_attachment",
    "event_history",
    "event",
    "event_key",
    "staff_assignment",
    "staff",
    "building",
    "monitoring_point",
    "grid",
    "generation_activation",
    "generation",
)


def grid_row_count(connection: Connection) -> int:
    """Grid rows of every generation (the demo refuses to mix with them)."""
    return int(connection.execute(text("SELECT count(*) FROM grid")).scalar_one())


def empty_data_tables(connection: Connection) -> None:
    """Remove every grid, building, point, staff member and event; ids start again from 1."""
    connection.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE"))


def write_grids(connection: Connection, grids: Iterable[DemoGrid], generation: int) -> None:
    """Grids that live in exactly `generation`."""
    copy_rows(
        connection,
        "grid",
        (
            "code",
            "name",
            "level",
            "kind",
            "parent_code",
            "households",
            "population",
            "geom",
            "generation_low",
            "generation_high",
        ),
        (
            (
                g.code,
                g.name,
                g.level,
                g.kind,
                g.parent_code,
                g.households,
                g.population,
                g.geom,
                generation,
                generation,
            )
            for g in grids
        ),
    )


def write_buildings(connection: Connection, buildings: Iterable[dict]) -> None:
    copy_rows(
        connection,
        "building",
        ("code", "name", "address", "floors", "households", "use", "geom"),
        (
            (b["code"], b["name"], b["address"], b["floors"], b["households"], b["use"], b["geom"])
            for b in buildings
        ),
    )


def write_cameras(connection: Connection, cameras: Iterable[dict]) -> None:
    copy_rows(
        connection,
        "monitoring_point",
        ("code", "name", "kind", "heading_deg", "fov_deg", "range_m", "status", "geom"),
        (
            (
                c["code"],
                c["name"],
                c["kind"],
                c["heading_deg"],
                c["fov_deg"],
                c["range_m"],
                c["status"],
                c["geom"],
            )
            for c in cameras
        ),
    )


def write_staff(connection: Connection, staff: list[dict]) -> None:
    """Staff with ids 1…n in list order, and each one's assignment."""
    copy_rows(
        connection,
        "staff",
        ("id", "name", "phone", "department"),
        ((i, s["name"], s["phone"], s["department"]) for i, s in enumerate(staff, start=1)),
    )
    connection.execute(text("SELECT setval('staff_id_seq', (SELECT max(id) FROM staff))"))
    copy_rows(
        connection,
        "staff_assignment",
        ("staff_id", "grid_code", "role"),
        ((i, s["grid_code"], s["role"]) for i, s in enumerate(staff, start=1)),
    )


EVENT_COLUMNS = (
    "source",
    "external_id",
    "category_code",
    "description",
    "grid_code",
    "status",
    "reported_at",
    "received_at",
    "tier",
    "unit_code",
    "assignee_id",
    "accept_due_at",
    "accepted_at",
    "responded_at",
    "dispatched_at",
    "handled_at",
    "due_at",
    "closed_at",
    "postpone_count",
    "rework_count",
    "escalation_count",
    "handling_hours",
    "satisfaction",
    "merged_into",
    "version",
)
COUNTERS = {"postpone_count", "rework_count", "escalation_count"}


def write_events(
    connection: Connection, walks: Sequence[Any], generation: int, first_id: int = 1
) -> None:
    """Events with ids first_id… in list order (WGS84 points), their keys, history and
    supervision orders (`walks`: api/demo/loop.py; a merge names a list position from 1)."""
    ids = range(first_id, first_id + len(walks))
    shift = first_id - 1
    # Every month of the batch gets its partition first (the owner's function, in this
    # transaction: the loader is alone on the tables).
    local = {w.event["reported_at"].astimezone(SHANGHAI) for w in walks}
    for year, month in sorted({(at.year, at.month) for at in local}):
        connection.execute(
            text("SELECT event_partition_ensure(:at)"),
            {"at": datetime(year, month, 15, tzinfo=SHANGHAI)},
        )
    copy_rows(
        connection,
        "event_key",
        ("id", "source", "external_id"),
        ((i, w.event["source"], w.event["external_id"]) for i, w in zip(ids, walks, strict=True)),
    )
    # The keys are written: the event trigger need not write them row by row.
    connection.execute(text("SELECT set_config('wangge.event_keys_written', 'on', true)"))
    copy_rows(
        connection,
        "event",
        ("id", *EVENT_COLUMNS, "raw_x", "raw_y", "raw_crs", "geom", "generation_id", "updated_at"),
        (
            (
                i,
                *(_event_value(w.event, c, shift) for c in EVENT_COLUMNS),
                w.event["geom"].x,
                w.event["geom"].y,
                "EPSG:4326",
                w.event["geom"],
                generation,
                w.history[-1][0],
            )
            for i, w in zip(ids, walks, strict=True)
        ),
    )
    connection.execute(text("SELECT set_config('wangge.event_keys_written', '', true)"))
    copy_rows(
        connection,
        "event_history",
        (
            "event_id",
            "at",
            "action",
            "from_status",
            "status",
            "actor",
            "note",
            "version",
            "details",
        ),
        (
            (i, *_shifted(line, shift))
            for i, w in zip(ids, walks, strict=True)
            for line in w.history
        ),
    )
    copy_rows(
        connection,
        "supervision",
        ("event_id", "reason", "due_at", "issued_by", "issued_at"),
        ((i, *order) for i, w in zip(ids, walks, strict=True) for order in w.supervisions),
    )


def _event_value(event: dict, column: str, shift: int) -> Any:
    value = event.get(column, 0 if column in COUNTERS else None)
    if column == "merged_into" and value is not None:
        return value + shift
    return value


def _shifted(line: tuple, shift: int) -> tuple:
    """A history line; a merge's target moved from list position to id."""
    if shift and line[1] == "merge" and "target" in line[-1]:
        return (*line[:-1], {**line[-1], "target": line[-1]["target"] + shift})
    return line


def finish_events(connection: Connection) -> None:
    """New events are numbered after the demo's."""
    connection.execute(text("SELECT setval('event_id_seq', (SELECT max(id) FROM event_key))"))


def analyze_demo_tables(connection: Connection) -> None:
    """Fresh planner statistics after a bulk load."""
    connection.execute(
        text(
            "ANALYZE grid; ANALYZE building; ANALYZE event; ANALYZE event_key; ANALYZE event_history"
        )
    )
