"""Load the synthetic demo street into the database in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from api.db import audit
from api.db.copy import copy_rows
from api.db.generations import activate, create_generation
from spatial.demo_street import DemoStreet, generate

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


class DatabaseNotEmpty(RuntimeError):
    """The demo refuses to mix with existing data unless asked to reset."""


@dataclass
class DemoSummary:
    grids_by_level: dict[str, int]
    buildings: int
    cameras: int
    staff: int
    events: int
    generation_id: int


def load_demo(
    engine: Engine,
    seed: int,
    *,
    reset: bool = False,
    actor: str = "demo",
    progress: Callable[[str], None] = lambda _: None,
) -> DemoSummary:
    progress("生成演示街道")
    street = generate(seed)
    with engine.begin() as connection:
        existing = connection.execute(text("SELECT count(*) FROM grid")).scalar_one()
        if existing and not reset:
            raise DatabaseNotEmpty(
                f"the database already holds {existing} grid rows; "
                "run `wangge demo load --reset` to replace everything with the demo"
            )
        if reset:
            progress("清空现有数据")
            connection.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE"))
        generation = create_generation(connection, f"演示街道 (seed {seed})", actor)
        progress("写入网格")
        _write(connection, street, generation)
        activate(connection, generation, actor)
        audit.record(connection, actor, "demo.load", "generation", str(generation), {"seed": seed})
    counts: dict[str, int] = {}
    for grid in street.grids:
        counts[grid.level] = counts.get(grid.level, 0) + 1
    with engine.connect() as connection:
        connection.execute(text("ANALYZE grid; ANALYZE building; ANALYZE event"))
    return DemoSummary(
        counts,
        len(street.buildings),
        len(street.cameras),
        len(street.staff),
        len(street.events),
        generation,
    )


def _write(connection, street: DemoStreet, generation: int) -> None:
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
            for g in street.grids
        ),
    )
    copy_rows(
        connection,
        "building",
        ("code", "name", "address", "floors", "households", "use", "geom"),
        (
            (b["code"], b["name"], b["address"], b["floors"], b["households"], b["use"], b["geom"])
            for b in street.buildings
        ),
    )
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
            for c in street.cameras
        ),
    )
    copy_rows(
        connection,
        "staff",
        ("id", "name", "phone", "department"),
        ((i, s["name"], s["phone"], s["department"]) for i, s in enumerate(street.staff, start=1)),
    )
    connection.execute(text("SELECT setval('staff_id_seq', (SELECT max(id) FROM staff))"))
    copy_rows(
        connection,
        "staff_assignment",
        ("staff_id", "grid_code", "role"),
        ((i, s["grid_code"], s["role"]) for i, s in enumerate(street.staff, start=1)),
    )
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
            for i, e in enumerate(street.events, start=1)
        ),
    )
    connection.execute(text("SELECT setval('event_id_seq', (SELECT max(id) FROM event))"))
    copy_rows(connection, "event_history", ("event_id", "at", "status", "actor"), _history(street))


def _history(street: DemoStreet):
    """received → dispatched → processing → closed, as far as each event got."""
    steps = ("received", "dispatched", "processing", "closed")
    for event_id, event in enumerate(street.events, start=1):
        reached = steps.index(event["status"])
        start = event["reported_at"]
        end = event["closed_at"] or start + timedelta(hours=3)
        for index in range(reached + 1):
            at = start + (end - start) * index / max(reached, 1)
            yield (event_id, at, steps[index], "网格员" if index else event["source"])
