"""The draft diff at every level: a grid split between its micro-grids moves households at level
`grid` and none at `micro_grid`; a reshape moves them at both; an unchanged draft moves
nothing; the staff of each side are named only for callers who may see personal data; the page
shows the tables, escaped.

Every expected number is computed here from the stored buildings, cameras, events and grid rows
with shapely (who covers which point), not by the diff's SQL.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from api.auth import Role
from api.drafts.diff import draft_diff
from api.privacy import Caller
from tests.conftest import bearer

COMMUNITY = "320571005001"
LEVELS = ("street", "community", "grid", "micro_grid")
KINDS = ("buildings", "monitoring_points", "open_events")
HOSTILE = '<script>alert("网格")</script>&amp;'


@pytest.fixture
def planner(tokens):
    return bearer(tokens["planner"])


@pytest.fixture
def draft(client, planner):
    return client.post("/api/v1/drafts", json={"name": "差异测试"}, headers=planner).json()


def _diff(client, draft_id, headers=None):
    response = client.get(f"/api/v1/drafts/{draft_id}/diff", headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


def _level(diff, name):
    return next(entry for entry in diff["levels"] if entry["level"] == name)


def _objects(engine):
    """kind → (keys, households, points): every building (its point on surface), camera and
    open event of the street, as stored."""
    with engine.connect() as connection:
        queries = {
            "buildings": "SELECT code, coalesce(households, 0), "
            "ST_AsBinary(ST_PointOnSurface(geom)) FROM building",
            "monitoring_points": "SELECT code, 0, ST_AsBinary(geom) FROM monitoring_point",
            "open_events": "SELECT id, 0, ST_AsBinary(geom) FROM event "
            "WHERE status NOT IN ('closed', 'cancelled') AND geom IS NOT NULL",
        }
        found = {}
        for kind, query in queries.items():
            rows = connection.execute(text(query)).all()
            found[kind] = (
                [r[0] for r in rows],
                np.array([r[1] for r in rows]),
                shapely.from_wkb([bytes(r[2]) for r in rows]),
            )
    return found


def _owners(engine, generation, level, points):
    """The smallest code of `level` in `generation` covering each point (None outside)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT code, ST_AsBinary(geom) FROM grid WHERE level = :level "
                "AND generation_low <= :g AND generation_high >= :g ORDER BY code"
            ),
            {"level": level, "g": generation},
        ).all()
    codes = [r[0] for r in rows]
    tree = shapely.STRtree(shapely.from_wkb([bytes(r[1]) for r in rows]))
    owners: list[str | None] = [None] * len(points)
    for point, grid in zip(*tree.query(points, predicate="covered_by"), strict=True):
        if owners[point] is None or codes[grid] < owners[point]:
            owners[point] = codes[grid]
    return owners


def _expected(engine, old, new, recodes=()):
    """level → (from, to) → {kind: count, households}: who changes grid, by shapely."""
    objects = _objects(engine)
    expected: dict[str, dict] = {}
    for level in LEVELS:
        pairs: dict = defaultdict(Counter)
        for kind, (_, households, points) in objects.items():
            before = _owners(engine, old, level, points)
            after = _owners(engine, new, level, points)
            for i, (a, b) in enumerate(zip(before, after, strict=True)):
                if a != b and (a, b) not in recodes:
                    pairs[(a, b)][kind] += 1
                    pairs[(a, b)]["households"] += int(households[i])
        expected[level] = {pair: dict(counts) for pair, counts in pairs.items()}
    return expected


def _reported(diff):
    """The same shape from the answer's `levels`."""
    reported = {}
    for entry in diff["levels"]:
        reported[entry["level"]] = {
            (m["from_grid"], m["to_grid"]): {
                k: m[k] for k in (*KINDS, "households") if m[k] or k == "households"
            }
            for m in entry["moves"]
        }
        for counts in reported[entry["level"]].values():
            if not counts["households"] and not counts.get("buildings"):
                counts.pop("households")
    return reported


def _normalised(expected):
    return {
        level: {
            pair: {
                k: v
                for k, v in counts.items()
                if v or (k == "households" and "buildings" in counts)
            }
            for pair, counts in pairs.items()
        }
        for level, pairs in expected.items()
    }


def _split_fullest(client, planner, draft):
    stats = client.get(f"/api/v1/drafts/{draft['id']}/stats", params={"level": "grid"}).json()
    fullest = max(stats["grids"], key=lambda s: s["households"])
    code = fullest["code"]
    shape = shapely.from_geojson(
        json.dumps(
            client.get(
                f"/api/v1/grids/{code}", params={"generation": draft["generation_id"]}
            ).json()["geometry"]
        )
    )
    xmin, ymin, xmax, ymax = shape.bounds
    middle = (xmin + xmax) / 2
    line = shapely.LineString([(middle, ymin - 1e-3), (middle, ymax + 1e-3)])
    split = client.post(
        f"/api/v1/drafts/{draft['id']}/split",
        headers=planner,
        json={"code": code, "line": json.loads(shapely.to_geojson(line)), "version": 0},
    )
    assert split.status_code == 200, split.text
    return code, split.json()


def _staff_rows(engine, code):
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT a.role, s.name, s.phone FROM staff_assignment a JOIN staff s "
                "ON s.id = a.staff_id WHERE a.grid_code = :c AND s.active ORDER BY a.role, s.id"
            ),
            {"c": code},
        ).all()


def _required(engine, level):
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT name FROM staff_role_kind WHERE required_at_level = :l"), {"l": level}
            ).scalars()
        )


def _named(staff):
    return sorted(
        (role["role"], person["name"], person["phone"])
        for role in staff
        for person in role["people"]
    )


def test_a_split_between_micro_grids_moves_households_at_grid_level_only(
    client, planner, draft, engine, tokens
):
    code, split = _split_fullest(client, planner, draft)
    new_codes = split["created"]
    recodes = {(r["old_code"], r["new_code"]) for r in split.get("recoded", [])}
    diff = _diff(client, draft["id"], planner)
    expected = _expected(engine, diff["against_generation"], diff["generation"], recodes)

    # Exactly four levels, coarsest first, as the catalogue lists them.
    assert [e["level"] for e in diff["levels"]] == list(LEVELS)
    assert [e["label_zh"] for e in diff["levels"]] == ["街道", "社区", "网格", "微网格"]
    assert _reported(diff) == _normalised(expected)

    grid = _level(diff, "grid")
    # The split grid gives everything to its two halves, and nothing else moves at this level.
    assert {(m["from_grid"], m["to_grid"]) for m in grid["moves"]} == {
        (code, new) for new in new_codes
    }
    households = {new: expected["grid"][(code, new)]["households"] for new in new_codes}
    assert all(h > 0 for h in households.values())
    assert grid["summary"]["households_moving"] == sum(households.values())
    assert grid["summary"]["buildings_moving"] == sum(
        expected["grid"][(code, new)]["buildings"] for new in new_codes
    )
    assert grid["summary"]["moves"] == 2 and grid["summary"]["receiving_grids"] == 2
    assert {r["grid"]: r["gains"]["households"] for r in grid["receiving"]} == households
    assert [(r["from"]) for r in grid["receiving"]] == [[code], [code]]
    assert len(grid["losing"]) == 1
    losing = grid["losing"][0]
    assert losing["grid"] == code and losing["removed"] is True
    assert losing["loses"]["households"] == sum(households.values())
    assert sorted(losing["to"]) == sorted(new_codes)
    # The new halves have nobody yet: every role required at level grid is missing on both.
    required = _required(engine, "grid")
    assert len(required) == 3
    assert {(m["grid"], m["role"]) for m in grid["missing_roles"]} == {
        (new, role) for new in new_codes for role in required
    }
    assert all(m["to_staff"] == [] for m in grid["moves"])
    # Micro-grids were kept whole: nobody changes micro-grid, hence nobody at the finest level.
    micro = _level(diff, "micro_grid")
    assert micro["moves"] == [] and micro["summary"]["households_moving"] == 0
    assert diff["summary"]["buildings_moving"] == 0 and diff["buildings"] == []
    assert {(r["old_code"], r["new_code"]) for r in micro["recoded"]} == {
        pair for pair in recodes if len(pair[1]) == 18
    }
    for level in ("street", "community"):
        assert _level(diff, level)["moves"] == [] and _level(diff, level)["summary"] == {
            "buildings_moving": 0,
            "households_moving": 0,
            "monitoring_points_moving": 0,
            "open_events_moving": 0,
            "moves": 0,
            "receiving_grids": 0,
            "losing_grids": 0,
        }

    # The losing grid's team, named for a planner (5 people: 1+1+1+2 in the demo street).
    staff = _staff_rows(engine, code)
    assert len(staff) == 5
    named = draft_diff_as(engine, draft["id"], tokens, "planner")
    for move in _level(named, "grid")["moves"]:
        assert _named(move["from_staff"]) == sorted(tuple(r) for r in staff)
        assert sum(role["count"] for role in move["from_staff"]) == 5
    # A viewer gets each role and how many hold it, and no name or phone anywhere.
    viewer = _diff(client, draft["id"], bearer(tokens["viewer"]))
    for move in _level(viewer, "grid")["moves"]:
        assert sorted((r["role"], r["count"]) for r in move["from_staff"]) == sorted(
            Counter(r.role for r in staff).items()
        )
        assert all(role["people"] is None for role in move["from_staff"])
    flat = json.dumps(viewer, ensure_ascii=False)
    assert not any(name in flat or phone in flat for _, name, phone in staff)


def draft_diff_as(engine, draft_id, tokens, role, grid_codes=()):
    """The diff as the service computes it for a caller of `role`."""
    from api.auth import Principal

    with engine.connect() as connection:
        principal = Principal(
            token_id=1, name=f"test-{role}", role=Role(role), grid_codes=tuple(grid_codes)
        )
        return draft_diff(connection, draft_id, Caller(principal))
