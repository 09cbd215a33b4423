"""The demo street's invented history: a year of reported events (api/demo/loop.py takes each
through the loop)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from shapely.geometry import Polygon

from spatial.demo_street import random_point_in

EVENT_COUNT = 3000  # the demo street's year
# Each further street of a district (`--streets N`): 19 of them and the demo street make about
# 1,000,000 events, the volume the partitioned event table is measured at.
DISTRICT_EVENT_COUNT = 52_500
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


def _weighted(rng: np.random.Generator, options: tuple, count: int) -> np.ndarray:
    weights = np.array([o[1] for o in options], dtype=float)
    return rng.choice(len(options), size=count, p=weights / weights.sum())


def events(
    rng: np.random.Generator,
    blocks: list[Polygon],
    block_codes: dict[int, str],
    period_end: datetime,
    prefix: str = "",
    count: int = EVENT_COUNT,
) -> list[dict]:
    """A year of `count` reported events up to `period_end` in the micro-grid blocks (metric
    geometry)."""
    categories = _weighted(rng, EVENT_CATEGORIES, count)
    sources = _weighted(rng, EVENT_SOURCES, count)
    chosen_blocks = rng.integers(len(blocks), size=count)
    ages_h = np.sort(rng.uniform(0, 365 * 24, size=count))[::-1]
    result = []
    counters: dict[str, int] = {}
    for i in range(count):
        point = random_point_in(blocks[int(chosen_blocks[i])], rng)
        code, _, descriptions = EVENT_CATEGORIES[int(categories[i])]
        source = EVENT_SOURCES[int(sources[i])][0]
        counters[source] = counters.get(source, 0) + 1
        reported = period_end - timedelta(hours=float(ages_h[i]))
        result.append(
            {
                "source": source,
                "external_id": f"{prefix}{source.upper()}-{reported:%Y%m%d}-{counters[source]:05d}",
                "category_code": code,
                "description": str(rng.choice(descriptions)),
                "grid_code": block_codes[int(chosen_blocks[i])],
                "reported_at": reported,
                "geom": point,
            }
        )
    return result
