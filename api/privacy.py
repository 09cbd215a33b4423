"""Who may see personal data: the one rule every route and page calls (README: 个人信息).

Personal data in wangge:
- staff names, phones and departments (`staff`);
- what citizens tell us about an event: its free text (`description`), the address they gave,
  the reporter's name and phone, and who touched it (`history[].actor`, `history[].note`);
- the free columns of imported grid, building and monitoring-point files (`attributes`:
  owners, phone numbers… whatever the source file carried);
- the names of tokens (they are usually a person's name): actors such as `token:7:张三` are shown
  to everyone else as `token:7`.

Who sees it:
- admin, planner, dispatcher and supervisor: everything;
- handler (a handling unit's staff): the events dispatched to their unit — what the citizen
  said, where, and who reported it — and nothing else personal (no staff lists, no grids);
- field_staff: staff and events only inside their own grids — a grid is theirs when one of the
  token's grid codes is the grid itself or one of its ancestors, judged on the *active*
  generation (a token's scope is today's grids, whatever generation a request asks about). Never
  the free `attributes` of imported files nor token names: those columns are unvetted (a file
  may carry anything) and listed without a grid, so they stay with the unscoped roles;
- viewer and anonymous callers: nothing personal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from api.auth import Permission, Principal, Role

ACTOR_PREFIX = "token:"
SCOPED_ROLES = frozenset({Role.field_staff, Role.handler})


@dataclass(frozen=True)
class Caller:
    """A request's principal, asked only through this rule."""

    principal: Principal | None

    @property
    def sees_all_personal(self) -> bool:
        """Personal data everywhere (no grid scope)."""
        principal = self.principal
        return (
            principal is not None
            and principal.can(Permission.read_personal)
            and principal.role not in SCOPED_ROLES
        )

    def personal_codes(self, path_codes: Sequence[str]) -> list[str]:
        """Of a root→leaf path of grid codes (active generation), those whose personal data
        the caller may see: all, none, or for field staff the part at and below their grid."""
        principal = self.principal
        if principal is None or not principal.can(Permission.read_personal):
            return []
        if principal.role == Role.handler:
            return []
        if principal.role != Role.field_staff:
            return list(path_codes)
        for position, code in enumerate(path_codes):
            if code in principal.grid_codes:
                return list(path_codes[position:])
        return []

    def sees_personal(self, path_codes: Sequence[str]) -> bool:
        """May the caller see personal data of the grid at the end of this path (or of a thing
        placed in it)? An empty path (an unplaced event) is for unscoped roles only."""
        if not path_codes:
            return self.sees_all_personal
        return path_codes[-1] in self.personal_codes(path_codes)

    def sees_event(self, path_codes: Sequence[str], unit_code: str | None) -> bool:
        """May the caller see what a citizen told us about an event on this path, handled by
        this unit? Grid scope as above, or a handler of the event's own unit."""
        principal = self.principal
        if (
            principal is not None
            and principal.role == Role.handler
            and unit_code is not None
            and unit_code == principal.unit_code
        ):
            return True
        return self.sees_personal(path_codes)


def public_actor(actor: str | None, caller: Caller) -> str | None:
    """An actor as this caller may see it: token names only for unscoped personal-data roles."""
    if actor is None or caller.sees_all_personal or not actor.startswith(ACTOR_PREFIX):
        return actor
    token_id = actor[len(ACTOR_PREFIX) :].split(":", 1)[0]
    return f"{ACTOR_PREFIX}{token_id}"


def feature_without_attributes(feature: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """Drop the free columns of imported files from one feature unless entitled."""
    if not caller.sees_all_personal:
        feature.get("properties", {}).pop("attributes", None)
    return feature


def without_attributes(collection: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """The same for every feature of a collection."""
    for feature in collection.get("features", []):
        feature_without_attributes(feature, caller)
    return collection


EVENT_PERSONAL_FIELDS = ("description", "address", "reporter")


def redact_event_features(
    collection: dict[str, Any], caller: Caller, scope_of: Callable[[str | None], list[str]]
) -> dict[str, Any]:
    """Event features keep their citizen's text only where the caller may see it."""
    if caller.sees_all_personal:
        return collection
    for feature in collection.get("features", []):
        properties = feature.get("properties", {})
        scope = scope_of(properties.get("grid_code"))
        if not caller.sees_event(scope, properties.get("unit_code")):
            for name in EVENT_PERSONAL_FIELDS:
                properties.pop(name, None)
    return collection


ACTOR_FIELDS = ("created_by", "actor")


def public_record(record: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """A draft, check or edit record with its actors as this caller may see them."""
    for name in ACTOR_FIELDS:
        if name in record:
            record[name] = public_actor(record[name], caller)
    for nested in ("edits",):
        for item in record.get(nested) or []:
            public_record(item, caller)
    return record
