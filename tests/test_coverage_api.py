"""Coverage checks as a planner runs them: API, stored reports, GeoJSON problems, fix drafts, CLI gate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import shapely
import shapely.geometry

from tests.conftest import bearer

WANGGE = str(Path(sys.executable).with_name("wangge"))
GROWN = "320571005003002005"


def _publish_overlap(client, tokens) -> None:
    """Grow one micro-grid ~0.5 m into its siblings (inside its own grid) and publish that."""
    layer = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "micro_grid"}
    ).json()
    parent = shapely.from_geojson(
        json.dumps(client.get(f"/api/v1/grids/{GROWN[:15]}").json()["geometry"])
    )
    for feature in layer["features"]:
        if feature["properties"]["code"] == GROWN:
            grown = shapely.buffer(
                shapely.from_geojson(json.dumps(feature["geometry"])), 5e-6, join_style="mitre"
            )
            feature["geometry"] = json.loads(
                shapely.to_geojson(shapely.intersection(grown, parent))
            )
    response = client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "micro_grid"},
        files={"file": ("micro.geojson", json.dumps(layer).encode())},
    )
    assert response.status_code == 200 and response.json()["generation"] == 2, response.text


def test_demo_check_is_clean_and_stored(client, tokens):
    assert client.post("/api/v1/coverage/checks", json={}).status_code == 401
    assert (
        client.post(
            "/api/v1/coverage/checks", json={}, headers=bearer(tokens["viewer"])
        ).status_code
        == 403
    )
    response = client.post("/api/v1/coverage/checks", json={}, headers=bearer(tokens["planner"]))
    assert response.status_code == 201
    report = response.json()
    assert (
        report["summary"]["errors"] == 0
        and report["generation"] == 1
        and report["metric_crs"] == "EPSG:4549"
    )
    assert len(report["camera_coverage"]) == 60 and all(
        0 <= c["share"] <= 1 for c in report["camera_coverage"]
    )
    stored = client.get(f"/api/v1/coverage/checks/{report['id']}").json()
    assert stored["summary"] == report["summary"] and stored["created_by"].startswith("token:")
    problems = client.get(f"/api/v1/coverage/checks/{report['id']}/problems").json()
    assert problems["type"] == "FeatureCollection"
    assert {f["properties"]["kind"] for f in problems["features"]} <= {"no_camera"}
    assert client.get("/api/v1/coverage/checks/999").status_code == 404
    bad = client.post(
        "/api/v1/coverage/checks", json={"generation": 99}, headers=bearer(tokens["planner"])
    )
    assert bad.status_code == 404


def test_overlap_found_and_fixed_as_a_draft(client, tokens):
    _publish_overlap(client, tokens)
    report = client.post(
        "/api/v1/coverage/checks", json={"level": "micro_grid"}, headers=bearer(tokens["planner"])
    ).json()
    assert report["summary"]["errors"] > 0
    overlaps = [o for o in report["overlaps"] if GROWN in o["codes"]]
    assert overlaps and all(o["area_m2"] > 1 for o in overlaps)
    problems = client.get(f"/api/v1/coverage/checks/{report['id']}/problems").json()
    assert any(f["properties"]["kind"] == "overlaps" for f in problems["features"])

    fix = client.post(
        f"/api/v1/coverage/checks/{report['id']}/fix", json={}, headers=bearer(tokens["planner"])
    )
    assert fix.status_code == 201, fix.text
    draft = fix.json()["draft"]
    assert draft == 3 and GROWN in fix.json()["changed"]
    rechecked = client.post(
        "/api/v1/coverage/checks",
        json={"generation": draft, "level": "micro_grid"},
        headers=bearer(tokens["planner"]),
    ).json()
    assert rechecked["overlaps"] == [] and rechecked["invalid_edges"] == []
    # The proposal is never applied by itself: lookups still answer from generation 2.
    assert client.get("/api/v1/generations").json()["active"] == 2


def test_cli_check_gates_a_script(client, tokens, database_url):
    env = {**os.environ, "WANGGE_DATABASE_URL": database_url}
    wangge = str(Path(sys.executable).with_name("wangge"))
    clean = subprocess.run([wangge, "check"], capture_output=True, text=True, env=env, check=False)
    assert clean.returncode == 0 and "错误 0 个" in clean.stdout
    _publish_overlap(client, tokens)
    faulty = subprocess.run(
        [wangge, "check", "--level", "micro_grid", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert faulty.returncode == 1
    assert any(GROWN in o["codes"] for o in json.loads(faulty.stdout)["overlaps"])
    fixed = subprocess.run(
        [wangge, "check", "--level", "micro_grid", "--fix"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert fixed.returncode == 1 and "草稿" in fixed.stdout
    draft_id = re.search(r"--draft (\d+)", fixed.stdout).group(1)
    draft = subprocess.run(
        [wangge, "check", "--level", "micro_grid", "--draft", draft_id],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert draft.returncode == 0, draft.stdout


def test_allowed_enclaves(client, tokens, tmp_path, database_url):
    """A hole that is a legitimate enclave is listed as allowed, not as an error (API and CLI)."""
    layer = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "micro_grid"}
    ).json()
    layer["features"] = [
        f for f in layer["features"] if f["properties"]["code"] != "320571005004003004"
    ]
    response = client.post(
        "/api/v1/import/grids",
        headers=bearer(tokens["planner"]),
        data={"level": "micro_grid", "replace": "true"},
        files={"file": ("micro.geojson", json.dumps(layer).encode())},
    )
    assert response.status_code == 200, response.text
    hole = client.get("/api/v1/grids/320571005004003004", params={"generation": 1}).json()[
        "geometry"
    ]
    plain = client.post(
        "/api/v1/coverage/checks", json={"level": "micro_grid"}, headers=bearer(tokens["planner"])
    ).json()
    assert len(plain["gaps"]) == 1 and plain["gaps"][0]["area_m2"] > 1000
    allowed = client.post(
        "/api/v1/coverage/checks",
        json={"level": "micro_grid", "allowed_gaps": [hole]},
        headers=bearer(tokens["planner"]),
    ).json()
    assert allowed["gaps"] == [] and len(allowed["allowed_gaps"]) == 1
    enclave = tmp_path / "enclave.geojson"
    enclave.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {"name": "飞地"}, "geometry": hole}],
            }
        )
    )
    env = {**os.environ, "WANGGE_DATABASE_URL": database_url}
    wangge = str(Path(sys.executable).with_name("wangge"))
    cli = subprocess.run(
        [wangge, "check", "--level", "micro_grid", "--allowed-gaps", str(enclave), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    report = json.loads(cli.stdout)
    assert report["gaps"] == [] and len(report["allowed_gaps"]) == 1
    # The enclave's buildings are in no grid now, and the check says so.
    assert cli.returncode == 1 and len(report["orphan_buildings"]) > 0


def test_outline_checks_the_top_level(client, tokens, tmp_path, database_url):
    """`wangge check --outline FILE` and the API's `outline`: the street must fill the known
    district boundary; a boundary 30 m wider leaves a strip all around."""
    street = client.get(
        "/api/v1/export/grids", params={"format": "geojson", "level": "street"}
    ).json()["features"][0]
    outline = shapely.geometry.shape(street["geometry"])
    wider = shapely.buffer(outline, 0.0003, join_style="mitre")
    headers = bearer(tokens["planner"])
    exact = client.post(
        "/api/v1/coverage/checks",
        headers=headers,
        json={"level": "street", "outline": shapely.geometry.mapping(outline)},
    ).json()
    assert exact["summary"]["errors"] == 0 and exact["parameters"]["outline"] is True
    found = client.post(
        "/api/v1/coverage/checks",
        headers=headers,
        json={"level": "street", "outline": shapely.geometry.mapping(wider)},
    ).json()
    [strip] = found["gaps"]
    assert strip["kind"] == "strip" and strip["parent_code"] is None
    assert 25 <= strip["width_m"] <= 70
    bad = client.post(
        "/api/v1/coverage/checks",
        headers=headers,
        json={"outline": {"type": "Point", "coordinates": [120.7, 31.3]}},
    )
    assert bad.status_code == 422 and bad.json()["error"]["where"] == "body.outline"

    path = tmp_path / "边界.geojson"
    path.write_text(
        json.dumps(
            {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(wider)}
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [WANGGE, "check", "--level", "street", "--outline", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "WANGGE_DATABASE_URL": database_url},
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "外边界 上级边界内无下级覆盖的条带" in result.stdout
