"""Point-in-grid lookup (single, batch, file) and address matching."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import CallerDep, HeavyDep, IndexStoreDep, SettingsDep
from api.errors import InvalidInput, error_responses
from api.lookup.addresses import DEFAULT_THRESHOLD
from api.lookup.points_io import POINT_FORMATS, PointLimits, read_coordinates
from api.lookup.service import DEFAULT_NEAR_M, lookup_points, match_address
from api.routes.uploads import client_named_errors, save_upload
from api.times import Instant

router = APIRouter(tags=["lookup"], responses=error_responses(400, 401, 404, 413, 422, 503))
MAX_BATCH_POINTS = 100_000
LIGHT_BATCH_POINTS = 1_000  # batches up to this size run without a heavy-work slot
CRS_HELP = (
    "EPSG code (4326, 4490, 4549, 3857…), or gcj02 (AMap, Tencent, WeChat maps) or bd09 (Baidu)"
)
Crs = Annotated[str, Query(description=CRS_HELP, examples=["EPSG:4326", "gcj02"])]
At = Annotated[Instant | None, Query(description="Answer with the generation active at this time")]
NearM = Annotated[
    float,
    Query(ge=0, le=100, description="Report the runner-up grid within this distance of an edge"),
]


@router.get(
    "/lookup", summary="Which grid is this point in (finest grid, its path, staff, edge distance)"
)
def lookup(
    store: IndexStoreDep,
    caller: CallerDep,
    lon: float,
    lat: float,
    crs: Crs,
    at: At = None,
    near_m: NearM = DEFAULT_NEAR_M,
) -> dict[str, Any]:
    _, [answer] = lookup_points(
        store,
        np.array([lon]),
        np.array([lat]),
        crs,
        at=at,
        near_m=near_m,
        caller=caller,
    )
    if "error" in answer:
        raise InvalidInput(
            answer["error"]["message"], code="invalid_coordinates", where="query.lon,lat"
        )
    return answer


class BatchPoint(BaseModel):
    lon: float
    lat: float
    id: str | int | None = None


class BatchRequest(BaseModel):
    crs: str = Field(description=CRS_HELP)
    points: list[BatchPoint] = Field(max_length=MAX_BATCH_POINTS)
    at: Instant | None = None
    near_m: float = Field(default=DEFAULT_NEAR_M, ge=0, le=100)


def _json(body: dict[str, Any]) -> Response:
    """orjson straight to bytes: 100,000 answers serialise in a fraction of a second."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _with_ids(answers: list[dict[str, Any]], ids: list[Any]) -> list[dict[str, Any]]:
    for answer, point_id in zip(answers, ids, strict=True):
        if point_id is not None:
            answer["id"] = point_id
    return answers


@router.post(
    "/lookup/batch",
    summary=f"Look up up to {MAX_BATCH_POINTS:,} points; results in input order",
    response_class=Response,
)
def lookup_batch(
    store: IndexStoreDep, caller: CallerDep, heavy: HeavyDep, body: BatchRequest
) -> Response:
    x = np.fromiter((p.lon for p in body.points), dtype=float, count=len(body.points))
    y = np.fromiter((p.lat for p in body.points), dtype=float, count=len(body.points))
    # A big batch is seconds of CPU and tens of MB of answer: it takes a heavy-work slot.
    with heavy.slot() if len(body.points) > LIGHT_BATCH_POINTS else nullcontext():
        generation, answers = lookup_points(
            store, x, y, body.crs, at=body.at, near_m=body.near_m, caller=caller
        )
        _with_ids(answers, [p.id for p in body.points])
        return _json({"generation": generation, "count": len(answers), "results": answers})


@router.post(
    "/lookup/batch/file",
    summary="Look up the points of a CSV, Parquet or GeoJSON file",
    response_class=Response,
)
def lookup_file(
    store: IndexStoreDep,
    caller: CallerDep,
    settings: SettingsDep,
    heavy: HeavyDep,
    file: Annotated[
        UploadFile, File(description="CSV (lon/lat columns), Parquet or GeoJSON points")
    ],
    crs: Annotated[str, Form(description=CRS_HELP)],
    lon_field: Annotated[str | None, Form()] = None,
    lat_field: Annotated[str | None, Form()] = None,
    at: Annotated[Instant | None, Form()] = None,
    near_m: Annotated[float, Form(ge=0, le=100)] = DEFAULT_NEAR_M,
) -> Response:
    limits = PointLimits(MAX_BATCH_POINTS, settings.limits.max_unpacked_bytes)
    with heavy.slot(), tempfile.TemporaryDirectory(prefix="wangge-points-") as folder:
        saved = save_upload(
            file,
            Path(folder),
            POINT_FORMATS,
            ".csv、.parquet 或 .geojson",
            settings.limits.max_request_bytes,
        )
        with client_named_errors(saved):
            x, y = read_coordinates(saved.path, lon_field, lat_field, limits)
        generation, answers = lookup_points(store, x, y, crs, at=at, near_m=near_m, caller=caller)
    _with_ids(answers, list(range(1, len(answers) + 1)))
    return _json({"generation": generation, "count": len(answers), "results": answers})


@router.get("/geocode/address", summary="Match a Chinese address to a building and its grid")
def address(
    store: IndexStoreDep,
    caller: CallerDep,
    q: Annotated[
        str, Query(min_length=2, max_length=300, description="地址，如 青丘街1号锦玉苑1幢")
    ],
    at: At = None,
    threshold: Annotated[float, Query(ge=0, le=1)] = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    return match_address(store, q, at=at, threshold=threshold, caller=caller)
