"""Who is asking: the jurisdiction a request names, and the wangge token behind its api_key."""

from __future__ import annotations

from sqlalchemy import Engine

from api.auth import Permission, Principal, resolve_token
from api.open311.formats import Open311Error
from api.open311.params import Params
from api.settings import Open311Settings, Settings

MAX_KEY_CHARS = 200


def open311_settings(settings: Settings) -> Open311Settings:
    """The deployment's Open311 settings (WANGGE_OPEN311__…)."""
    return settings.open311


def check_jurisdiction(params: Params, settings: Settings) -> None:
    """A jurisdiction_id must be ours; none at all is fine (one jurisdiction per endpoint)."""
    given = params.text("jurisdiction_id")
    served = open311_settings(settings).jurisdiction_id
    if given is not None and given != served:
        raise Open311Error(
            404,
            f"jurisdiction_id {given!r} is not served here (this endpoint serves {served!r}) / "
            f"本接口不受理该辖区（本接口的 jurisdiction_id 为 {served}）",
        )


def key_principal(
    engine: Engine, params: Params, settings: Settings, *, writing: bool
) -> Principal | None:
    """The token an api_key names. Writing needs one whose role may take events in
    (write_events: dispatcher, admin); reading works without one unless the deployment requires
    tokens for reads. A key that is wrong, expired or revoked is refused, never read as none."""
    secret = params.text("api_key")
    if secret is None:
        if writing or settings.auth.require_token_for_reads:
            raise Open311Error(
                403,
                "api_key is required: a wangge token of the dispatcher role / "
                "需要 api_key（调度员角色的 wangge 令牌）",
            )
        return None
    principal = None
    if len(secret) <= MAX_KEY_CHARS:
        with engine.connect() as connection:
            principal = resolve_token(connection, secret)
    if principal is None:
        raise Open311Error(
            403, "invalid api_key (unknown, expired or revoked) / api_key 无效、已过期或已吊销"
        )
    if writing and not principal.can(Permission.write_events):
        raise Open311Error(
            403,
            f"this api_key's role ({principal.role.value}) may not post requests / "
            f"该 api_key 的角色（{principal.role.value}）无权提交诉求",
        )
    return principal
