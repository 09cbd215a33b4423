"""(a2) Batch lookups over HTTP: 100,000 event-like points per request, in every body form.

Side by side in one run, on the demo street in a database of the benchmark's own: the
in-process index (`locate`), the PostGIS batch join (COPY + GiST + ST_Covers with the tie-break,
as bench/bulk_lookup.py), and `POST /api/v1/lookup/batch` as today's row JSON and as columnar
JSON, Arrow IPC stream and Parquet, codes only (`fields=code`) and with every field but staff.
Each HTTP figure is a whole request as a caller sees it: encode the body, upload, parse, look
up, answer, download, decode. One uvicorn worker; client and server share the machine's cores.
Every answer's codes are checked against PostGIS's.

Points are event-like: on the finest grids' edges (the streets), ±8 m, so many take the index's
exact path. `--quick` uses 20,000 points.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from api.lookup.index_store import IndexStore
from bench.bulk_lookup import postgis_join
from bench.common import demo_database, event_points, timed, write_result

DATABASE = "wangge_bench_columnar"
POINTS = 100_000
URL = "/api/v1/lookup/batch"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
ALL_FIELDS = "code,level,name,path,matched,distance_to_edge_m,on_boundary,runner_up,nearest,lon,lat"


def _serve(database_url: str) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = os.environ | {"WANGGE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning", "--no-access-log"], env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("wangge did not start")


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


Request = Callable[[httpx.Client, np.ndarray, np.ndarray], list[Any]]


def rows(client: httpx.Client, lon: np.ndarray, lat: np.ndarray) -> list[Any]:
    points = [{"lon": x, "lat": y} for x, y in zip(lon.tolist(), lat.tolist(), strict=True)]
    body = orjson.dumps({"crs": "EPSG:4326", "points": points})
    answer = _send(client, body, "application/json", {})
    return [r["grid"]["code"] if r["grid"] else None for r in orjson.loads(answer)["results"]]


def columns(fields: str) -> Request:
    def send(client: httpx.Client, lon: np.ndarray, lat: np.ndarray) -> list[Any]:
        body = orjson.dumps(
            {"crs": "EPSG:4326", "lon": lon, "lat": lat}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        return orjson.loads(_send(client, body, "application/json", {"fields": fields}))["code"]

    return send


def binary(media: str, fields: str) -> Request:
    def send(client: httpx.Client, lon: np.ndarray, lat: np.ndarray) -> list[Any]:
        table = pa.table({"lon": lon, "lat": lat})
        body = _arrow(table) if media == ARROW else _parquet(table)
        answer = _send(client, body, media, {"crs": "EPSG:4326", "fields": fields})
        read = (
            pa.ipc.open_stream(answer).read_all()
            if media == ARROW
            else pq.read_table(io.BytesIO(answer))
        )
        return read.column("code").to_pylist()

    return send


def _send(client: httpx.Client, body: bytes, media: str, params: dict[str, str]) -> bytes:
    response = client.post(URL, content=body, params=params, headers={"Content-Type": media})
    response.raise_for_status()
    return response.content


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 points")
    count = 20_000 if parser.parse_args(argv).quick else POINTS
    db = demo_database(DATABASE)
    try:
        store = IndexStore(db)
        store.refresh()
        index = store.active()
        lon, lat = event_points(index, count)
        locate_s, found = timed(lambda: index.locate(lon, lat))
        join_s, owners = timed(lambda: postgis_join(db, lon, lat, index.generation), repeat=1)
        expected = np.array(owners, dtype=object)
        codes = np.array([r.code for r in index.records] + [None], dtype=object)[found]
        agree = {"in-process index (`locate`)": bool((codes == expected).all())}
        cases: list[tuple[str, Request, int]] = [
            ("HTTP row JSON, full answer (today; baseline)", rows, 1),
            ("HTTP columnar JSON, `fields=code`", columns("code"), 3),
            ("HTTP Arrow IPC stream, `fields=code`", binary(ARROW, "code"), 3),
            ("HTTP Parquet, `fields=code`", binary(PARQUET, "code"), 3),
            ("HTTP columnar JSON, every field but staff", columns(ALL_FIELDS), 2),
            ("HTTP Arrow IPC stream, every field but staff", binary(ARROW, ALL_FIELDS), 2),
            ("HTTP Parquet, every field but staff", binary(PARQUET, ALL_FIELDS), 2),
        ]
        seconds: dict[str, float] = {}
        process, base = _serve(db.url.render_as_string(hide_password=False))
        try:
            with httpx.Client(base_url=base, timeout=120) as client:
                for label, send, repeat in cases:
                    send(client, lon[:1000], lat[:1000])  # warm-up: this thread's PROJ, tables
                    seconds[label], got = timed(lambda s=send: s(client, lon, lat), repeat)
                    agree[label] = bool((np.array(got, dtype=object) == expected).all())
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        db.dispose()
        _drop(DATABASE)
    baseline = seconds[cases[0][0]]
    table = [
        f"| in-process index (`locate`) | {locate_s:.3f} | {count / locate_s:,.0f} | "
        f"{baseline / locate_s:.1f}× | {join_s / locate_s:.1f}× |",
        f"| PostGIS COPY + GiST join | {join_s:.3f} | {count / join_s:,.0f} | "
        f"{baseline / join_s:.1f}× | 1.0× |",
        *(
            f"| {label} | {s:.3f} | {count / s:,.0f} | {baseline / s:.1f}× | {join_s / s:.1f}× |"
            for label, s in seconds.items()
        ),
    ]
    write_result(
        "batch_http",
        [
            f"## (a2) Batch lookups over HTTP: {count:,} event-like points per request "
            f"(demo street, generation {index.generation}, 1 uvicorn worker)",
            "",
            "| path | seconds | points/s | vs row JSON | vs PostGIS join |",
            "| --- | ---: | ---: | ---: | ---: |",
            *table,
            "",
            "HTTP times are whole requests: encode, upload, parse, look up, answer, download, "
            f"decode. Codes agree with PostGIS on every point: {all(agree.values())} "
            f"({sum(agree.values())}/{len(agree)} paths).",
        ],
    )


def _drop(name: str) -> None:
    from psycopg2 import sql
    from sqlalchemy import create_engine

    from api.settings import get_settings

    admin = create_engine(
        get_settings().cluster.url(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        cursor.close()
    admin.dispose()


if __name__ == "__main__":
    main()
