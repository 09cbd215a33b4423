"""Everything the demo holds: geometry from `spatial.demo_street`, then invented cameras, staff
and events drawn on from the same random stream, so one seed gives one street — and one seed and
a number of streets give one district (`wangge demo load --streets N`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from api.demo.cameras import cameras
from api.demo.events import events
from api.demo.people import staff
from spatial.crs import WGS84, transform
from spatial.demo_street import (
    METRIC_CRS,
    DemoGrid,
    DemoStreet,
    StreetPlan,
    street_from,
    street_plans,
)

MAX_ATTEMPTS = 20


@dataclass
class DemoContents:
    streets: list[DemoStreet]  # grids and buildings, the demo street first
    cameras: list[dict]
    staff: list[dict]
    events: list[dict]

    @property
    def grids(self) -> list[DemoGrid]:
        return [grid for street in self.streets for grid in street.grids]

    @property
    def buildings(self) -> list[dict]:
        return [building for street in self.streets for building in street.buildings]


def demo_contents(seed: int, period_end: datetime, streets: int = 1) -> DemoContents:
    """Build the whole demo deterministically from seed (all geometry in WGS84); the events'
    year ends at `period_end`. The demo street is the same whatever `streets` is; each further
    street draws from a stream of its own (seed, index)."""
    contents = DemoContents([], [], [], [])
    for plan in street_plans(streets):
        _add_street(contents, seed, plan, period_end)
    return contents


def _add_street(contents: DemoContents, seed: int, plan: StreetPlan, period_end: datetime) -> None:
    if plan.index == 0:
        rng = np.random.default_rng(seed)
        street = street_from(rng, plan)
    else:
        # Random roads now and then cut a block the wrong way: the next stream of the same
        # (seed, street) is tried, deterministically.
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([seed, plan.index, attempt])
            try:
                street = street_from(rng, plan)
                break
            except RuntimeError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
    # The draw order (street, cameras, staff, events) is part of what a seed means.
    placed_cameras = cameras(rng, street.roads, street.outline, plan.code)
    people = staff(rng, street.grids)
    prefix = "" if plan.index == 0 else f"{plan.code[-3:]}-"
    placed_events = events(rng, street.blocks, street.block_codes, period_end, prefix)
    for items in (placed_cameras, placed_events):
        if items:
            geoms = transform(np.array([item["geom"] for item in items]), METRIC_CRS, WGS84)
            for item, geom in zip(items, geoms, strict=True):
                item["geom"] = geom
    contents.streets.append(street)
    contents.cameras.extend(placed_cameras)
    contents.staff.extend(people)
    contents.events.extend(placed_events)
