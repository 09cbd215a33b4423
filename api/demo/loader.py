"""Load the synthetic demo street into the database in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from api.db import audit
from api.db import demo as demo_tables
from api.db.generations import activate, create_generation
from api.demo.contents import demo_contents
from api.demo.events import history


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
    """Write the demo street of `seed` as a new, active generation (`reset`: replacing all data)."""
    progress("生成演示街道")
    contents = demo_contents(seed)
    street = contents.street
    with engine.begin() as connection:
        existing = demo_tables.grid_row_count(connection)
        if existing and not reset:
            raise DatabaseNotEmpty(
                f"the database already holds {existing} grid rows; "
                "run `wangge demo load --reset` to replace everything with the demo"
            )
        if reset:
            progress("清空现有数据")
            demo_tables.empty_data_tables(connection)
        generation = create_generation(connection, f"演示街道 (seed {seed})", actor)
        progress("写入网格")
        demo_tables.write_grids(connection, street.grids, generation)
        demo_tables.write_buildings(connection, street.buildings)
        demo_tables.write_cameras(connection, contents.cameras)
        demo_tables.write_staff(connection, contents.staff)
        demo_tables.write_events(connection, contents.events, generation, history(contents.events))
        activate(connection, generation, actor)
        audit.record(connection, actor, "demo.load", "generation", str(generation), {"seed": seed})
    counts: dict[str, int] = {}
    for grid in street.grids:
        counts[grid.level] = counts.get(grid.level, 0) + 1
    with engine.connect() as connection:
        demo_tables.analyze_demo_tables(connection)
    return DemoSummary(
        counts,
        len(street.buildings),
        len(contents.cameras),
        len(contents.staff),
        len(contents.events),
        generation,
    )
