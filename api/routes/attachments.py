"""Photos of events (处置前后照片) and monitoring-point alerts (being built: issue 12 §1)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["attachments"])
