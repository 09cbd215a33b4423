"""(b) Single lookups under load: the highest request rate each server sustains with p99 ≤ 10 ms.

Open loop: request i is due at start + i / rate whatever happened before, and its latency is
counted from that due time, so a slow server cannot hide its queue (no coordinated omission).
The client holds N keep-alive HTTP/1.1 connections (1, 16, 64, 256), one request in flight on
each, as a calling system's pool would; a request waiting for a free connection is latency too.

The client runs on its own core (CPU 1, uvloop, raw asyncio protocols), the servers on CPU 0
(1 worker) or on both (2 workers: the second shares CPU 1 with the client). PostgreSQL, which
the baseline queries on every request, is not pinned. Points are event-like: on the streets,
which are the grid edges, ±8 m, so most lookups take the index's exact path.

Servers: wangge `GET /api/v1/lookup` (in-memory index, full answer) and the per-request SQL
lookup (`sql_lookup_app.py`, the way MapIt answers), 1 and 2 uvicorn workers each. The client's
own ceiling is measured the same way against a fixed-answer server. `--quick` searches fewer,
shorter steps.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import numpy as np

from bench.common import active_index, engine, event_points, write_result
from bench.load_client import Result, trial

CONNECTIONS = (1, 16, 64, 256)
CLIENT_CPU = 1
WANGGE = "/api/v1/lookup"
SQL = "/lookup"
ECHO_SERVER = """
import asyncio, sys, uvloop
BODY = b'{"matched":true,"grid":{"code":"x"}}'
ANSWER = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n%s" % (
    len(BODY), BODY)
class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(ANSWER * data.count(b"\\r\\n\\r\\n"))
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
uvloop.run(main())
"""


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]  # after the interpreter; {port} is filled in
    path: str
    workers: int
    extra: tuple[tuple[str, str], ...] = ()
    first_rate: float = 200.0  # where the search starts (it doubles, then bisects)
    coarse: bool = False  # 2 s steps, one bisection (the client's ceiling needs no precision)

    def cpus(self) -> str:
        return "0" if self.workers == 1 else "0,1"


def _uvicorn(app: str, workers: int) -> list[str]:
    return [
        "-m",
        "uvicorn",
        app,
        "--port",
        "{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


WGS84 = (("crs", "EPSG:4326"),)
SERVERS = {
    "wangge-1": Server("wangge, 1 worker", _uvicorn("api.main:app", 1), WANGGE, 1, WGS84, 800),
    "wangge-2": Server("wangge, 2 workers", _uvicorn("api.main:app", 2), WANGGE, 2, WGS84, 800),
    "sql-1": Server("per-request SQL, 1 worker", _uvicorn("bench.sql_lookup_app:app", 1), SQL, 1),
    "sql-2": Server("per-request SQL, 2 workers", _uvicorn("bench.sql_lookup_app:app", 2), SQL, 2),
    "echo": Server(
        "client ceiling (fixed answer)", ["-c", ECHO_SERVER, "{port}"], "/", 1, (), 16e3, True
    ),
}


def highest_rate(
    port: int,
    pid: int,
    requests: list[bytes],
    connections: int,
    start: float,
    seconds: float,
    steps: int,
) -> Result | None:
    """The highest rate (±1/2^steps) whose p99 ≤ 10 ms with no error: grow ×2, then bisect."""
    best: Result | None = None
    low, high = 0.0, 0.0
    rate = start
    while high == 0.0:
        result = trial(port, pid, requests, connections, rate, seconds)
        if result.sustained:
            best, low, rate = result, rate, rate * 2
        else:
            high = rate
            if best is None:
                if rate < 20:
                    return None
                rate /= 4
                high = 0.0
    for _ in range(steps):
        rate = (low + high) / 2 if low else high / 2
        result = trial(port, pid, requests, connections, rate, seconds)
        if result.sustained:
            best, low = result, rate
        else:
            high = rate
    return best


# --- servers ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int, path: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(path)
            return b" 200 " in sock.recv(65536).split(b"\r\n", 1)[0] + b" "
    except OSError:
        return False


def start(server: Server) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    port = _free_port()
    command = [part.replace("{port}", str(port)) for part in server.command]
    process = subprocess.Popen(
        ["taskset", "-c", server.cpus(), sys.executable, *command],
        env=os.environ.copy(),
        start_new_session=True,
    )
    probe = requests_for(server, np.array([120.0]), np.array([30.0]))[0]
    for _ in range(600):
        if _ready(port, probe):
            return process, port
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"{server.name} did not start")


def stop(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if process.poll() is None:
        os.killpg(process.pid, 15)  # uvicorn and its worker processes
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def requests_for(server: Server, lon: np.ndarray, lat: np.ndarray) -> list[bytes]:
    return [
        (
            f"GET {server.path}?{urlencode({'lon': f'{x:.7f}', 'lat': f'{y:.7f}', **dict(server.extra)})} "
            "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        ).encode()
        for x, y in zip(lon, lat, strict=True)
    ]


def measure(
    server: Server, lon: np.ndarray, lat: np.ndarray, quick: bool, also_at: dict[int, float]
) -> tuple[dict[int, Result | None], dict[int, Result]]:
    """The highest sustainable rate at each connection count, and a trial at each `also_at`
    rate (the baseline at wangge's rate)."""
    seconds, steps = (2.0, 2) if quick else (3.0, 3)
    if server.coarse:
        seconds, steps = 2.0, 1
    requests = requests_for(server, lon, lat)
    process, port = start(server)
    found: dict[int, Result | None] = {}
    at_rate: dict[int, Result] = {}
    try:
        trial(port, process.pid, requests, 16, 200, 2.0)  # warm-up: PROJ, caches, pools
        guess = server.first_rate
        for connections in CONNECTIONS:
            found[connections] = best = highest_rate(
                port, process.pid, requests, connections, guess, seconds, steps
            )
            guess = max(50.0, best.rate * 0.7) if best else 50.0
            print(f"  {server.name}, {connections} conn: {_cell(best)}", flush=True)
            if connections in also_at:
                rate = also_at[connections]
                at_rate[connections] = trial(
                    port, process.pid, requests, connections, rate, seconds
                )
    finally:
        stop(process)
    return found, at_rate


def _cell(result: Result | None) -> str:
    if result is None:
        return "none"
    return f"{result.rate:,.0f}/s p50 {result.p50_ms:.2f} p99 {result.p99_ms:.2f} ms"


def _row(connections: int, name: str, result: Result | None) -> str:
    if result is None:
        return f"| {connections} | {name} | none ≥ 20/s | | | | | |"
    p99 = f"{result.p99_ms:.2f}" if not result.aborted else "overloaded"
    return (
        f"| {connections} | {name} | {result.rate:,.0f} | {result.p50_ms:.2f} | {p99} | "
        f"{result.errors} / {result.timeouts} | {result.cpu_us:.0f} | {result.waited_ms:.0f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter, coarser steps")
    parser.add_argument("--servers", default=",".join(SERVERS), help=",".join(SERVERS))
    args = parser.parse_args(argv)
    names = args.servers.split(",")
    lon, lat = event_points(active_index(engine()), 20_000)
    os.sched_setaffinity(0, {CLIENT_CPU})
    found: dict[str, dict[int, Result | None]] = {}
    at_ours: dict[str, dict[int, Result]] = {}
    for name in names:
        print(f"{SERVERS[name].name} …", flush=True)
        ours = found.get(name.replace("sql", "wangge"), {}) if name.startswith("sql") else {}
        also_at = {c: r.rate for c, r in ours.items() if r is not None}
        found[name], at_ours[name] = measure(SERVERS[name], lon, lat, args.quick, also_at)
    lines = [
        "## (b′) Single lookups under load: highest rate with p99 ≤ 10 ms, no error or timeout",
        "",
        "Open loop (latency from each request's due time), event-like points, keep-alive "
        "connections; client on CPU 1, a 1-worker server on CPU 0, 2 workers on CPUs 0–1 "
        f"(the second shares CPU 1 with the client); {'2' if args.quick else '3'} s steps, "
        f"rate found to ±{'25' if args.quick else '12.5'} %. CPU: the server's CPU time per "
        "request; waited: time the server was runnable while another process held its core.",
        "",
        "| connections | server | highest rate /s | p50 ms | p99 ms | errors / timeouts "
        "| CPU µs/req | waited ms |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for connections in CONNECTIONS:
        for name in names:
            lines.append(_row(connections, SERVERS[name].name, found[name][connections]))
            if connections in at_ours[name]:
                label = f"{SERVERS[name].name} at wangge's rate"
                lines.append(_row(connections, label, at_ours[name][connections]))
    for workers in (1, 2):
        ours, base = found.get(f"wangge-{workers}"), found.get(f"sql-{workers}")
        if ours and base:
            ratios = []
            for connections in CONNECTIONS:
                a, b = ours[connections], base[connections]
                ratio = f"{a.rate / b.rate:.1f}×" if a and b else "n/a"
                ratios.append(f"{connections} conn {ratio}")
            lines.append("")
            lines.append(
                f"Sustainable rate wangge / SQL, {workers} worker(s): " + ", ".join(ratios) + "."
            )
    write_result("http_load", lines)


if __name__ == "__main__":
    main(sys.argv[1:])
