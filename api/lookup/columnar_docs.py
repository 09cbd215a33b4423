"""The OpenAPI description of POST /lookup/batch: four request forms, four answer forms."""

from __future__ import annotations

from typing import Any

from api.errors import ErrorBody
from api.lookup.columnar import (
    ARROW,
    DEFAULT_FIELDS,
    FIELDS,
    INT64_MAX,
    INT64_MIN,
    MAX_BATCH_POINTS,
    MAX_ID_BYTES,
    PARQUET,
)

DESCRIPTION = f"""\
The request's form is chosen by `Content-Type`:

* `application/json` with `points` — rows, `{{"crs", "points": [{{"lon", "lat", "id"?}}], "at"?,
  "near_m"?}}`; answered with one full object per point (`results`), as the single lookup.
* `application/json` with `lon`/`lat` — columns, `{{"crs", "lon": [...], "lat": [...],
  "ids"?: [...], "at"?, "near_m"?}}`.
* `{ARROW}` — an Arrow IPC stream with numeric columns `lon`, `lat` (integer, float or
  decimal) and an optional `id` (integer, string or dictionary-encoded string); `crs`, `at`,
  `near_m` as query parameters.
* `{PARQUET}` — a Parquet file with the same columns.

Columnar answers come in the request's form, or as `Accept` asks (`application/json`, `{ARROW}`,
`{PARQUET}`): one array per field (`fields=`, default `{",".join(DEFAULT_FIELDS)}`), nulls where
no grid matched, the input ids (`ids` in JSON, `id` in Arrow/Parquet), `error` and
`error_message` per point (`invalid_coordinates`: out of range, swapped), and `generation` and
`count` (JSON members; Arrow/Parquet schema metadata; header `X-Wangge-Generation`). A row request
with `fields=` or a binary `Accept` is answered in columns. `staff` is null unless the caller may
see the grid's staff. At most {MAX_BATCH_POINTS:,} points; arrays of different lengths, non-finite
numbers, a wrong Arrow/Parquet schema and corrupt bodies are refused (422) before any lookup.
An id is text of at most {MAX_ID_BYTES} UTF-8 bytes (`id_too_long`) or an integer within 64-bit
signed range (`id_out_of_range`); text must be valid Unicode. `crs` must be a 2D system.
"""

BINARY = {"schema": {"type": "string", "format": "binary"}}

COLUMNS_SCHEMA: dict[str, Any] = {
    "title": "ColumnarBatchRequest",
    "type": "object",
    "required": ["crs", "lon", "lat"],
    "properties": {
        "crs": {"type": "string"},
        "lon": {"type": "array", "items": {"type": "number"}, "maxItems": MAX_BATCH_POINTS},
        "lat": {"type": "array", "items": {"type": "number"}, "maxItems": MAX_BATCH_POINTS},
        "ids": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_ID_BYTES},
                    {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
                    {"type": "null"},
                ]
            },
        },
        "at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "near_m": {"type": "number", "minimum": 0, "maximum": 100, "default": 5.0},
    },
}

ANSWER_SCHEMA: dict[str, Any] = {
    "title": "BatchAnswer",
    "description": "Rows (`results`) or columns (one array per field)",
    "type": "object",
    "required": ["generation", "count"],
    "properties": {
        "generation": {"type": "integer"},
        "count": {"type": "integer"},
        "results": {"type": "array", "items": {"type": "object"}},
        **{name: {"type": "array", "description": text} for name, text in FIELDS.items()},
        "ids": {"type": "array"},
        "error": {"type": "array", "items": {"type": ["string", "null"]}},
        "error_message": {"type": "array", "items": {"type": ["string", "null"]}},
    },
}


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """A pydantic schema with its `$defs` written in place (the document has no such section)."""
    if isinstance(schema, dict):
        reference = schema.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {k: _inline(v, definitions) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    return schema


def request_body(rows_schema: dict[str, Any]) -> dict[str, Any]:
    rows = _inline(rows_schema, rows_schema.get("$defs", {}))
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"anyOf": [rows, COLUMNS_SCHEMA]}},
                ARROW: BINARY,
                PARQUET: BINARY,
            },
        }
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One answer per point, in input order",
        "content": {"application/json": {"schema": ANSWER_SCHEMA}, ARROW: BINARY, PARQUET: BINARY},
    },
    406: _error("None of the answer forms named in Accept"),
    415: _error("A Content-Type other than JSON, Arrow IPC stream or Parquet"),
}
