"""Who may see patrol tracks and patrol coverage: the one rule for patrols (README: 巡查).

A track says where a person was, minute by minute: it is personal data of the worker who walked
it. A patrol belongs to the token that recorded it and, when that token names a person
(`api_token.staff_id`), to that person: a worker with a new phone still sees their own tracks.

Who sees a track (the line, its fixes, and the list of patrols):
- the worker themself (the same token, or a token of the same staff member);
- supervisors (督办, the figures) and admins: every track, as the issue asks ("the worker, their
  supervisors and admins");
- nobody else: not dispatchers (they see the figures, not a person's movements), not planners,
  not handlers, not other field staff, not viewers or anonymous callers.

Who sees coverage figures (巡查覆盖率) of a grid:
- supervisors, dispatchers and admins: any grid, with a row per worker;
- field staff: grids at or below their token's grids (judged on the active generation, like
  every scope), with the grid's totals and their own row only;
- nobody else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.auth import Principal, Role
from api.privacy import Caller

TRACK_ROLES = frozenset({Role.admin, Role.supervisor})
COVERAGE_ROLES = frozenset({Role.admin, Role.supervisor, Role.dispatcher})


def owns(principal: Principal | None, token_id: int | None, staff_id: int | None) -> bool:
    """Is this patrol the caller's own: recorded with their token, or by the same person?"""
    if principal is None:
        return False
    if token_id is not None and token_id == principal.token_id:
        return True
    return staff_id is not None and staff_id == principal.staff_id


def sees_all_tracks(caller: Caller) -> bool:
    principal = caller.principal
    return principal is not None and principal.role in TRACK_ROLES


def sees_track(caller: Caller, patrol: dict[str, Any]) -> bool:
    """May the caller see this patrol's track, fixes and listing?"""
    return sees_all_tracks(caller) or owns(caller.principal, patrol["token_id"], patrol["staff_id"])


def sees_coverage(caller: Caller, path_codes: Sequence[str]) -> bool:
    """May the caller see patrol coverage of the grid at the end of this root→leaf path?"""
    principal = caller.principal
    if principal is None:
        return False
    if principal.role in COVERAGE_ROLES:
        return True
    return principal.role == Role.field_staff and caller.sees_personal(path_codes)
