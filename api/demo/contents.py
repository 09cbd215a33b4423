"""Everything the demo street holds: geometry from `spatial.demo_street`, then invented cameras,
staff and events drawn on from the same random stream, so one seed gives one street."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from api.demo.cameras import cameras
from api.demo.events import events
from api.demo.people import staff
from spatial.crs import WGS84, transform
from spatial.demo_street import METRIC_CRS, DemoStreet, street_from


@dataclass
class DemoContents:
    street: DemoStreet  # grids and buildings
    cameras: list[dict]
    staff: list[dict]
    events: list[dict]


def demo_contents(seed: int, period_end: datetime) -> DemoContents:
    """Build the whole demo deterministically from seed (all geometry in WGS84); the events'
    year ends at `period_end`."""
    rng = np.random.default_rng(seed)
    street = street_from(rng)
    # The draw order (street, cameras, staff, events) is part of what a seed means.
    placed_cameras = cameras(rng, street.roads, street.outline)
    people = staff(rng, street.grids)
    placed_events = events(rng, street.blocks, street.block_codes, period_end)
    for items in (placed_cameras, placed_events):
        if items:
            geoms = transform(np.array([item["geom"] for item in items]), METRIC_CRS, WGS84)
            for item, geom in zip(items, geoms, strict=True):
                item["geom"] = geom
    return DemoContents(street, placed_cameras, people, placed_events)
