"""Expensive anonymous reads stay cheap: an earlier generation's index is built once however
many requests ask for it at the same time, and cycling `at=` does not rebuild per request."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tests.conftest import bearer

POINT = {"lon": 120.7395, "lat": 31.3025, "crs": "gcj02"}


def _new_generation(client, tokens, old: str, name: str) -> str:
    """Rename a community through an import; returns a time at which the previous one was active."""
    before = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    layer = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "community"}
    ).content
    renamed = layer.replace(old.encode(), name.encode())
    response = client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "community"},
        files={"file": ("c.geojson", renamed)},
    )
    assert response.status_code == 200, response.text
    return before


def test_earlier_generation_indexes_are_built_once(client, tokens):
    times = [
        _new_generation(client, tokens, "翠湖社区", "翠湖一社区"),
        _new_generation(client, tokens, "翠湖一社区", "翠湖二社区"),
    ]
    store = client.app.state.index_store
    deadline = time.monotonic() + 10
    while store.active().generation != 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the listener picks the publish up (NOTIFY)
    assert store.active().generation == 3 and store.builds == 0

    def ask(when: str) -> int:
        response = client.get("/api/v1/lookup", params={**POINT, "at": when})
        assert response.status_code == 200, response.text
        return response.json()["generation"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(ask, [times[0]] * 24))
    assert set(answers) == {1}
    assert store.builds == 1  # 24 concurrent requests, one build
    for _ in range(5):  # cycling between the two earlier generations: no rebuilds
        assert ask(times[0]) == 1 and ask(times[1]) == 2
    assert store.builds == 2
