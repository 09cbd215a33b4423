"""Writing the demo street: emptying the data tables and copying grids, buildings, cameras,
staff, events and their history in (ids from 1, sequences moved past them)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

from api.db.copy import copy_rows
from spatial.demo_street import DemoGrid

DATA_TABLES = (
    "event_history",
    "event",
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


def write_events(
    connection: Connection,
    events: list[dict],
    generation: int,
    history: Iterable[tuple],
) -> None:
    """Events with ids 1…n in list order (WGS84 points), then `history` rows naming those ids."""
    copy_rows(
        connection,
        "event",
        (
            "id",
            "source",
            "external_id",
            "category_code",
            "description",
            "raw_x",
            "raw_y",
            "raw_crs",
            "geom",
            "grid_code",
            "generation_id",
            "status",
            "reported_at",
            "received_at",
            "due_at",
            "closed_at",
            "updated_at",
        ),
        (
            (
                i,
                e["source"],
                e["external_id"],
                e["category_code"],
                e["description"],
                e["geom"].x,
                e["geom"].y,
                "EPSG:4326",
                e["geom"],
                e["grid_code"],
                generation,
                e["status"],
                e["reported_at"],
                e["reported_at"],
                e["due_at"],
                e["closed_at"],
                e["closed_at"] or e["reported_at"],
            )
            for i, e in enumerate(events, start=1)
        ),
    )
    connection.execute(text("SELECT setval('event_id_seq', (SELECT max(id) FROM event))"))
    copy_rows(connection, "event_history", ("event_id", "at", "status", "actor"), history)


def analyze_demo_tables(connection: Connection) -> None:
    """Fresh planner statistics after a bulk load."""
    connection.execute(text("ANALYZE grid; ANALYZE building; ANALYZE event"))
