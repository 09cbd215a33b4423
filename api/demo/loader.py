"""Load the synthetic demo street into the database in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from api.db import audit, gazetteer_writes
from api.db import demo as demo_tables
from api.db.generations import activate, create_generation
from api.demo.contents import DemoContents, demo_contents
from api.demo.loop import walk_events
from api.settings import WorkflowSettings
from api.workflow.calendar import SHANGHAI
from api.workflow.transitions import load_catalogue
from spatial.demo_gazetteer import DemoGazetteer

GAZETTEER_TABLES = {
    "road": "roads",
    "compound": "compounds",
    "house_number": "house_numbers",
    "poi": "pois",
}


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
    gazetteer: dict[str, int] = field(default_factory=dict)  # rows per place table


def load_demo(
    engine: Engine,
    seed: int,
    *,
    reset: bool = False,
    actor: str = "demo",
    workflow: WorkflowSettings | None = None,
    progress: Callable[[str], None] = lambda _: None,
    streets: int = 1,
) -> DemoSummary:
    """Write the demo street of `seed` (or a district of `streets` streets around it) as a new,
    active generation (`reset`: replacing all data)."""
    progress("生成演示街道" if streets == 1 else f"生成演示城区（{streets} 个街道）")
    # The events' year ends at the start of the load day: the open ones are of the last weeks.
    today = datetime.now(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    contents = demo_contents(seed, today.astimezone(UTC), streets)
    grids, buildings = contents.grids, contents.buildings
    with engine.begin() as connection:
        existing = demo_tables.grid_row_count(connection)
        places = sum(gazetteer_writes.place_row_counts(connection).values())
        if (existing or places) and not reset:
            raise DatabaseNotEmpty(
                f"the database already holds {existing} grid rows and {places} gazetteer rows; "
                "run `wangge demo load --reset` to replace everything with the demo"
            )
        if reset:
            progress("清空现有数据")
            demo_tables.empty_data_tables(connection)
            gazetteer_writes.empty_places(connection, aliases=True)
        what = "演示街道" if streets == 1 else f"演示城区 {streets} 个街道"
        generation = create_generation(connection, f"{what} (seed {seed})", actor)
        progress("写入网格")
        demo_tables.write_grids(connection, grids, generation)
        demo_tables.write_buildings(connection, buildings)
        demo_tables.write_cameras(connection, contents.cameras)
        progress("写入地名地址库")
        gazetteer = write_gazetteer(connection, contents.gazetteers)
        demo_tables.write_staff(connection, contents.staff)
        _write_events(connection, contents, workflow, seed, generation, progress)
        activate(connection, generation, actor)
        audit.record(
            connection,
            actor,
            "demo.load",
            "generation",
            str(generation),
            {"seed": seed, "streets": streets},
        )
    counts: dict[str, int] = {}
    for grid in grids:
        counts[grid.level] = counts.get(grid.level, 0) + 1
    # Committed: statistics written by an ANALYZE that rolls back are lost with it.
    with engine.begin() as connection:
        demo_tables.analyze_demo_tables(connection)
        gazetteer_writes.analyze_places(connection)
    return DemoSummary(
        counts,
        len(buildings),
        len(contents.cameras),
        len(contents.staff),
        contents.event_count,
        generation,
        gazetteer,
    )


def write_gazetteer(connection: Connection, gazetteers: list[DemoGazetteer]) -> dict[str, int]:
    """Every street's roads, compounds, house numbers and POIs; rows written per table."""
    return {
        table: gazetteer_writes.write_places(
            connection, table, (row for g in gazetteers for row in getattr(g, attribute))
        )
        for table, attribute in GAZETTEER_TABLES.items()
    }


def _write_events(
    connection: Connection,
    contents: DemoContents,
    workflow: WorkflowSettings | None,
    seed: int,
    generation: int,
    progress: Callable[[str], None],
) -> None:
    """Street by street: draw the year of events, walk them through the loop, COPY them with
    their history (a district's million are never all in memory). The demo street walks with
    `seed` itself, so it is the same street in a district; ids follow the streets' order."""
    catalogue = load_catalogue(connection, workflow or WorkflowSettings())
    path, worker = _path_of(contents), _worker_of(contents)
    now = datetime.now(UTC)
    total, first_id = contents.event_count, 1
    for index, street in enumerate(contents.street_events):
        progress(f"事件走完闭环并写入：{first_id - 1:,}/{total:,}")
        walks = walk_events(street.draw(), catalogue, path, worker, now, seed + 7919 * index)
        demo_tables.write_events(connection, walks, generation, first_id)
        first_id += len(walks)
    demo_tables.finish_events(connection)
    progress(f"事件已写入：{total:,}")


def _path_of(contents: DemoContents) -> Callable[[str], list[str]]:
    """Root → leaf grid codes of a demo grid."""
    parents = {grid.code: grid.parent_code for grid in contents.grids}

    def path(code: str) -> list[str]:
        codes: list[str] = []
        current: str | None = code
        while current is not None:
            codes.append(current)
            current = parents.get(current)
        return codes[::-1]

    return path


def _worker_of(contents: DemoContents) -> Callable[[str], int | None]:
    """The full-time worker (专职网格员) answering for a grid or micro-grid: staff ids are 1…n."""
    workers = {
        person["grid_code"]: staff_id
        for staff_id, person in enumerate(contents.staff, start=1)
        if person["role"] == "full_time_worker"
    }
    path = _path_of(contents)

    def worker(code: str) -> int | None:
        return next((workers[c] for c in reversed(path(code)) if c in workers), None)

    return worker
