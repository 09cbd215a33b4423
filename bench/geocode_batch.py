"""10,000 address-only events through `POST /api/v1/events` against a running `wangge serve`
(issue 17 §4: the batch must not take the service down).

A database of its own (`wangge_bench_geocode`: created, migrated, the demo street and its gazetteer
loaded when missing; the events are deleted after), `wangge serve` on a port of its own, 10,000 events whose only location is
an address text from the evaluation set (bench/geocode_cases.py), sent as one request of 10,000
and again as 10 requests of 1,000 — while a second client asks `/api/v1/health` every 100 ms and records
how long each answer took. Afterwards the events' grids are compared with the cases' true grids:
the whole service path, not only the matcher.

`python -m bench.geocode_batch [--port 8717]`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import numpy as np
from sqlalchemy import Engine, text

from api.auth import Role, create_token, revoke_token
from api.settings import PROJECT_ROOT
from bench.common import active_index, write_result
from bench.geocode_cases import QUOTAS, Case, make_cases
from bench.geocode_eval import DEMO_DB, bench_database, load_rows
from bench.geocode_score import true_grids

EVENTS = 10_000
CHUNK = 1_000
CATEGORIES = ("E01", "E02", "E03", "E04", "E05", "C01", "C02", "C03")
HEALTH_EVERY_S = 0.1
SOURCE = "bench_geocode"  # its events are deleted after the run (the demo's own are kept)


class HealthWatch(threading.Thread):
    """GET /health every 100 ms on its own connection; latency of each answer, failures."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    answer = client.get("/api/v1/health")
                    if answer.status_code != 200:
                        self.failures.append(f"HTTP {answer.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                self.latencies.append(time.perf_counter() - started)
                self.stop.wait(HEALTH_EVERY_S)

    def summary(self) -> str:
        if not self.latencies:
            return "no probes"
        ms = np.array(self.latencies) * 1000
        return (
            f"{len(ms)} probes, p50 {np.percentile(ms, 50):.0f} ms, p99 "
            f"{np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms, {len(self.failures)} failed"
        )


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    """`wangge serve` on `port` against `url` (its own env: no other WANGGE_ setting leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env |= {"WANGGE_DATABASE_URL": url, "WANGGE_WORKFLOW__SWEEP_SECONDS": "0"}
    wangge = str(PROJECT_ROOT / ".venv" / "bin" / "wangge")
    process = subprocess.Popen(
        [wangge, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode()[-2000:] if process.stderr else "")
        try:
            if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("wangge serve did not start")


def events(cases: list[Case], run: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng(5)
    return [
        {
            "source": SOURCE,
            "external_id": f"{run}-{i}",
            "category_code": str(rng.choice(CATEGORIES)),
            "description": case.text[:4000] or "（无描述）",
            "address": case.text[:5000] or " ",
        }
        for i, case in enumerate(cases)
    ]


def post(
    client: httpx.Client, batch: list[dict[str, Any]]
) -> tuple[float, Counter[str], Counter[str]]:
    """Seconds, outcome counts and the geocoded precisions (manual dispatch apart)."""
    started = time.perf_counter()
    answer = client.post("/api/v1/events", json={"events": batch})
    seconds = time.perf_counter() - started
    counts: Counter[str] = Counter()
    placed: Counter[str] = Counter()
    if answer.status_code not in (200, 201):
        counts[f"HTTP {answer.status_code}"] += len(batch)
        return seconds, counts, placed
    body = answer.json()
    counts.update(body.get("counts", {}))
    for result in body.get("results", []):
        event = result.get("event") or {}
        geocode = (event.get("assignment") or {}).get("geocode") or {}
        precision = geocode.get("precision") or "not matched"
        manual = geocode.get("needs_manual_dispatch")
        placed[f"{precision}{' (manual)' if manual else ''}"] += 1
    return seconds, counts, placed


def landed(
    db: Engine, run: str, cases: list[Case], grids: list[str | None], examples: list[str]
) -> dict[str, int]:
    """The stored events' grids against the cases' true grids (a few wrong ones to `examples`)."""
    with db.connect() as connection:
        stored = dict(
            connection.execute(
                text("SELECT external_id, grid_code FROM event WHERE external_id LIKE :p"),
                {"p": f"{run}-%"},
            ).all()
        )
    tally: Counter[str] = Counter()
    for i, (case, grid) in enumerate(zip(cases, grids, strict=True)):
        got = stored.get(f"{run}-{i}", "missing")
        if got == "missing":
            tally["not stored"] += 1
        elif case.level == "none" or case.relative is not None:
            if case.level == "none":
                tally["no place: given a grid" if got else "no place: manual"] += 1
            else:
                tally["relative phrase: " + ("a grid" if got else "manual")] += 1
        elif grid is None:
            tally["spread: manual" if got is None else "spread: one grid"] += 1
        else:
            verdict = (
                "right grid"
                if got == grid
                else "manual"
                if got is None
                else "its parent grid"  # codes nest: a widened place spanning micro-grids
                if grid.startswith(got)
                else "wrong grid"
            )
            tally[verdict] += 1
            if verdict == "wrong grid" and len(examples) < 8:
                examples.append(f"{case.text} ({case.level} {case.code}): {got}, not {grid}")
    return dict(tally)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8717)
    args = parser.parse_args(
        argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else []
    )
    started = time.perf_counter()
    db = bench_database()
    prepared = time.perf_counter() - started
    rows = load_rows(db)
    made = make_cases(rows, scale=EVENTS / sum(QUOTAS.values()))  # a day's mix of every level
    made = (made * (EVENTS // max(1, len(made)) + 1))[:EVENTS]
    cases = [made[int(i)] for i in np.random.default_rng(5).permutation(len(made))]
    grids = true_grids(cases, active_index(db), {c.code: c.geom for c in rows.compounds})
    with db.begin() as connection:
        token = create_token(connection, name="bench-geocode", role=Role.dispatcher, actor="bench")
    process = serve(db.url.render_as_string(hide_password=False), args.port)
    base = f"http://127.0.0.1:{args.port}"
    lines: list[str] = []
    examples: list[str] = []
    try:
        headers = {"Authorization": f"Bearer {token.secret}"}
        with httpx.Client(base_url=base, headers=headers, timeout=900) as client:
            post(client, events(cases[:20], f"w{uuid.uuid4().hex[:6]}"))
            rows_out = []
            for name, size in (("one request of 10,000", EVENTS), ("10 requests of 1,000", CHUNK)):
                run = f"b{uuid.uuid4().hex[:6]}"
                batch = events(cases, run)
                watch = HealthWatch(base)
                watch.start()
                total: Counter[str] = Counter()
                placed: Counter[str] = Counter()
                seconds: list[float] = []
                begun = time.perf_counter()
                for k in range(0, EVENTS, size):
                    took, counts, precisions = post(client, batch[k : k + size])
                    seconds.append(took)
                    total.update(counts)
                    placed.update(precisions)
                wall = time.perf_counter() - begun
                watch.stop.set()
                watch.join()
                alive = httpx.get(base + "/api/v1/health", timeout=5).status_code == 200
                rows_out.append(
                    (
                        name,
                        wall,
                        seconds,
                        total,
                        watch,
                        alive,
                        landed(db, run, cases, grids, examples),
                        placed,
                    )
                )
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        with db.begin() as connection:  # the database is kept for the next run: not its events
            connection.execute(
                text(
                    "DELETE FROM outbox WHERE event_id IN (SELECT id FROM event WHERE source = :s)"
                ),
                {"s": SOURCE},
            )
            connection.execute(text("DELETE FROM event WHERE source = :s"), {"s": SOURCE})
            revoke_token(connection, token.id, "bench")
        db.dispose()
    lines = [
        f"## (issue 17) {EVENTS:,} address-only events through `POST /api/v1/events`",
        "",
        f"`wangge serve` (1 worker) on its own copy of the demo street ({DEMO_DB}; ready in "
        f"{prepared:.0f} s); each event's only location is an address text from the evaluation "
        "set (geocoded, tier, deadline, duplicates, history, outbox, committed before the reply); "
        f"`/api/v1/health` asked every {HEALTH_EVERY_S * 1000:.0f} ms meanwhile. Client and server share "
        "the 2 cores.",
        "",
        "| how sent | wall | events/s | slowest request | outcomes | /health meanwhile | "
        "alive after |",
        "| --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for name, wall, seconds, total, watch, alive, *_ in rows_out:
        lines.append(
            f"| {name} | {wall:.1f} s | {EVENTS / wall:,.0f} | {max(seconds):.1f} s | "
            f"{', '.join(f'{k} {v:,}' for k, v in sorted(total.items()))} | {watch.summary()} | "
            f"{'yes' if alive else '**no**'} |"
        )
    lines += ["", "Where the events landed (stored `grid_code` against the case's true grid):", ""]
    for name, *_, tally, placed in rows_out:
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.items())))
        lines.append(
            "  answers by precision: " + ", ".join(f"{k} {v:,}" for k, v in placed.most_common())
        )
    if examples:
        lines += ["", "Some of the wrong grids:", "", *[f"- {e}" for e in examples[:8]]]
    write_result("geocode_batch", lines)


if __name__ == "__main__":
    main()
