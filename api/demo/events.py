"""The demo street's invented history: a year of events, mostly closed, the last weeks partly open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
from shapely.geometry import Polygon

from spatial.demo_street import random_point_in

EVENT_COUNT = 3000
EVENT_PERIOD_END = datetime(2026, 11, 1, tzinfo=UTC)
EVENT_CATEGORIES = (  # (code, weight, descriptions)
    ("E01", 30, ("暴露垃圾", "乱堆物料", "道路不洁", "违规晾晒")),
    ("E02", 8, ("非法小广告", "违规户外广告", "占道宣传")),
    ("E03", 7, ("施工扰民", "渣土撒漏", "围挡破损")),
    ("E04", 22, ("占道经营", "机动车乱停放", "非机动车乱停放", "店外经营")),
    ("E05", 3, ("火情", "路面塌陷", "燃气泄漏")),
    ("E99", 5, ("噪声投诉", "其他问题")),
    ("C01", 9, ("井盖破损", "路灯不亮", "消防栓损坏")),
    ("C02", 8, ("护栏损坏", "交通标志缺失", "路面破损")),
    ("C03", 3, ("垃圾箱破损", "公厕设施损坏")),
    ("C04", 4, ("绿地脏乱", "行道树倒伏")),
    ("C05", 1, ("违章搭建",)),
)
EVENT_SOURCES = (("patrol", 40), ("hotline_12345", 30), ("app", 15), ("video", 10), ("official", 5))
STATUS_STEPS = ("received", "dispatched", "processing", "closed")


def _weighted(rng: np.random.Generator, options: tuple, count: int) -> np.ndarray:
    weights = np.array([o[1] for o in options], dtype=float)
    return rng.choice(len(options), size=count, p=weights / weights.sum())


def events(
    rng: np.random.Generator, blocks: list[Polygon], block_codes: dict[int, str]
) -> list[dict]:
    """A year of historical events in the micro-grid blocks (metric geometry)."""
    categories = _weighted(rng, EVENT_CATEGORIES, EVENT_COUNT)
    sources = _weighted(rng, EVENT_SOURCES, EVENT_COUNT)
    chosen_blocks = rng.integers(len(blocks), size=EVENT_COUNT)
    ages_h = np.sort(rng.uniform(0, 365 * 24, size=EVENT_COUNT))[::-1]
    result = []
    counters: dict[str, int] = {}
    for i in range(EVENT_COUNT):
        point = random_point_in(blocks[int(chosen_blocks[i])], rng)
        code, _, descriptions = EVENT_CATEGORIES[int(categories[i])]
        source = EVENT_SOURCES[int(sources[i])][0]
        counters[source] = counters.get(source, 0) + 1
        reported = EVENT_PERIOD_END - timedelta(hours=float(ages_h[i]))
        due_hours = {"E05": 2, "E04": 12, "E01": 24}.get(code, 48)
        age_days = ages_h[i] / 24
        closed = age_days > 14 or rng.random() < 0.6
        status = "closed" if closed else str(rng.choice(["received", "dispatched", "processing"]))
        handled_h = float(rng.gamma(2.0, due_hours / 3.0))
        result.append(
            {
                "source": source,
                "external_id": f"{source.upper()}-{reported:%Y%m%d}-{counters[source]:05d}",
                "category_code": code,
                "description": str(rng.choice(descriptions)),
                "grid_code": block_codes[int(chosen_blocks[i])],
                "status": status,
                "reported_at": reported,
                "due_at": reported + timedelta(hours=due_hours),
                "closed_at": reported + timedelta(hours=handled_h) if closed else None,
                "geom": point,
            }
        )
    return result


def history(events: list[dict]) -> Iterator[tuple[int, datetime, str, str]]:
    """received → dispatched → processing → closed, as far as each event got (ids from 1)."""
    for event_id, event in enumerate(events, start=1):
        reached = STATUS_STEPS.index(event["status"])
        start = event["reported_at"]
        end = event["closed_at"] or start + timedelta(hours=3)
        for index in range(reached + 1):
            at = start + (end - start) * index / max(reached, 1)
            yield (event_id, at, STATUS_STEPS[index], "网格员" if index else event["source"])
