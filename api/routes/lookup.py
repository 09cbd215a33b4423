"""Point-in-grid lookup (single, batch, file); addresses are api/routes/geocode.py's."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, HeavyDep, IndexStoreDep, SettingsDep
from api.errors import InvalidInput, error_responses
from api.limits import HeavyWork
from api.lookup import columnar, columnar_binary
from api.lookup.columnar import MAX_BATCH_POINTS
from api.lookup.columnar_answer import encode, lookup_columns
from api.lookup.columnar_docs import DESCRIPTION, RESPONSES, request_body
from api.lookup.index_store import IndexStore
from api.lookup.points_io import POINT_FORMATS, PointLimits, read_coordinates
from api.lookup.service import DEFAULT_NEAR_M, lookup_points
from api.privacy import Caller
from api.routes.uploads import client_named_errors, save_upload
from api.settings import Settings
from api.times import Instant

router = APIRouter(tags=["lookup"], responses=error_responses(400, 401, 404, 413, 422, 503))
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
async def lookup(
    store: IndexStoreDep,
    caller: CallerDep,
    lon: float,
    lat: float,
    crs: Crs,
    at: At = None,
    near_m: NearM = DEFAULT_NEAR_M,
) -> dict[str, Any]:
    # Answered on the event loop, not in the threadpool: the lookup is ~0.1 ms of CPU (less
    # than the hand-off to a pool thread and back), and this one thread's PROJ transformers
    # stay warm, while each new pool thread spends ~130 ms building its own (anyio retires
    # idle ones after 10 s): under 32+ connections that stalled every worker. An `at=` naming
    # an earlier generation may build its index from the database, so that one goes to the pool.
    def answer_point() -> tuple[int, list[dict[str, Any]]]:
        return lookup_points(
            store, np.array([lon]), np.array([lat]), crs, at=at, near_m=near_m, caller=caller
        )

    _, [answer] = answer_point() if at is None else await run_in_threadpool(answer_point)
    if "error" in answer:
        raise InvalidInput(
            answer["error"]["message"], code="invalid_coordinates", where="query.lon,lat"
        )
    return answer


class BatchPoint(BaseModel):
    lon: float
    lat: float
    id: str | int | None = Field(
        default=None,
        description=f"Your key for the point: text of at most {columnar.MAX_ID_BYTES} UTF-8 bytes "
        "or a 64-bit signed integer",
    )

    @field_validator("id")
    @classmethod
    def _id_fits(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, str):
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                raise ValueError("id 含无效的 Unicode（孤立的代理码点）") from None
            if size > columnar.MAX_ID_BYTES:
                raise ValueError(f"id 最长 {columnar.MAX_ID_BYTES} 字节（UTF-8）")
        elif isinstance(value, int) and not columnar.INT64_MIN <= value <= columnar.INT64_MAX:
            raise ValueError("整数 id 须在 64 位有符号整数范围内；更长的编号请用字符串")
        return value


class BatchRequest(BaseModel):
    crs: str = Field(description=CRS_HELP)
    points: list[BatchPoint] = Field(max_length=MAX_BATCH_POINTS)
    at: Instant | None = None
    near_m: float = Field(default=DEFAULT_NEAR_M, ge=0, le=100)

    @field_validator("at", mode="before")
    @classmethod
    def _at_is_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):  # not a Unix time
            raise ValueError("at 须为 ISO-8601 时间字符串")
        return value


def _json(body: dict[str, Any]) -> Response:
    """orjson straight to bytes: 100,000 answers serialise in a fraction of a second."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers={"X-Wangge-Generation": str(body["generation"])},
    )


def _with_ids(answers: list[dict[str, Any]], ids: list[Any]) -> list[dict[str, Any]]:
    for answer, point_id in zip(answers, ids, strict=True):
        if point_id is not None:
            answer["id"] = point_id
    return answers


Fields = Annotated[
    str | None,
    Query(
        description=(
            "Answer columns, comma-separated (a columnar answer): "
            + "; ".join(f"`{name}` {text}" for name, text in columnar.FIELDS.items())
            + f". Default: {','.join(columnar.DEFAULT_FIELDS)}. `code` alone is the fast path."
        ),
        examples=["code", "code,path,distance_to_edge_m,runner_up"],
    ),
]
QueryCrs = Annotated[
    str | None, Query(description=f"For Arrow and Parquet bodies (JSON carries crs): {CRS_HELP}")
]
QueryNearM = Annotated[float | None, Query(ge=0, le=100, description="As near_m of the body")]


@router.post(
    "/lookup/batch",
    summary=f"Look up up to {MAX_BATCH_POINTS:,} points; results in input order",
    description=DESCRIPTION,
    response_class=Response,
    openapi_extra=request_body(BatchRequest.model_json_schema()),
    responses=RESPONSES,
)
async def lookup_batch(
    request: Request,
    store: IndexStoreDep,
    caller: CallerDep,
    heavy: HeavyDep,
    settings: SettingsDep,
    fields: Fields = None,
    crs: QueryCrs = None,
    at: At = None,
    near_m: QueryNearM = None,
) -> Response:
    # Everything that can be refused without the body is refused before reading it.
    form = columnar.request_form(request.headers.get("content-type"))
    wanted = columnar.parse_fields(fields)
    preference = columnar.accepted(request.headers.get("accept"))
    chunks = [chunk async for chunk in request.stream()]  # read once, not kept on the request
    body = [b"".join(chunks)]
    chunks.clear()
    options = columnar.QueryOptions(crs, at, near_m)
    return await run_in_threadpool(
        _lookup_batch, store, caller, heavy, settings, form, body, options, wanted, preference
    )


LIGHT_BODY_BYTES = 256 * 1024  # bigger bodies are read (and unpacked) in a heavy-work slot


def _lookup_batch(
    store: IndexStore,
    caller: Caller,
    heavy: HeavyWork,
    settings: Settings,
    form: str,
    body: list[bytes],
    options: columnar.QueryOptions,
    wanted: tuple[str, ...] | None,
    preference: str | None,
) -> Response:
    # Reading a big body (parsing JSON, unpacking Arrow or Parquet) is heavy work too: it takes
    # the slot before, so concurrent big bodies wait instead of unpacking side by side.
    holding_slot = len(body[0]) > LIGHT_BODY_BYTES
    with heavy.slot() if holding_slot else nullcontext():
        content = body.pop()  # the only reference: dropped once parsed
        if form == "json":
            data = columnar.parse_json(content)
            del content
            if columnar.is_row_request(data):
                rows = _row_request(data)
                del data
                crs = columnar.checked_crs(rows.crs, "body.crs")
                shape = "rows"
                if columnar.answer_form(shape, preference, wanted is not None) == "rows":
                    return _row_answer(store, caller, heavy, rows, holding_slot)
                batch = columnar.Batch(
                    np.fromiter((p.lon for p in rows.points), float, len(rows.points)),
                    np.fromiter((p.lat for p in rows.points), float, len(rows.points)),
                    [p.id for p in rows.points]
                    if any(p.id is not None for p in rows.points)
                    else None,
                    crs,
                    rows.at,
                    rows.near_m,
                )
            else:
                shape, batch = "columns", columnar.read_columns(data, options)
                del data  # the parsed lists: only the arrays go on
        elif form == "arrow":
            shape = form
            batch = columnar_binary.read_arrow(content, options, settings.limits.max_unpacked_bytes)
        else:
            shape = form
            batch = columnar_binary.read_parquet(
                content, options, settings.limits.max_unpacked_bytes
            )
        content = b""  # (Arrow columns still view the body: numbers are not copied out of it)
        answer_form = columnar.answer_form(shape, preference, wanted is not None)
        big = len(batch) > LIGHT_BATCH_POINTS and not holding_slot
        with heavy.slot() if big else nullcontext():
            answer = lookup_columns(store, batch, wanted or columnar.DEFAULT_FIELDS, caller)
            payload, media_type = encode(answer, answer_form)
        return Response(
            payload, media_type=media_type, headers={"X-Wangge-Generation": str(answer.generation)}
        )


def _row_request(data: Any) -> BatchRequest:
    """Today's row form, validated as FastAPI validated it (same errors, under `body`)."""
    try:
        return BatchRequest.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        ) from None


def _row_answer(
    store: IndexStore, caller: Caller, heavy: HeavyWork, body: BatchRequest, holding_slot: bool
) -> Response:
    x = np.fromiter((p.lon for p in body.points), dtype=float, count=len(body.points))
    y = np.fromiter((p.lat for p in body.points), dtype=float, count=len(body.points))
    # A big batch is seconds of CPU and tens of MB of answer: it takes a heavy-work slot.
    big = len(body.points) > LIGHT_BATCH_POINTS and not holding_slot
    with heavy.slot() if big else nullcontext():
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
