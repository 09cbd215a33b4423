"""Address-only geocoding: one text (`GET /geocode/address`) or a batch (`POST /geocode/addresses`)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import CallerDep, HeavyDep, IndexStoreDep
from api.errors import error_responses
from api.lookup.geocoding import DEFAULT_THRESHOLD
from api.lookup.service import match_address
from api.routes.lookup import At
from api.times import Instant

router = APIRouter(tags=["geocode"], responses=error_responses(400, 401, 404, 413, 422, 503))
MAX_TEXT = 5_000  # longer than any ticket; the matcher itself reads at most 500 characters
MAX_BATCH_ADDRESSES = 1_000
LIGHT_BATCH_ADDRESSES = 100  # larger batches take a heavy-work slot

Threshold = Annotated[
    float, Query(ge=0, le=1, description="Below this confidence nothing is chosen (candidates)")
]


@router.get(
    "/geocode/address",
    summary="Geocode what a caller said: place, precision, grid or grid candidates",
    description=(
        "The text may carry the complaint after the address (园区新翠居4栋楼下垃圾堆放). "
        "`precision` is building, house_number, compound, intersection, poi, road or community; "
        "`grid` is set only when the whole place lies in one grid, else `grid_candidates` with "
        "shares and `needs_manual_dispatch`. Unmatched: `matched: false` with `reason`."
    ),
)
def address(
    store: IndexStoreDep,
    caller: CallerDep,
    q: Annotated[
        str, Query(max_length=MAX_TEXT, description="地址或工单原文，如 淞江路19号4幢楼下垃圾堆放")
    ] = "",
    at: At = None,
    threshold: Threshold = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    return match_address(store, q, at=at, threshold=threshold, caller=caller)


class AddressItem(BaseModel):
    id: str | int | None = Field(default=None, description="Your key for the text")
    text: str = Field(max_length=MAX_TEXT)


class AddressBatch(BaseModel):
    addresses: list[Annotated[str, Field(max_length=MAX_TEXT)] | AddressItem] = Field(
        max_length=MAX_BATCH_ADDRESSES
    )
    threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=1)
    at: Instant | None = None


@router.post(
    "/geocode/addresses",
    summary=f"Geocode up to {MAX_BATCH_ADDRESSES:,} texts at once (answers in input order)",
)
def addresses(
    store: IndexStoreDep, caller: CallerDep, heavy: HeavyDep, body: AddressBatch
) -> dict[str, Any]:
    items = [
        AddressItem(id=i + 1, text=item) if isinstance(item, str) else item
        for i, item in enumerate(body.addresses)
    ]
    big = len(items) > LIGHT_BATCH_ADDRESSES
    results = []
    with heavy.slot() if big else nullcontext():
        for item in items:
            answer = match_address(
                store, item.text, at=body.at, threshold=body.threshold, caller=caller
            )
            results.append({"id": item.id, **answer})
    return {"count": len(results), "results": results}
