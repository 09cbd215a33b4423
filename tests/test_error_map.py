"""The one error map (api/errors.py): what each domain error answers, without a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.requests import Request

from api.db.generations import NoActiveGeneration
from api.errors import place_of, register_error_handlers
from api.lookup.points_io import PointsTooLarge, TooManyPoints, UnreadablePoints
from api.routes import drafts
from api.routes.uploads import SavedUpload, client_named_errors
from api.transfer.export import ExportError, NothingToExport
from api.transfer.read import UnpackedTooLarge, UnreadableFile
from spatial.crs import UnknownCRS
from spatial.editing import EditError
from spatial.partition import PartitionError


def _with_member(error: UnreadableFile, member: str) -> UnreadableFile:
    error.member = member
    return error


ERRORS: dict[str, Exception] = {
    "grid_not_found": EditError("没有", "grid_not_found", "code"),
    "outside_parent": EditError("超出", "outside_parent", "geometry"),
    "grid_emptied": EditError("为零", "grid_emptied"),
    "partition": PartitionError("无法划分"),
    "unreadable": _with_member(UnreadableFile("a.zip：坏"), "a.shp"),
    "unpacked": UnpackedTooLarge("a.zip：太大"),
    "points": UnreadablePoints("p.csv：坏"),
    "too_many": TooManyPoints("p.csv 太多"),
    "points_large": PointsTooLarge("p.parquet 太大"),
    "export": ExportError("不能导出"),
    "nothing": NothingToExport("没有数据"),
    "crs": UnknownCRS("EPSG:0"),
    "generation": NoActiveGeneration("无"),
}
EXPECTED: dict[str, tuple[int, dict[str, Any]]] = {
    "grid_not_found": (404, {"code": "grid_not_found", "message": "没有", "where": "body.code"}),
    "outside_parent": (
        422,
        {"code": "outside_parent", "message": "超出", "where": "body.geometry"},
    ),
    "grid_emptied": (422, {"code": "grid_emptied", "message": "为零"}),
    "partition": (
        422,
        {"code": "partition_failed", "message": "无法划分", "where": "body.community"},
    ),
    "unreadable": (
        422,
        {
            "code": "unreadable_file",
            "message": "a.zip：坏",
            "where": "body.file",
            "details": [{"member": "a.shp"}],
        },
    ),
    "unpacked": (
        413,
        {"code": "payload_too_large", "message": "a.zip：太大", "where": "body.file"},
    ),
    "points": (422, {"code": "unreadable_file", "message": "p.csv：坏", "where": "body.file"}),
    "too_many": (
        422,
        {
            "code": "too_many_points",
            "message": "p.csv 太多；大文件请用 wangge geocode",
            "where": "body.file",
        },
    ),
    "points_large": (
        413,
        {"code": "payload_too_large", "message": "p.parquet 太大", "where": "body.file"},
    ),
    "export": (422, {"code": "invalid_export", "message": "不能导出", "where": "query"}),
    "nothing": (404, {"code": "nothing_to_export", "message": "没有数据"}),
    "crs": (422, {"code": "unknown_crs", "message": "EPSG:0", "where": "crs"}),
    "generation": (404, {"code": "no_active_generation", "message": "没有生效的网格版本：无"}),
}


@pytest.fixture(scope="module")
def raising() -> TestClient:
    app = FastAPI()
    register_error_handlers(app)

    @app.post("/raise/{name}")
    def _raise(name: str) -> None:
        raise ERRORS[name]

    return TestClient(app)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_domain_error_has_one_answer(raising: TestClient, name: str) -> None:
    status, error = EXPECTED[name]
    response = raising.post(f"/raise/{name}")
    assert (response.status_code, response.json()) == (status, {"error": error})


# (method, draft route, the field spatial/editing.py names, where the answer says it came from)
DRAFT_PLACES = [
    ("PUT", "/drafts/{draft_id}/grids/{code}", "code", "path.code"),
    ("PUT", "/drafts/{draft_id}/grids/{code}", "geometry", "body.geometry"),
    ("POST", "/drafts/{draft_id}/reshape", "code", "body.code"),
    ("POST", "/drafts/{draft_id}/reshape", "geometry", "body.geometry"),
    ("POST", "/drafts/{draft_id}/split", "code", "body.code"),
    ("POST", "/drafts/{draft_id}/split", "line", "body.line"),
    ("POST", "/drafts/{draft_id}/merge", "codes", "body.codes"),
    ("POST", "/drafts/{draft_id}/grids", "parent_code", "body.parent_code"),
    ("POST", "/drafts/{draft_id}/grids", "code", "body.code"),
    ("PATCH", "/drafts/{draft_id}/grids/{code}", "code", "path.code"),
    ("PATCH", "/drafts/{draft_id}/grids/{code}", "parent_code", "body.parent_code"),
    ("DELETE", "/drafts/{draft_id}/grids/{code}", "code", "path.code"),
    ("DELETE", "/drafts/{draft_id}/grids/{code}", "with_children", "query.with_children"),
    ("POST", "/drafts/{draft_id}/buildings/reassign", "grid_code", "body.grid_code"),
    ("POST", "/drafts/{draft_id}/buildings/reassign", "buildings", "body.buildings"),
    ("POST", "/drafts/suggest", "community", "body.community"),
]


@pytest.mark.parametrize(("method", "path", "field", "where"), DRAFT_PLACES)
def test_a_field_spatial_names_becomes_the_place_it_came_from(
    method: str, path: str, field: str, where: str
) -> None:
    [route] = [
        r
        for r in drafts.router.routes
        if isinstance(r, APIRoute) and r.path == path and method in r.methods
    ]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [],
        "query_string": b"",
        "path_params": {name: "1" for name in route.param_convertors},
        "route": route,
    }
    assert place_of(Request(scope), field) == where


def test_reading_errors_name_the_clients_file_not_our_folder(tmp_path: Path) -> None:
    saved = SavedUpload(tmp_path / "upload.zip", "街道.zip")
    with pytest.raises(UnreadableFile) as raised, client_named_errors(saved):
        raise _with_member(UnreadableFile(f"{saved.path}：坏；upload.zip 中没有 .shp"), "x.shp")
    assert str(raised.value) == "街道.zip：坏；街道.zip 中没有 .shp"
    assert raised.value.member == "x.shp"
