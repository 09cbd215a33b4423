"""bench/district.py's server part: one wangge process on the district database, measured from
the outside — start-up, memory, every page the district serves, the overview in Chromium with
its vector tiles, the KPI queries, an HTTP lookup batch.

Tokens for the run are made in the database (name `bench-district-<role>`, expiring in two
hours) and deleted at the end, with the coverage check the run stores. The draft it starts (for
the editor's pages) is discarded through the API and kept, as wangge keeps every draft.
"""

from __future__ import annotations

import gzip
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import Engine, text

from api.auth import Role, create_token
from api.db.filters import in_generation
from api.db.generations import generation_at
from api.settings import get_settings
from bench.tipg_env import Server, serve

PAGE_LIMIT = 1_500_000  # bytes: the "no page over 1.5 MB"
TOKEN_PREFIX = "bench-district-"
CHROMIUM = "/usr/bin/chromium"
DESK = {"width": 1920, "height": 1080}
BATCH_POINTS = 100_000
KPI_REPEAT = 3


def _smaps(pid: int) -> dict[str, float]:
    """RSS, PSS, USS (private clean + dirty) and shared, in MB; VmHWM (peak RSS) in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) / 1024
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    return {
        "rss": values["Rss"],
        "pss": values["Pss"],
        "uss": values["Private_Clean"] + values["Private_Dirty"],
        "shared": values["Shared_Clean"] + values["Shared_Dirty"],
        "hwm": int(hwm.split()[1]) / 1024,
    }


@contextmanager
def _tokens(engine: Engine) -> Iterator[dict[str, str]]:
    with engine.begin() as connection:
        grid = connection.execute(
            text("SELECT min(code) FROM grid WHERE level = 'micro_grid'")
        ).scalar_one()
        unit = connection.execute(text("SELECT min(code) FROM handling_unit")).scalar_one()
        secrets = {
            role.value: create_token(
                connection,
                name=TOKEN_PREFIX + role.value,
                role=role,
                grid_codes=(grid,) if role == Role.field_staff else (),
                unit_code=unit if role == Role.handler else None,
                expires_at=datetime.now(UTC) + timedelta(hours=2),
                actor="bench",
            ).secret
            for role in Role
        }
    try:
        yield secrets
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM api_token WHERE name LIKE :p"), {"p": TOKEN_PREFIX + "%"}
            )


def _server(database: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env.update(
        {"WANGGE_DATABASE_URL": get_settings().cluster.url(database=database), "NO_PROXY": "*"}
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    return serve([*command, "--no-access-log"], env, "/api/v1/health")


def measure(
    engine: Engine,
    database: str,
    figures: Any,
    points: tuple[np.ndarray, np.ndarray],
    browser: bool = True,
) -> None:
    with _tokens(engine) as tokens:
        started = time.perf_counter()
        with _server(database) as server:
            startup = time.perf_counter() - started
            memory = _smaps(server.pid)
            figures.add(
                "one server process: start-up to first answer (index built)", f"{startup:.1f} s"
            )
            figures.add(
                "one server process after start-up: RSS / PSS / USS",
                f"{memory['rss']:.0f} / {memory['pss']:.0f} / {memory['uss']:.0f} MB",
                "more workers: bench/index_memory.py",
            )
            created: dict[str, Any] = {}
            try:
                with httpx.Client(base_url=server.base, timeout=600) as client:
                    _batch(client, tokens, figures, *points)
                    _kpis(client, tokens, figures)
                    _pages(client, engine, tokens, figures, created)
                if browser:
                    _browser(server, tokens, figures)
            finally:
                with httpx.Client(base_url=server.base, timeout=120) as client:
                    _clean(client, engine, tokens, created)
            after = _smaps(server.pid)
            figures.add(
                "the same process after the pages, KPIs and batch: RSS / peak RSS",
                f"{after['rss']:.0f} / {after['hwm']:.0f} MB",
            )


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _batch(
    client: httpx.Client, tokens: dict[str, str], figures: Any, lon: np.ndarray, lat: np.ndarray
) -> None:
    """POST /api/v1/lookup/batch with BATCH_POINTS event-like points: row JSON, and the columnar
    JSON form where the server takes it (fields=code: codes only). Best of 2, after a warm-up."""
    lon, lat = lon[:BATCH_POINTS], lat[:BATCH_POINTS]
    rows = {
        "crs": "EPSG:4326",
        "points": [{"lon": float(x), "lat": float(y)} for x, y in zip(lon, lat, strict=True)],
    }
    columns = {"crs": "EPSG:4326", "lon": lon.tolist(), "lat": lat.tolist()}
    headers = _auth(tokens["viewer"])
    for name, body, path in (
        ("row JSON", rows, "/api/v1/lookup/batch"),
        ("columnar JSON, codes only", columns, "/api/v1/lookup/batch?fields=code"),
    ):
        warm = (
            {**body, "points": rows["points"][:10]}
            if "points" in body
            else {**body, "lon": columns["lon"][:10], "lat": columns["lat"][:10]}
        )
        if client.post(path, json=warm, headers=headers).status_code != 200:
            figures.add(f"HTTP `POST {path}`, {name}", "not served by this version")
            continue
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            answer = client.post(path, json=body, headers=headers)
            best = min(best, time.perf_counter() - started)
            answer.raise_for_status()
        figures.add(
            f"HTTP `POST {path}`, {name}, {len(lon):,} event-like points",
            f"{len(lon) / best / 1000:,.0f} k/s ({best:.2f} s)",
            "all forms: bench/batch_http.py",
        )


def _timed_get(
    client: httpx.Client, path: str, headers: dict[str, str]
) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    return seconds, response


def _kpis(client: httpx.Client, tokens: dict[str, str], figures: Any) -> None:
    """Every KPI query (api/workflow/kpis.py on api/db/kpis.py) over HTTP as a supervisor."""
    today = datetime.now(UTC).date()
    year = f"from={today - timedelta(days=364)}&to={today}"
    paths = [
        *(f"/api/v1/kpis?group_by={g}" for g in ("community", "street", "grid", "unit")),
        *(
            f"/api/v1/kpis?group_by={g}&{year}"
            for g in ("community", "street", "grid", "unit", "staff")
        ),
        "/api/v1/kpis?group_by=grid&" + year + "&within=" + "{street}",
        *(f"/api/v1/kpis/trend?interval={i}&{year}" for i in ("day", "week", "month")),
        f"/api/v1/kpis.xlsx?group_by=grid&{year}",
    ]
    headers = _auth(tokens["supervisor"])
    street = client.get("/ogc/collections/grids-street/items?limit=1").json()["features"][0]["id"]
    rows = []
    for path in paths:
        path = path.replace("{street}", str(street))
        first, response = _timed_get(client, path, headers)
        again = [_timed_get(client, path, headers)[0] for _ in range(KPI_REPEAT)]
        groups = (
            len(response.json().get("groups", response.json().get("rows", [])))
            if "xlsx" not in path
            else "-"
        )
        rows.append(
            f"| `{path.replace(str(today - timedelta(days=364)), '…').replace(str(today), '…')}` | "
            f"{first * 1000:.0f} | {statistics.median(again) * 1000:.0f} | {groups} | {len(response.content):,} |"
        )
    figures.sections[
        "KPI queries over HTTP (supervisor token; this month, or the last 365 days)"
    ] = [
        "| request | first ms | median of 3 after, ms | groups | bytes |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def _pages(
    client: httpx.Client,
    engine: Engine,
    tokens: dict[str, str],
    figures: Any,
    created: dict[str, Any],
) -> None:
    """Every page the district serves, as an admin (phone pages: field staff), raw and gzipped."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT level, min(code) FROM grid g WHERE {in_generation('g')} GROUP BY level"),
            {"g": generation_at(connection)},
        ).all()
        codes = {level: code for level, code in rows}
        event = connection.execute(text("SELECT max(id) FROM event")).scalar_one()
    admin = _auth(tokens["admin"])
    started = time.perf_counter()
    check = client.post("/api/v1/coverage/checks", json={}, headers=admin)
    check_s = time.perf_counter() - started
    check.raise_for_status()
    created["check"] = check.json()["id"]
    figures.add(
        "coverage check over HTTP (`POST /api/v1/coverage/checks`, stored)", f"{check_s:.1f} s"
    )
    started = time.perf_counter()
    draft = client.post("/api/v1/drafts", json={"name": "bench district"}, headers=admin)
    draft_s = time.perf_counter() - started
    draft.raise_for_status()
    created["draft"] = draft.json()
    figures.add("a draft of the whole district (`POST /api/v1/drafts`)", f"{draft_s:.1f} s")
    draft_id = created["draft"]["id"]
    pages = [
        ("admin", "/map/street"),
        *(
            ("admin", f"/map/grids/{codes[level]}")
            for level in ("street", "community", "grid", "micro_grid")
        ),
        ("admin", f"/map/events/{event}"),
        ("admin", f"/map/checks/{created['check']}"),
        ("admin", "/map/dashboard"),
        ("admin", "/map/dispatch"),
        ("admin", f"/map/patrols?grid={codes['street']}"),
        ("admin", f"/map/patrols?grid={codes['grid']}"),
        ("admin", "/map/editor"),
        ("admin", f"/map/drafts/{draft_id}/edit"),
        ("admin", f"/map/drafts/{draft_id}/diff"),
        ("admin", "/map/login"),
        ("field_staff", "/m/"),
        ("field_staff", f"/m/events/{event}"),
        ("field_staff", "/m/report"),
        ("field_staff", "/m/patrol"),
        ("field_staff", "/m/grid"),
        (None, "/m/login"),
    ]
    rows, over = [], []
    for role, path in pages:
        cookies = {"wangge_token": tokens[role]} if role else {}
        client.cookies.clear()
        for _ in range(2):  # cold (first render), then warm
            started = time.perf_counter()
            response = client.get(path, cookies=cookies, headers={"Accept-Encoding": "identity"})
            seconds = time.perf_counter() - started
        status = response.status_code
        raw = len(response.content)
        wire = len(gzip.compress(response.content, 6))
        rows.append(
            f"| `{_short(path)}` | {role or '-'} | {status} | {raw:,} | {wire:,} | {seconds * 1000:.0f} |"
        )
        if raw > PAGE_LIMIT:
            over.append(f"{path} ({raw / 1e6:.2f} MB)")
    verdict = "none" if not over else ", ".join(over)
    figures.sections[
        "Every page the district serves (HTML; gzip -6 as sent to a browser that asks)"
    ] = [
        "| page | as | status | bytes | gzipped | ms (second request) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Pages over 1.5 MB (HTML as served, before compression): **{verdict}**.",
    ]
    figures.add(f"pages over 1.5 MB ({len(pages)} pages)", verdict, "none")


def _short(path: str) -> str:
    return path


def _clean(
    client: httpx.Client, engine: Engine, tokens: dict[str, str], created: dict[str, Any]
) -> None:
    draft = created.get("draft")
    if draft:
        with suppress(httpx.HTTPError):
            client.post(
                f"/api/v1/drafts/{draft['id']}/discard",
                json={"version": draft.get("version", 0)},
                headers=_auth(tokens["admin"]),
            )
    with engine.begin() as connection:
        if created.get("check"):
            connection.execute(
                text("DELETE FROM coverage_check WHERE id = :id"), {"id": created["check"]}
            )


def _browser(server: Server, tokens: dict[str, str], figures: Any) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            rows = []
            for title, path, role, switch in (
                ("district overview", "/map/street", "admin", "微网格（"),
                ("command centre (一屏全览)", "/map/dashboard", "supervisor", None),
            ):
                rows += _visit(chromium, server.base, path, tokens[role], title, switch, figures)
        finally:
            chromium.close()
    figures.sections["Pages in Chromium (headless, 1920×1080, fresh context: nothing cached)"] = [
        "| page | requests | tiles | bytes transferred | of which tiles | ms to network idle | largest |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *rows,
    ]


class _Network:
    """Requests of one page as they finish: counts, bytes as transferred (headers + encoded
    body), the largest responses, and when the last one started or finished."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"requests": 0, "tiles": 0, "bytes": 0, "tile_bytes": 0}
        self.sizes: dict[str, int] = {}
        self.pending = 0
        self.last = time.perf_counter()

    def started(self, request: Any) -> None:
        self.pending += 1
        self.last = time.perf_counter()

    def ended(self, request: Any) -> None:
        self.pending -= 1
        self.last = time.perf_counter()

    def finished(self, request: Any) -> None:
        self.ended(request)
        sizes = request.sizes()
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        self.counts["requests"] += 1
        self.counts["bytes"] += size
        self.sizes[request.url] = self.sizes.get(request.url, 0) + size
        if "/tiles/" in request.url:
            self.counts["tiles"] += 1
            self.counts["tile_bytes"] += size

    def idle(self, page: Any, started: float, quiet: float = 0.5) -> float:
        """ms from `started` to the end of the last request, once none ran for `quiet` s."""
        while self.pending > 0 or time.perf_counter() - self.last < quiet:
            page.wait_for_timeout(50)
        return (self.last - started) * 1000

    def largest(self, base: str, count: int = 3) -> str:
        top = sorted(self.sizes.items(), key=lambda item: -item[1])[:count]
        return ", ".join(
            f"{url.removeprefix(base).split('?')[0]} {size / 1e3:,.0f} kB" for url, size in top
        )


def _visit(
    chromium: Any, base: str, path: str, secret: str, title: str, switch: str | None, figures: Any
) -> list[str]:
    context = chromium.new_context(viewport=DESK)
    context.add_cookies([{"name": "wangge_token", "value": secret, "url": base}])
    page = context.new_page()
    network = _Network()
    page.on("request", network.started)
    page.on("requestfailed", network.ended)
    page.on("requestfinished", network.finished)
    rows = []
    try:
        started = time.perf_counter()
        page.goto(base + path, wait_until="load", timeout=120_000)
        idle = network.idle(page, started)
        rows.append(_row(title, network.counts, idle, network.largest(base)))
        figures.add(
            f"{title} `{path}` in Chromium: bytes with tiles, to network idle",
            f"{network.counts['bytes'] / 1e6:.2f} MB, {idle:.0f} ms",
            "≤ 1.5 MB",
        )
        if switch is not None:
            before, network.sizes = dict(network.counts), {}
            started = time.perf_counter()
            page.get_by_text(switch).first.click()
            idle = network.idle(page, started)
            extra = {k: network.counts[k] - before[k] for k in before}
            rows.append(_row("… then the micro-grid layer switched on", extra, idle, ""))
        before, network.sizes = dict(network.counts), {}
        started = time.perf_counter()
        page.goto(base + path, wait_until="load", timeout=120_000)
        idle = network.idle(page, started)
        extra = {k: network.counts[k] - before[k] for k in before}
        rows.append(
            _row("… opened again (same browser: its cache)", extra, idle, network.largest(base))
        )
    finally:
        context.close()
    return rows


def _row(title: str, seen: dict[str, int], idle_ms: float, largest: str) -> str:
    return (
        f"| {title} | {seen['requests']} | {seen['tiles']} | {seen['bytes']:,} | "
        f"{seen['tile_bytes']:,} | {idle_ms:.0f} | {largest} |"
    )
