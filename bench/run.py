"""`make bench`: run every benchmark against the configured database and collect the results."""

from __future__ import annotations

import platform
from datetime import UTC, datetime

from bench import (
    batch_http,
    bulk_lookup,
    coverage_check,
    district,
    event_loop,
    geocode_batch,
    geocode_csv,
    geocode_eval,
    http_load,
    http_lookup,
    index_memory,
    mobile_tasks,
    ogc_tipg,
    patrols,
    tiles_pyramid,
)
from bench.common import RESULTS


def main() -> None:
    for module in (
        bulk_lookup,
        batch_http,
        http_lookup,
        http_load,
        geocode_csv,
        geocode_eval,
        geocode_batch,
        coverage_check,
        event_loop,
        patrols,
        mobile_tasks,
        ogc_tipg,
        tiles_pyramid,
        district,
        index_memory,
    ):
        module.main()
    parts = [
        (RESULTS / f"{name}.md").read_text()
        for name in (
            "bulk_lookup",
            "batch_http",
            "http_lookup",
            "http_load",
            "geocode_csv",
            "geocode",
            "geocode_batch",
            "event_loop",
            "patrols",
            "ogc_tipg",
            "tiles_pyramid",
            "district",
            "index_memory",
        )
    ]
    header = (
        f"# wangge benchmarks — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, {platform.python_version()}\n"
    )
    (RESULTS / "latest.md").write_text(header + "\n" + "\n".join(parts))
    print(f"written to {RESULTS / 'latest.md'}")


if __name__ == "__main__":
    main()
