"""Everything the demo holds: geometry from `spatial.demo_street`, then invented cameras, staff
and events drawn on from the same random stream, so one seed gives one street — and one seed and
a number of streets give one district (`wangge demo load --streets N`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from api.demo.cameras import cameras
from api.demo.events import DISTRICT_EVENT_COUNT, EVENT_COUNT, events
from api.demo.people import staff
from spatial.crs import WGS84, transform
from spatial.demo_gazetteer import DemoGazetteer, demo_gazetteer
from spatial.demo_street import (
    METRIC_CRS,
    DemoGrid,
    DemoStreet,
    StreetPlan,
    street_from,
    street_plans,
)

MAX_ATTEMPTS = 20
GAZETTEER_STREAM = 17  # the gazetteer draws from (seed, street index, 17): nothing else moves


@dataclass
class StreetEvents:
    """One street's year of events, drawn on demand from the street's random stream where the
    street left it: the same events every time, and a district's million need not all be held
    at once (api/demo/loader.py walks and writes them street by street)."""

    state: dict[str, Any]
    blocks: list
    block_codes: dict[int, str]
    period_end: datetime
    prefix: str
    count: int

    def draw(self) -> list[dict]:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = self.state
        placed = events(
            rng, self.blocks, self.block_codes, self.period_end, self.prefix, self.count
        )
        if placed:
            geoms = transform(np.array([e["geom"] for e in placed]), METRIC_CRS, WGS84)
            for item, geom in zip(placed, geoms, strict=True):
                item["geom"] = geom
        return placed


@dataclass
class DemoContents:
    streets: list[DemoStreet]  # grids and buildings, the demo street first
    cameras: list[dict]
    staff: list[dict]
    street_events: list[StreetEvents] = field(default_factory=list)  # one per street, in order
    gazetteers: list[DemoGazetteer] = field(default_factory=list)  # one per street, in order

    @property
    def grids(self) -> list[DemoGrid]:
        return [grid for street in self.streets for grid in street.grids]

    @property
    def buildings(self) -> list[dict]:
        return [building for street in self.streets for building in street.buildings]

    @property
    def event_count(self) -> int:
        return sum(street.count for street in self.street_events)

    @property
    def events(self) -> list[dict]:
        """Every street's events in order (all held at once: for a street, not a district)."""
        return [event for street in self.street_events for event in street.draw()]


def demo_contents(seed: int, period_end: datetime, streets: int = 1) -> DemoContents:
    """Build the whole demo deterministically from seed (all geometry in WGS84); the events'
    year ends at `period_end`. The demo street is the same whatever `streets` is (its 3,000
    events too); each further street draws from a stream of its own (seed, index) and reports
    DISTRICT_EVENT_COUNT events a year, so a district of 20 holds about a million."""
    contents = DemoContents([], [], [])
    for plan in street_plans(streets):
        _add_street(contents, seed, plan, period_end)
    return contents


def street_of(seed: int, plan: StreetPlan) -> tuple[DemoStreet, np.random.Generator]:
    """The street of `plan` and the random stream it leaves for its cameras, staff and events."""
    if plan.index == 0:
        rng = np.random.default_rng(seed)
        return street_from(rng, plan), rng
    # Random roads now and then cut a block the wrong way: the next stream of the same
    # (seed, street) is tried, deterministically.
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, plan.index, attempt])
        try:
            return street_from(rng, plan), rng
        except RuntimeError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def gazetteer_of(seed: int, plan: StreetPlan, street: DemoStreet) -> DemoGazetteer:
    """The street's roads, compounds, house numbers and POIs (a random stream of their own)."""
    return demo_gazetteer(street, np.random.default_rng([seed, plan.index, GAZETTEER_STREAM]))


def _add_street(contents: DemoContents, seed: int, plan: StreetPlan, period_end: datetime) -> None:
    street, rng = street_of(seed, plan)
    # The draw order (street, cameras, staff, events) is part of what a seed means.
    placed_cameras = cameras(rng, street.roads, street.outline, plan.code)
    people = staff(rng, street.grids)
    prefix = "" if plan.index == 0 else f"{plan.code[-3:]}-"
    contents.street_events.append(
        StreetEvents(
            dict(rng.bit_generator.state),
            street.blocks,
            street.block_codes,
            period_end,
            prefix,
            EVENT_COUNT if plan.index == 0 else DISTRICT_EVENT_COUNT,
        )
    )
    if placed_cameras:
        geoms = transform(np.array([item["geom"] for item in placed_cameras]), METRIC_CRS, WGS84)
        for item, geom in zip(placed_cameras, geoms, strict=True):
            item["geom"] = geom
    contents.streets.append(street)
    contents.gazetteers.append(gazetteer_of(seed, plan, street))
    contents.cameras.extend(placed_cameras)
    contents.staff.extend(people)
