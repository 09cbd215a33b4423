"""Open311 GeoReport v2 under /open311/v2/ (being built: issue 12 §3)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/open311/v2", tags=["open311"])
