"""What a deployment says about its Open311 endpoint (env WANGGE_OPEN311__…, once Settings has it)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Open311Settings(BaseModel):
    # A request naming another jurisdiction_id is refused (404); one naming none is served.
    jurisdiction_id: str = Field(default="wangge", min_length=1, max_length=100)
    contact: str = "网格化管理指挥中心 / the grid command centre (指挥中心) of this district"
    key_service: str = (
        "api_key: a wangge API token of the dispatcher role, issued by the administrator "
        "(wangge token create --role dispatcher) / 由管理员签发的调度员令牌"
    )
