"""The command centre's pages: /map/dashboard (一屏全览) and /map/dispatch (调度台).

(Being built: issue 12 §2.)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
