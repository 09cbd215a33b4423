"""(b) HTTP single lookup at a fixed request rate: wangge vs a per-request SQL lookup (MapIt-style).

Open loop: request i is due at start + i / rate whatever happened before, and its latency is
counted from that due time, so a slow server cannot hide queueing (no coordinated omission).
Client and server share this machine's 2 cores. The client keeps 16 keep-alive connections,
as a calling system's pool would; a request waiting for a free connection counts as latency.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

from bench.common import active_index, engine, street_points, write_result

RATE = 500
SECONDS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(app: str) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=os.environ.copy(),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/lookup?lon=0&lat=0", timeout=1)
            return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not start")


async def _connection_worker(
    host: str, port: int, queue: asyncio.Queue, latencies: np.ndarray, failures: list[int]
) -> None:
    """One keep-alive HTTP/1.1 connection taking (index, due, path) jobs off the queue."""
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        job = await queue.get()
        if job is None:
            writer.close()
            return
        i, due, path = job
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if b" 200 " not in status:
            failures.append(i)
        latencies[i] = time.perf_counter() - due


async def _drive(
    url: str, lon: np.ndarray, lat: np.ndarray, extra: dict[str, str], connections: int = 16
) -> tuple[np.ndarray, int]:
    """Open loop: request i is queued at its due time; queueing counts as latency."""
    parsed = httpx.URL(url)
    latencies = np.full(len(lon), np.nan)
    failures: list[int] = []
    queue: asyncio.Queue = asyncio.Queue()
    workers = [
        asyncio.create_task(
            _connection_worker(parsed.host, parsed.port or 80, queue, latencies, failures)
        )
        for _ in range(connections)
    ]
    start = time.perf_counter()
    for i in range(len(lon)):
        due = start + i / RATE
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        query = httpx.QueryParams({"lon": lon[i], "lat": lat[i], **extra})
        queue.put_nowait((i, due, f"{parsed.path}?{query}"))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies * 1000, len(failures)


def _measure(app: str, path: str, lon, lat, extra) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
    process, base = _serve(app)
    try:
        asyncio.run(
            _drive(base + path, lon[:1000], lat[:1000], extra)
        )  # warm-up: caches, PROJ per thread
        return asyncio.run(_drive(base + path, lon, lat, extra))
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    index = active_index(engine())
    lon, lat = street_points(index, RATE * SECONDS, seed=5)
    ours, ours_errors = _measure("api.main:app", "/api/v1/lookup", lon, lat, {"crs": "EPSG:4326"})
    base, base_errors = _measure("bench.sql_lookup_app:app", "/lookup", lon, lat, {})

    def row(name: str, values: np.ndarray, errors: int) -> str:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return f"| {name} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {values.max():.1f} | {errors} |"

    p99_ours, p99_base = np.percentile(ours, 99), np.percentile(base, 99)
    write_result(
        "http_lookup",
        [
            f"## (b) HTTP single lookup at {RATE} requests/s for {SECONDS} s "
            "(open loop, 16 client connections, 1 server worker each)",
            "",
            "| server | p50 ms | p90 ms | p99 ms | max ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            row("wangge `/api/v1/lookup` (in-memory index, full answer)", ours, ours_errors),
            row("per-request SQL lookup + path (MapIt-style baseline)", base, base_errors),
            "",
            f"p99 ratio baseline / wangge: {p99_base / p99_ours:.1f}×; p50 ratio: "
            f"{np.percentile(base, 50) / np.percentile(ours, 50):.1f}×.",
        ],
    )


if __name__ == "__main__":
    main()
