"""Patrols (巡查) through the API against the demo street: tracks walked along its roads (the
micro-grid edges), offline replays, bad input, coverage checked against PostGIS, who sees what,
retention."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import gpxpy
import gpxpy.gpx
import numpy as np
import pytest
import shapely
import typer
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from api.app import create_app
from api.auth import Role, create_token
from api.cli import patrols as patrol_cli
from api.settings import Settings, get_settings
from spatial.crs import WGS84, transform
from tests.conftest import bearer

GRID = "320571005001001"  # the field_staff token's grid
NEIGHBOUR = "320571005001002"
ZONE = "EPSG:4549"
API = "/api/v1"


def app_with_patrols(settings: Settings) -> Any:
    """The app as api/app.py builds it (patrol routes and pages mounted)."""
    return create_app(settings)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(app_with_patrols(settings)) as test_client:
        yield test_client


def _token(engine: Engine, role: Role, name: str, **kwargs: Any) -> tuple[str, int]:
    with engine.begin() as connection:
        made = create_token(connection, name=name, role=role, actor="tests", **kwargs)
    return made.secret, made.id


@pytest.fixture
def people(engine: Engine, tokens: dict[str, str]) -> dict[str, Any]:
    """Two grid workers with staff records: 王 (GRID, on two phones) and 李 (NEIGHBOUR), plus
    the role tokens."""
    with engine.begin() as connection:
        ids = [
            connection.execute(
                text("INSERT INTO staff (name, phone) VALUES (:n, '13800000000') RETURNING id"),
                {"n": name},
            ).scalar_one()
            for name in ("王网格员", "李网格员")
        ]
    wang, _ = _token(engine, Role.field_staff, "王", grid_codes=(GRID,), staff_id=ids[0])
    wang_phone2, _ = _token(engine, Role.field_staff, "王2", grid_codes=(GRID,), staff_id=ids[0])
    li, _ = _token(engine, Role.field_staff, "李", grid_codes=(NEIGHBOUR,), staff_id=ids[1])
    return {
        **tokens,
        "wang": wang,
        "wang_phone2": wang_phone2,
        "li": li,
        "wang_id": ids[0],
        "li_id": ids[1],
    }


# ---- tracks along the demo street's roads -------------------------------------------------------


def micro_grids(client: TestClient, grid: str) -> list[dict[str, Any]]:
    answer = client.get(f"{API}/grids", params={"parent": grid, "limit": 500})
    assert answer.status_code == 200, answer.text
    return answer.json()["features"]


def road_walk(
    client: TestClient,
    grid: str,
    count: int,
    start: datetime,
    *,
    seed: int = 1,
    every_s: float = 5.0,
    speed_mps: float = 1.3,
    noise_m: float = 3.0,
) -> dict[str, np.ndarray]:
    """A worker walking round the first `count` micro-grids of `grid` along their edges (the
    streets), a fix every `every_s` with GPS noise: t (epoch s), lon, lat."""
    rng = np.random.default_rng(seed)
    rings = [
        shapely.get_exterior_ring(
            shapely.get_geometry(shapely.from_geojson(json.dumps(f["geometry"])), 0)
        )
        for f in micro_grids(client, grid)[:count]
    ]
    metric = transform(np.array(rings), WGS84, ZONE)
    line = shapely.LineString(np.concatenate([shapely.get_coordinates(r) for r in metric]))
    distances = np.arange(0.0, line.length, speed_mps * every_s)
    points = shapely.line_interpolate_point(line, distances)
    x = shapely.get_x(points) + rng.normal(0, noise_m, len(points))
    y = shapely.get_y(points) + rng.normal(0, noise_m, len(points))
    back = transform(shapely.points(x, y), ZONE, WGS84)
    times = start.timestamp() + every_s * np.arange(len(points))
    return {"t": times, "lon": shapely.get_x(back), "lat": shapely.get_y(back)}


def fixes_json(walk: dict[str, np.ndarray], rows: slice | np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "t": datetime.fromtimestamp(t, UTC).isoformat(),
            "lon": float(lon),
            "lat": float(lat),
            "accuracy_m": 6.0,
        }
        for t, lon, lat in zip(walk["t"][rows], walk["lon"][rows], walk["lat"][rows], strict=True)
    ]


def this_morning() -> datetime:
    now = datetime.now(UTC)
    return (now - timedelta(hours=3)).replace(microsecond=0)


def start(client: TestClient, secret: str, when: datetime, client_id: str | None = None):
    return client.post(
        f"{API}/patrols",
        headers=bearer(secret),
        json={"client_id": client_id or str(uuid.uuid4()), "started_at": when.isoformat()},
    )


def record(client: TestClient, secret: str, walk: dict[str, np.ndarray], when: datetime) -> int:
    started = start(client, secret, when)
    assert started.status_code == 201, started.text
    patrol_id = started.json()["id"]
    for first in range(0, len(walk["t"]), 2000):
        answer = client.post(
            f"{API}/patrols/{patrol_id}/points",
            headers=bearer(secret),
            json={"points": fixes_json(walk, slice(first, first + 2000))},
        )
        assert answer.status_code == 200, answer.text
    last = datetime.fromtimestamp(walk["t"][-1], UTC)
    stopped = client.post(
        f"{API}/patrols/{patrol_id}/stop",
        headers=bearer(secret),
        json={"ended_at": (last + timedelta(seconds=1)).isoformat()},
    )
    assert stopped.status_code == 200, stopped.text
    return patrol_id


# ---- the phone ----------------------------------------------------------------------------------


def test_a_patrol_from_the_phone_offline_batches_replays_and_jumps(client, people, engine):
    when = this_morning()
    walk = road_walk(client, GRID, 3, when)
    count = len(walk["t"])
    jumps = [count // 6, count // 6 + 1, count * 5 // 6]  # the position leaps 600 m east
    for i in jumps:
        moved = transform(shapely.Point(walk["lon"][i], walk["lat"][i]), WGS84, ZONE)
        back = transform(shapely.Point(moved.x + 600, moved.y), ZONE, WGS84)
        walk["lon"][i], walk["lat"][i] = back.x, back.y

    client_id = str(uuid.uuid4())
    first = start(client, people["wang"], when, client_id)
    assert first.status_code == 201, first.text
    patrol = first.json()
    assert (patrol["staff_id"], patrol["source"], patrol["points"]) == (
        people["wang_id"],
        "phone",
        0,
    )
    replay = start(client, people["wang"], when, client_id)
    assert (replay.status_code, replay.json()["id"]) == (200, patrol["id"])
    reused = start(client, people["wang"], when + timedelta(minutes=1), client_id)
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "client_id_reused")

    url = f"{API}/patrols/{patrol['id']}/points"
    thirds = np.array_split(np.arange(count), 3)
    answers = {}
    for part in (2, 0, 1):  # the offline queue syncs the last third first
        answer = client.post(
            url, headers=bearer(people["wang"]), json={"points": fixes_json(walk, thirds[part])}
        )
        assert answer.status_code == 200, answer.text
        answers[part] = answer.json()
    assert [answers[p]["added"] for p in (0, 1, 2)] == [len(t) for t in thirds]
    assert sum(answers[p]["dropped"] for p in (0, 1, 2)) == len(jumps)
    replayed = client.post(
        url, headers=bearer(people["wang"]), json={"points": fixes_json(walk, thirds[1])}
    )
    assert replayed.json() | {"patrol": None} == {
        "patrol": None,
        "received": len(thirds[1]),
        "added": 0,
        "duplicates": len(thirds[1]),
        "dropped": 0,
    }
    stats = replayed.json()["patrol"]
    assert (stats["points"], stats["dropped_points"]) == (count, len(jumps))
    # The same person on another phone may go on recording the same patrol.
    late = datetime.fromtimestamp(walk["t"][-1] + 5, UTC).isoformat()
    extra = client.post(
        url,
        headers=bearer(people["wang_phone2"]),
        json={
            "points": [{"t": late, "lon": float(walk["lon"][-1]), "lat": float(walk["lat"][-1])}]
        },
    )
    assert (extra.status_code, extra.json()["added"]) == (200, 1)

    ended = datetime.fromtimestamp(walk["t"][-1] + 10, UTC).isoformat()
    stop_url = f"{API}/patrols/{patrol['id']}/stop"
    stopped = client.post(stop_url, headers=bearer(people["wang"]), json={"ended_at": ended})
    assert stopped.status_code == 200 and stopped.json()["ended_at"] is not None
    again = client.post(stop_url, headers=bearer(people["wang"]), json={"ended_at": ended})
    assert again.json() == stopped.json()
    other_end = client.post(stop_url, headers=bearer(people["wang"]), json={"ended_at": late})
    assert (other_end.status_code, other_end.json()["error"]["code"]) == (409, "patrol_stopped")

    track = client.get(f"{API}/patrols/{patrol['id']}", headers=bearer(people["wang"])).json()
    lines = [f for f in track["features"] if f["properties"]["kind"] == "track"]
    fixes = [f for f in track["features"] if f["properties"]["kind"] == "fix"]
    assert len(lines) == 1 and len(fixes) == count + 1
    assert [f["properties"]["t"] for f in fixes] == sorted(f["properties"]["t"] for f in fixes)
    assert sum(not f["properties"]["kept"] for f in fixes) == len(jumps)
    vertices = len(lines[0]["geometry"]["coordinates"])
    assert 10 < vertices < count / 2  # simplified
    assert lines[0]["properties"]["times"] == sorted(lines[0]["properties"]["times"])
    with engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT ST_GeometryType(track), ST_Zmflag(track), ST_NPoints(track), grid_code, "
                "ST_M(ST_StartPoint(track)), length_m, "
                "ST_Length(ST_Transform(ST_Force2D(track), 4549)) AS metres "
                "FROM patrol WHERE id = :id"
            ),
            {"id": patrol["id"]},
        ).one()
    assert stored[:4] == ("ST_LineString", 1, vertices, GRID)  # 1: M only
    assert stored[4] == pytest.approx(walk["t"][0])
    assert stored.length_m == pytest.approx(stored.metres, rel=1e-3)
    # No jump survives: the track stays within the walk's streets.
    east = shapely.get_x(
        transform(shapely.points(lines[0]["geometry"]["coordinates"]), WGS84, ZONE)
    )
    walked = transform(shapely.points(walk["lon"], walk["lat"]), WGS84, ZONE)
    assert east.max() <= shapely.get_x(np.delete(walked, jumps)).max() + 0.01


def test_bad_batches_are_refused_whole_naming_the_point(client, people, engine):
    when = this_morning()
    patrol_id = start(client, people["wang"], when).json()["id"]
    walk = road_walk(client, GRID, 1, when + timedelta(seconds=10))
    good = fixes_json(walk, slice(0, 5))
    url = f"{API}/patrols/{patrol_id}/points"
    cases = {
        "time_backwards": [good[0], good[1], good[3], good[2], good[4]],
        "swapped_coordinates": [
            *good[:3],
            {**good[3], "lon": good[3]["lat"], "lat": good[3]["lon"]},
        ],
        "outside_china": [*good[:2], {**good[2], "lon": 2.35, "lat": 48.86}],
        "point_before_start": [
            {**good[0], "t": (when - timedelta(hours=1)).isoformat()},
            *good[1:],
        ],
    }
    where = {
        "time_backwards": "body.points[3]",
        "swapped_coordinates": "body.points[3]",
        "outside_china": "body.points[2]",
        "point_before_start": "body.points[0].t",
    }
    for code, points in cases.items():
        answer = client.post(url, headers=bearer(people["wang"]), json={"points": points})
        error = answer.json()["error"]
        assert (answer.status_code, error["code"], error["where"]) == (422, code, where[code])
        assert error["message"]
    backwards = client.post(
        url, headers=bearer(people["wang"]), json={"points": cases["time_backwards"]}
    )
    assert good[2]["t"].replace("+00:00", "Z") in backwards.json()["error"]["message"]
    naive = client.post(
        url,
        headers=bearer(people["wang"]),
        json={"points": [{**good[0], "t": "2024-05-01T08:00:00"}]},
    )
    assert (naive.status_code, naive.json()["error"]["where"]) == (422, "body.points.0.t")
    too_many = client.post(url, headers=bearer(people["wang"]), json={"points": [good[0]] * 5001})
    assert (too_many.status_code, too_many.json()["error"]["where"]) == (422, "body.points")
    empty = client.post(url, headers=bearer(people["wang"]), json={"points": []})
    assert empty.status_code == 422
    missing = client.post(
        f"{API}/patrols/999999/points", headers=bearer(people["wang"]), json={"points": good}
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "patrol_not_found")
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM patrol_point WHERE patrol_id = :id"), {"id": patrol_id}
        ).scalar_one()
    assert stored == 0  # nothing half-written
    future = start(client, people["wang"], datetime.now(UTC) + timedelta(hours=2))
    assert (future.status_code, future.json()["error"]["code"]) == (422, "time_in_future")
    old = start(client, people["wang"], datetime.now(UTC) - timedelta(days=181))
    assert (old.status_code, old.json()["error"]["code"]) == (422, "beyond_retention")


def test_only_the_worker_adds_to_their_patrol(client, people):
    patrol_id = start(client, people["wang"], this_morning()).json()["id"]
    point = {"t": this_morning().isoformat(), "lon": 120.735, "lat": 31.305}
    answers = {
        caller: client.post(
            f"{API}/patrols/{patrol_id}/points",
            headers=bearer(people[caller]),
            json={"points": [point]},
        )
        for caller in ("wang", "wang_phone2", "li", "admin", "supervisor", "viewer")
    }
    codes = {
        caller: (a.status_code, a.json().get("error", {}).get("code"))
        for caller, a in answers.items()
    }
    assert codes == {
        "wang": (200, None),
        "wang_phone2": (200, None),  # the same person on a new phone
        "li": (403, "not_your_patrol"),
        "admin": (403, "not_your_patrol"),
        "supervisor": (403, "not_your_patrol"),
        "viewer": (403, "insufficient_role"),  # no work_events
    }
    assert answers["wang_phone2"].json()["duplicates"] == 1


# ---- files from other apps ----------------------------------------------------------------------


def gpx_file(walk: dict[str, np.ndarray], rows: slice = slice(None)) -> bytes:
    """A GPX 1.1 track written by gpxpy, as another app would export it."""
    document = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack(name="巡查")
    segment = gpxpy.gpx.GPXTrackSegment()
    for t, lon, lat in zip(walk["t"][rows], walk["lon"][rows], walk["lat"][rows], strict=True):
        segment.points.append(
            gpxpy.gpx.GPXTrackPoint(
                latitude=float(lat), longitude=float(lon), time=datetime.fromtimestamp(t, UTC)
            )
        )
    track.segments.append(segment)
    document.tracks.append(track)
    return document.to_xml(version="1.1").encode()


def upload(client: TestClient, secret: str, name: str, data: bytes, **form: str):
    return client.post(
        f"{API}/patrols/upload",
        headers=bearer(secret),
        files={"file": (name, data)},
        data=form,
    )


def test_a_gpx_track_written_by_gpxpy_becomes_a_patrol(client, people):
    walk = road_walk(client, GRID, 2, this_morning(), seed=3)
    data = gpx_file(walk)
    assert len(gpxpy.parse(io.BytesIO(data)).tracks[0].segments[0].points) == len(walk["t"])
    first = upload(client, people["wang"], "track.gpx", data)
    assert first.status_code == 201, first.text
    patrol = first.json()
    assert (patrol["source"], patrol["points"], patrol["dropped_points"], patrol["grid_code"]) == (
        "gpx",
        len(walk["t"]),
        0,
        GRID,
    )
    assert patrol["started_at"] == datetime.fromtimestamp(walk["t"][0], UTC).isoformat()
    assert patrol["ended_at"] == datetime.fromtimestamp(walk["t"][-1], UTC).isoformat()
    again = upload(client, people["wang"], "track.gpx", data)
    assert (again.status_code, again.json()["id"]) == (200, patrol["id"])
    # What the API gives back is the same walk: every fix, in order, at the same place.
    track = client.get(f"{API}/patrols/{patrol['id']}", headers=bearer(people["wang"])).json()
    fixes = [f for f in track["features"] if f["properties"]["kind"] == "fix"]
    assert np.allclose(
        [f["geometry"]["coordinates"] for f in fixes],
        np.column_stack([walk["lon"], walk["lat"]]),
        atol=1e-7,
    )


def test_geojson_tracks_lines_with_times_and_timed_points(client, people):
    walk = road_walk(client, GRID, 1, this_morning(), seed=4)
    iso = [datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z") for t in walk["t"]]
    half = len(iso) // 2
    lines = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "MultiLineString",
                    "coordinates": [
                        np.column_stack([walk["lon"][:half], walk["lat"][:half]]).tolist(),
                        np.column_stack([walk["lon"][half:], walk["lat"][half:]]).tolist(),
                    ],
                },
                "properties": {"coordTimes": [iso[:half], iso[half:]]},
            }
        ],
    }
    answer = upload(client, people["wang"], "track.geojson", json.dumps(lines).encode())
    assert answer.status_code == 201, answer.text
    assert (answer.json()["source"], answer.json()["points"]) == ("geojson", len(iso))
    points = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]},
                "properties": {"time": t, "accuracy_m": 150 if i == 3 else 5},
            }
            for i, (lon, lat, t) in enumerate(zip(walk["lon"], walk["lat"], iso, strict=True))
        ],
    }
    answer = upload(
        client, people["wang"], "points.geojson", json.dumps(points).encode(), client_id="pts-1"
    )
    assert answer.status_code == 201, answer.text
    assert (answer.json()["points"], answer.json()["dropped_points"]) == (len(iso), 1)  # inaccurate


def test_bad_track_files_answer_what_is_wrong(client, people, settings):
    walk = road_walk(client, GRID, 1, this_morning(), seed=5)
    gpx = gpx_file(walk).decode()
    no_time = gpx.replace("<time>", "<!-- ").replace("</time>", " -->")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><gpx>&b;</gpx>'
    )
    external = '<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY x SYSTEM "file:///etc/passwd">]><gpx>&x;</gpx>'
    lines = gpx.split("<trkpt")
    backwards = "<trkpt".join([lines[0], *lines[1:3][::-1], *lines[3:]])
    mercator = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        "features": [],
    }
    polygon = {
        "type": "Polygon",
        "coordinates": [[[120.7, 31.3], [120.8, 31.3], [120.7, 31.4], [120.7, 31.3]]],
    }
    swapped = gpx.replace(
        f'lat="{walk["lat"][2]}" lon="{walk["lon"][2]}"',
        f'lat="{walk["lon"][2]}" lon="{walk["lat"][2]}"',
    )
    cases = {
        "empty_file": b"",
        "unsupported_format": b"lon,lat,time\n120.7,31.3,2024-05-01T00:00:00Z\n",
        "unreadable_file": b"<gpx><trk><trkseg><trkpt lat='31.3'",
        "unsafe_xml": bomb.encode(),
        "missing_time": no_time.encode(),
        "time_backwards": backwards.encode(),
        "unsupported_crs": json.dumps(mercator).encode(),
        "invalid_geometry": json.dumps(polygon).encode(),
        "no_track_points": b'{"type": "FeatureCollection", "features": []}',
        "swapped_coordinates": swapped.encode(),
        "invalid_time": json.dumps(
            {
                "type": "LineString",
                "coordinates": [[120.73, 31.30, 0, 1e20], [120.74, 31.30, 0, 1e20 + 5]],
            }
        ).encode(),
        "invalid_coordinates": b'{"type": "LineString", "coordinates": [[1'
        + b"0" * 400
        + b", 31.3, 0, 1714521600]]}",
    }
    assert swapped != gpx
    answers = {code: upload(client, people["wang"], "f", data) for code, data in cases.items()}
    answers["unsafe_xml external"] = upload(client, people["wang"], "f", external.encode())
    got = {
        code: (a.status_code, a.json()["error"]["code"], a.json()["error"]["where"])
        for code, a in answers.items()
    }
    assert got == {
        **{code: (422, code, "body.file") for code in cases},
        "unsafe_xml external": (422, "unsafe_xml", "body.file"),
    }
    assert "第 1 段第 1 个点没有时间" in answers["missing_time"].json()["error"]["message"]
    too_big = b" " * (settings.patrols.max_upload_bytes + 1)
    huge = upload(client, people["wang"], "huge.gpx", too_big)
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "payload_too_large")
    listed = client.get(f"{API}/patrols", headers=bearer(people["wang"])).json()
    assert listed["total"] == 0  # nothing was stored


# ---- coverage -----------------------------------------------------------------------------------


def local_day(moment: datetime) -> str:
    return (moment + timedelta(hours=8)).date().isoformat()  # Asia/Shanghai has no DST


def postgis_coverage(
    engine: Engine, grid: str, patrol_ids: list[int], buffer_m: float
) -> dict[str, Any]:
    """The same figures the slow way: PostGIS joins over the stored tracks, in EPSG:4549."""
    query = """
        WITH gen AS (
            SELECT generation_id AS g FROM generation_activation ORDER BY activated_at DESC, id DESC LIMIT 1
        ), area AS (
            SELECT geom FROM grid, gen WHERE code = :grid AND generation_low <= gen.g AND generation_high >= gen.g
        ), micro AS (
            SELECT code, geom FROM grid, gen WHERE parent_code = :grid AND generation_low <= gen.g AND generation_high >= gen.g
        ), tracks AS (
            SELECT ST_Force2D(track) AS line FROM patrol WHERE id = ANY(:ids)
        ), buildings AS (
            SELECT b.geom FROM building b, area WHERE ST_Covers(area.geom, ST_PointOnSurface(b.geom))
        ), streets AS (
            SELECT ST_Transform(ST_Union(ST_Boundary(geom)), 4549) AS lines FROM micro
        )
        SELECT
            (SELECT count(*) FROM micro) AS micro_total,
            (SELECT count(*) FROM micro m WHERE EXISTS (SELECT 1 FROM tracks t WHERE ST_Intersects(t.line, m.geom))) AS micro_visited,
            (SELECT count(*) FROM buildings) AS buildings_total,
            (SELECT count(*) FROM buildings b WHERE EXISTS (
                SELECT 1 FROM tracks t WHERE ST_DWithin(ST_Transform(b.geom, 4549), ST_Transform(t.line, 4549), :buffer)
            )) AS buildings_passed,
            (SELECT ST_Length(lines) FROM streets) AS street_m,
            (SELECT ST_Length(ST_Intersection(s.lines, ST_Buffer(ST_Transform(ST_Collect(t.line), 4549), 20)))
               FROM streets s, tracks t GROUP BY s.lines) AS walked_m
    """
    with engine.connect() as connection:
        row = connection.execute(
            text(query), {"grid": grid, "ids": patrol_ids, "buffer": buffer_m}
        ).one()
    return dict(row._mapping)


def test_coverage_agrees_with_postgis_per_worker_and_in_all(client, people, engine):
    when = this_morning()
    wang = record(client, people["wang"], road_walk(client, GRID, 4, when, seed=6), when)
    li = record(client, people["li"], road_walk(client, NEIGHBOUR, 3, when, seed=7), when)
    period = {"grid": GRID, "from": local_day(when), "to": local_day(datetime.now(UTC))}
    answer = client.get(
        f"{API}/patrols/coverage", headers=bearer(people["supervisor"]), params=period
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    both = postgis_coverage(engine, GRID, [wang, li], 30)
    mine = postgis_coverage(engine, GRID, [wang], 30)
    assert body["micro_grids"] == {
        "total": both["micro_total"],
        "visited": both["micro_visited"],
        "share": round(both["micro_visited"] / both["micro_total"], 4),
    }
    assert 4 <= body["micro_grids"]["visited"] < body["micro_grids"]["total"]
    assert (body["buildings"]["total"], body["buildings"]["passed"]) == (
        both["buildings_total"],
        both["buildings_passed"],
    )
    assert 0 < body["buildings"]["passed"] < body["buildings"]["total"]
    assert body["streets"]["length_m"] == pytest.approx(both["street_m"], abs=1)
    # Pieces of 5 m against the exact intersection: a piece at most at each end of a stretch.
    assert body["streets"]["walked_m"] == pytest.approx(both["walked_m"], rel=0.03)
    rows = {row["staff_id"]: row for row in body["by_staff"]}
    assert set(rows) <= {people["wang_id"], people["li_id"]} and people["wang_id"] in rows
    wang_row = rows[people["wang_id"]]
    assert (wang_row["staff_name"], wang_row["patrols"]) == ("王网格员", 1)
    assert (wang_row["micro_grids"]["visited"], wang_row["buildings"]["passed"]) == (
        mine["micro_visited"],
        mine["buildings_passed"],
    )
    visits = {item["code"]: item["visits"] for item in body["micro_grid_visits"]}
    assert len(visits) == both["micro_total"]
    assert sum(v > 0 for v in visits.values()) == both["micro_visited"]
    kinds = [f["properties"]["kind"] for f in body["not_visited"]["features"]]
    assert kinds.count("micro_grid") == both["micro_total"] - both["micro_visited"]
    assert kinds.count("building") == both["buildings_total"] - both["buildings_passed"]
    assert kinds.count("street") == 1

    wider = client.get(
        f"{API}/patrols/coverage",
        headers=bearer(people["supervisor"]),
        params={**period, "buffer_m": 60},
    ).json()
    assert (
        wider["buildings"]["passed"]
        == postgis_coverage(engine, GRID, [wang, li], 60)["buildings_passed"]
    )
    assert wider["buildings"]["passed"] > body["buildings"]["passed"]
    only_li = client.get(
        f"{API}/patrols/coverage",
        headers=bearer(people["supervisor"]),
        params={**period, "staff": people["li_id"]},
    ).json()
    assert [row["staff_id"] for row in only_li["by_staff"]] in ([], [people["li_id"]])
    yesterday = (datetime.fromisoformat(period["from"]) - timedelta(days=1)).date().isoformat()
    before = client.get(
        f"{API}/patrols/coverage",
        headers=bearer(people["supervisor"]),
        params={**period, "from": yesterday, "to": yesterday},
    ).json()
    assert (before["patrols"], before["micro_grids"]["visited"], before["streets"]["walked_m"]) == (
        0,
        0,
        0,
    )
    too_long = client.get(
        f"{API}/patrols/coverage",
        headers=bearer(people["supervisor"]),
        params={**period, "from": "2024-01-01", "to": "2024-03-01"},
    )
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (422, "invalid_period")
    far = client.get(
        f"{API}/patrols/coverage",
        headers=bearer(people["supervisor"]),
        params={**period, "from": "9999-12-31", "to": "9999-12-31"},
    )
    assert (far.status_code, far.json()["error"]["where"]) == (422, "query.from")
    unknown = client.get(
        f"{API}/patrols/coverage",
        headers=bearer(people["supervisor"]),
        params={**period, "grid": "nope"},
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "grid_not_found")


# ---- who sees what ------------------------------------------------------------------------------

READERS = [
    "admin",
    "supervisor",
    "dispatcher",
    "planner",
    "handler",
    "viewer",
    "field_staff",
    "wang",
    "wang_phone2",
    "li",
    "anonymous",
]


def test_tracks_and_coverage_are_personal_data(client, people):
    when = this_morning()
    wang = record(client, people["wang"], road_walk(client, GRID, 1, when, seed=8), when)
    record(client, people["li"], road_walk(client, NEIGHBOUR, 1, when, seed=9), when)
    period = {"from": local_day(when), "to": local_day(datetime.now(UTC))}

    def ask(caller: str, path: str, **params: Any):
        headers = bearer(people[caller]) if caller != "anonymous" else {}
        answer = client.get(f"{API}{path}", headers=headers, params={**period, **params})
        body = answer.json()
        return answer.status_code, body.get("error", {}).get("code"), body

    pairs = 0
    for caller in READERS:
        track, listing, coverage = (
            ask(caller, f"/patrols/{wang}"),
            ask(caller, "/patrols"),
            ask(caller, "/patrols/coverage", grid=GRID),
        )
        pairs += 3
        if caller == "anonymous":
            assert {track[:2], listing[:2], coverage[:2]} == {(401, "token_required")}
            continue
        # Tracks: the worker, supervisors and admins (the words); figures: dispatchers too.
        everyone = caller in ("admin", "supervisor")
        figures = everyone or caller == "dispatcher"
        own = caller in ("wang", "wang_phone2")
        assert track[:2] == ((200, None) if everyone or own else (403, "track_not_visible")), caller
        assert listing[0] == 200 and listing[2]["only_mine"] is not everyone, caller
        assert listing[2]["total"] == (2 if everyone else 1 if own or caller == "li" else 0), caller
        if figures or own or caller == "field_staff":
            assert coverage[0] == 200, caller
            names = {row["staff_name"] for row in coverage[2]["by_staff"]}
            if figures:  # 李's walk next door may come within reach of the grid's streets
                assert "王网格员" in names and names <= {"王网格员", "李网格员"}, caller
            else:
                assert names == ({"王网格员"} if own else set()), caller
        elif caller == "li":
            assert coverage[:2] == (403, "outside_token_scope")
        else:
            assert coverage[:2] == (403, "insufficient_role"), caller
    assert pairs == 3 * len(READERS) == 33
    own_coverage = ask("li", "/patrols/coverage", grid=NEIGHBOUR)
    assert own_coverage[0] == 200 and [r["staff_name"] for r in own_coverage[2]["by_staff"]] == [
        "李网格员"
    ]
    assert ask("wang", "/patrols/coverage", grid=GRID, staff=people["li_id"])[:2] == (
        403,
        "not_your_patrols",
    )


# ---- retention ----------------------------------------------------------------------------------


def _old_patrol(engine: Engine, days: int) -> int:
    started = datetime.now(UTC) - timedelta(days=days)
    with engine.begin() as connection:
        patrol_id = connection.execute(
            text(
                "INSERT INTO patrol (client_id, started_at, ended_at, points, track) VALUES "
                "(:c, :s, :s, 3, ST_GeomFromText('LINESTRING M (120.735 31.305 1, 120.736 31.305 2, 120.737 31.305 3)', 4326)) "
                "RETURNING id"
            ),
            {"c": f"old-{days}", "s": started},
        ).scalar_one()
        for second in range(3):
            connection.execute(
                text(
                    "INSERT INTO patrol_point (patrol_id, at, lon, lat) VALUES (:p, :t, 120.735, 31.305)"
                ),
                {"p": patrol_id, "t": started + timedelta(seconds=second)},
            )
    return patrol_id


def test_retention_is_enforced_by_the_api_and_by_purge(
    client, people, engine, database_url, monkeypatch
):
    old, recent_old = _old_patrol(engine, 200), _old_patrol(engine, 2)
    fresh = record(
        client, people["wang"], road_walk(client, GRID, 1, this_morning(), seed=10), this_morning()
    )
    admin = bearer(people["admin"])
    assert client.get(f"{API}/patrols/{old}", headers=admin).status_code == 404  # omitted already
    assert client.get(f"{API}/patrols/{recent_old}", headers=admin).status_code == 200
    long_ago = (datetime.now(UTC) - timedelta(days=210)).date().isoformat()
    listed = client.get(
        f"{API}/patrols",
        headers=admin,
        params={"from": long_ago, "to": local_day(datetime.now(UTC))},
    ).json()
    assert (
        sorted(p["id"] for p in listed["patrols"]) == [recent_old, fresh] and listed["total"] == 2
    )

    app = typer.Typer()
    patrol_cli.register(app)
    runner = CliRunner()

    def purge(**env: str) -> Any:
        for name, value in {"WANGGE_DATABASE_URL": database_url, **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            return runner.invoke(app, ["patrols", "purge", "--json"])
        finally:
            get_settings.cache_clear()

    result = purge()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) | {"before": None} == {
        "before": None,
        "patrols": 1,
        "points": 3,
    }
    result = purge(WANGGE_PATROLS__RETENTION_DAYS="1")
    assert json.loads(result.output)["patrols"] == 1  # the two-day-old one
    with engine.connect() as connection:
        left = connection.execute(text("SELECT id FROM patrol ORDER BY id")).scalars().all()
        orphans = connection.execute(
            text("SELECT count(*) FROM patrol_point WHERE patrol_id = ANY(:ids)"),
            {"ids": [old, recent_old]},
        ).scalar_one()
        audited = connection.execute(
            text("SELECT count(*) FROM audit_log WHERE action = 'patrols.purge'")
        ).scalar_one()
    assert (left, orphans, audited) == ([fresh], 0, 2)


# ---- the supervisor's map -----------------------------------------------------------------------


def page_data(html: str) -> dict[str, Any]:
    start = html.index('id="wg-page"')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    return json.loads(body)


def test_patrol_map_shades_micro_grids_draws_tracks_and_marks_buildings(client, people, engine):
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE staff SET name = :n WHERE id = :id"),
            {"n": "<img src=x onerror=alert(1)>王", "id": people["wang_id"]},
        )
    when = this_morning()
    wang = record(client, people["wang"], road_walk(client, GRID, 3, when, seed=11), when)
    li = record(client, people["li"], road_walk(client, GRID, 2, when, seed=12), when)
    params = {"grid": GRID, "from": local_day(when), "to": local_day(datetime.now(UTC))}
    answer = client.get("/map/patrols", headers=bearer(people["supervisor"]), params=params)
    assert answer.status_code == 200, answer.text
    assert "script-src 'self' 'nonce-" in answer.headers["content-security-policy"]
    html = answer.text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;王" in html
    data = page_data(html)
    assert sorted(data["tracks"]) == sorted([str(wang), str(li)])
    assert len(data["layers"]) == 3  # micro-grids, tracks, buildings not passed
    assert html.count('data-track="') == 2 and "/static/wangge/patrols.js" in html
    coverage = client.get(
        f"{API}/patrols/coverage", headers=bearer(people["supervisor"]), params=params
    ).json()
    visited, total = coverage["micro_grids"]["visited"], coverage["micro_grids"]["total"]
    assert f"{visited} / {total}" in html

    own = client.get("/map/patrols", headers=bearer(people["wang"]), params=params)
    assert own.status_code == 200 and sorted(page_data(own.text)["tracks"]) == [str(wang)]
    anonymous = client.get("/map/patrols", params=params)
    assert anonymous.status_code == 200 and 'id="wg-login"' in anonymous.text
    assert "wg-page" not in anonymous.text
    outside = client.get(
        "/map/patrols", headers=bearer(people["li"]), params={**params, "grid": NEIGHBOUR}
    )
    assert outside.status_code == 200
    refused = client.get("/map/patrols", headers=bearer(people["li"]), params=params)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "outside_token_scope")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    y = (1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


def test_street_patrol_map_lists_unvisited_buildings_for_the_tiles(client, people):
    """Above a grid the buildings nobody passed are not inlined (a district street has 20,000:
    9 MB): the page lists their codes and draws them from /tiles/buildings."""
    when = this_morning()
    record(client, people["wang"], road_walk(client, GRID, 3, when, seed=21), when)
    street = GRID[:9]
    params = {"grid": street, "from": local_day(when), "to": local_day(datetime.now(UTC))}
    head = bearer(people["supervisor"])
    coverage = client.get(f"{API}/patrols/coverage", headers=head, params=params).json()
    unvisited = {
        f["properties"]["code"]: f
        for f in coverage["not_visited"]["features"]
        if f["properties"]["kind"] == "building"
    }
    assert 0 < len(unvisited) < coverage["buildings"]["total"]

    answer = client.get("/map/patrols", headers=head, params=params)
    assert answer.status_code == 200, answer.text
    html = answer.text
    data = page_data(html)
    tiles = data["buildings"]
    assert tiles["tiles"] == "/tiles/buildings/{z}/{x}/{y}.mvt" and tiles["minZoom"] == 16
    listed = [tiles["prefix"] + rest for rest in tiles["rest"]]
    assert len(listed) == tiles["count"] == len(unvisited) and set(listed) == set(unvisited)
    assert len(tiles["prefix"]) >= len(street)
    assert len(data["layers"]) == 2  # micro-grids and the track; no building GeoJSON
    assert data["layers"][0]["popup"] == "/map/patrols?grid="
    assert html.count('"address"') == 0 and "Leaflet.VectorGrid.bundled.min.js" in html
    assert f"未经过的楼栋 {len(unvisited)} 栋" in html
    # The tile over an unvisited building carries its code (MVT keeps strings as they are).
    code, feature = next(iter(unvisited.items()))
    centre = shapely.geometry.shape(feature["geometry"]).centroid
    x, y = tile_of(centre.x, centre.y, 16)
    tile = client.get(f"/tiles/buildings/16/{x}/{y}.mvt")
    assert tile.status_code == 200 and code.encode() in tile.content

    # A grid (and below) keeps them inline, with their addresses.
    grid_page = client.get("/map/patrols", headers=head, params={**params, "grid": GRID})
    grid_data = page_data(grid_page.text)
    assert grid_data["buildings"] is None and len(grid_data["layers"]) == 3
    assert "popup" not in grid_data["layers"][0]


def test_coverage_summary_is_the_figures_without_geometry(client, people):
    when = this_morning()
    record(client, people["wang"], road_walk(client, GRID, 3, when, seed=22), when)
    params = {"grid": GRID[:9], "from": local_day(when), "to": local_day(datetime.now(UTC))}
    head = bearer(people["supervisor"])
    full = client.get(f"{API}/patrols/coverage", headers=head, params=params)
    short = client.get(f"{API}/patrols/coverage", headers=head, params={**params, "summary": True})
    assert (full.status_code, short.status_code) == (200, 200)
    whole, summary = full.json(), short.json()
    assert set(whole) - set(summary) == {"micro_grid_visits", "not_visited"}
    assert set(summary) - set(whole) == set()
    for key in set(summary) - {"computed_at"}:
        assert summary[key] == whole[key], key
    assert summary["buildings"]["total"] > 0 and len(short.content) < len(full.content) / 50
    bad = client.get(f"{API}/patrols/coverage", headers=head, params={**params, "summary": "x"})
    assert bad.status_code == 422 and "summary" in json.dumps(bad.json()["error"])
