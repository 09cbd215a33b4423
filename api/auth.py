"""API tokens and roles.

A token is `wg_` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: with
that much entropy a fast hash is as safe as a slow one and keeps every request cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection

from api.db import audit
from api.db import tokens as token_rows


class Role(StrEnum):
    admin = "admin"
    planner = "planner"
    dispatcher = "dispatcher"
    supervisor = "supervisor"  # 督办, verification, the figures (指挥中心, 考核)
    handler = (
        "handler"  # a handling unit's staff (城管, 市场监管 …): works what is dispatched to it
    )
    field_staff = "field_staff"
    viewer = "viewer"


class Permission(StrEnum):
    read = "read"
    read_personal = "read_personal"  # staff contacts, event reporters
    write_grids = "write_grids"  # grids, buildings, monitoring points: import, edit, publish
    write_events = "write_events"  # event intake
    work_events = "work_events"  # move events through the loop (each action names its roles)
    report_events = "report_events"  # report what one sees in the street (source patrol)
    lookup = "lookup"
    manage_tokens = "manage_tokens"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.planner: frozenset(
        {Permission.read, Permission.read_personal, Permission.write_grids, Permission.lookup}
    ),
    Role.dispatcher: frozenset(
        {
            Permission.read,
            Permission.read_personal,
            Permission.write_events,
            Permission.work_events,
            Permission.report_events,
            Permission.lookup,
        }
    ),
    Role.supervisor: frozenset(
        {
            Permission.read,
            Permission.read_personal,
            Permission.work_events,
            Permission.report_events,
            Permission.lookup,
        }
    ),
    # Handlers see personal data of the events dispatched to their unit only (api/privacy.py).
    Role.handler: frozenset(
        {
            Permission.read,
            Permission.read_personal,
            Permission.work_events,
            Permission.report_events,
            Permission.lookup,
        }
    ),
    # Field staff see personal data of their own grids only (checked against grid_codes).
    Role.field_staff: frozenset(
        {
            Permission.read,
            Permission.read_personal,
            Permission.work_events,
            Permission.report_events,
            Permission.lookup,
        }
    ),
    Role.viewer: frozenset({Permission.read, Permission.lookup}),
}

TOKEN_PREFIX = "wg_"  # noqa: S105 (a prefix, not a secret)
TOKEN_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: Role
    grid_codes: tuple[str, ...] = field(default_factory=tuple)
    unit_code: str | None = None  # handlers: the handling unit they work for
    staff_id: int | None = None  # field staff: the person the token belongs to ("my tasks")

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}:{self.name}"


@dataclass(frozen=True)
class CreatedToken:
    id: int
    secret: str
    role: Role
    grid_codes: tuple[str, ...]
    unit_code: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    connection: Connection,
    *,
    name: str,
    role: Role,
    grid_codes: tuple[str, ...] = (),
    unit_code: str | None = None,
    staff_id: int | None = None,
    expires_at: datetime | None = None,
    actor: str,
) -> CreatedToken:
    """Create a token; the secret is returned once and never stored."""
    unit_code = unit_code or None  # an empty unit is none (a form or a script may send "")
    if role == Role.field_staff and not grid_codes:
        raise ValueError("a field_staff token needs at least one grid code (--grid)")
    if (role == Role.handler) != bool(unit_code):
        raise ValueError(
            "a handler token needs its handling unit (--unit), and only a handler has one"
        )
    if unit_code and not token_rows.known_unit(connection, unit_code):
        raise LookupError(f"unknown handling unit: {unit_code}")
    if staff_id is not None and not token_rows.known_staff(connection, staff_id):
        raise LookupError(f"unknown staff member: {staff_id}")
    if grid_codes:
        known = token_rows.known_grid_codes(connection, list(grid_codes))
        missing = [code for code in grid_codes if code not in known]
        if missing:
            raise LookupError(f"unknown grid code(s): {', '.join(missing)}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = token_rows.insert_token(
        connection,
        name=name,
        digest=_digest(secret),
        prefix=secret[:10],
        role=role.value,
        grid_codes=list(grid_codes),
        unit_code=unit_code,
        staff_id=staff_id,
        expires_at=expires_at,
    )
    audit.record(
        connection,
        actor,
        "token.create",
        "api_token",
        str(token_id),
        {
            "role": role.value,
            "grid_codes": list(grid_codes),
            "unit": unit_code,
            "staff_id": staff_id,
            "name": name,
        },
    )
    return CreatedToken(token_id, secret, role, grid_codes, unit_code)


def resolve_token(connection: Connection, secret: str) -> Principal | None:
    """The principal for a presented secret, or None if unknown, revoked or expired."""
    row = token_rows.valid_token(connection, _digest(secret))
    if row is None:
        return None
    return Principal(
        int(row.id),
        row.name,
        Role(row.role),
        tuple(row.grid_codes or ()),
        row.unit_code,
        row.staff_id,
    )


def revoke_token(connection: Connection, token_id: int, actor: str) -> bool:
    done = token_rows.revoke(connection, token_id)
    if done:
        audit.record(connection, actor, "token.revoke", "api_token", str(token_id))
    return bool(done)


def list_tokens(connection: Connection) -> list[dict]:
    return token_rows.token_rows(connection)


class TokenCache:
    """Resolved tokens for a few seconds, so authenticated hot paths skip the database.

    A revocation through this process clears the cache at once; other worker processes
    notice within TOKEN_CACHE_SECONDS.
    """

    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS) -> None:
        self._seconds = seconds
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, secret: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(_digest(secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, secret: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[_digest(secret)] = (time.monotonic() + self._seconds, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
