"""Catalogues: grid levels (street, community, grid, micro-grid…), read once and cached; grid kinds.

Levels change rarely (the admin API and `wangge levels`, see api/levels.py), so every worker keeps
them for LEVELS_CACHE_SECONDS instead of reading grid_level on each request. A change through
api/levels.py drops this process's copy at once (`forget_levels`) and NOTIFYs LEVELS_CHANNEL at
commit; other processes re-read within LEVELS_CACHE_SECONDS, or at once where a listener passes
the notification to `forget_levels` (the lookup index's listener thread).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from api.db.filters import in_generation

LEVELS_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Level:
    name: str
    rank: int  # 0 is the coarsest level
    label_zh: str
    code_pattern: str | None
    code_extends_parent: bool
    households_min: int | None
    households_max: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_cache: dict[tuple[Any, ...], tuple[float, tuple[Level, ...]]] = {}
_lock = threading.Lock()


def grid_levels(connection: Connection) -> tuple[Level, ...]:
    """Every level, coarsest first (cached per database for LEVELS_CACHE_SECONDS)."""
    url = connection.engine.url
    key = (url.host, url.port, url.database)
    with _lock:
        entry = _cache.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    rows = connection.execute(
        text(
            "SELECT name, rank, label_zh, code_pattern, code_extends_parent, households_min, "
            "households_max FROM grid_level ORDER BY rank"
        )
    ).all()
    levels = tuple(Level(*row) for row in rows)
    with _lock:
        _cache[key] = (time.monotonic() + LEVELS_CACHE_SECONDS, levels)
    return levels


def level_named(connection: Connection, name: str) -> Level | None:
    return next((level for level in grid_levels(connection) if level.name == name), None)


def level_ranks(connection: Connection) -> dict[str, int]:
    return {level.name: level.rank for level in grid_levels(connection)}


def grid_kinds(connection: Connection) -> list[str]:
    """The names of the grid kinds, sorted."""
    return list(connection.execute(text("SELECT name FROM grid_kind ORDER BY name")).scalars())


def forget_levels() -> None:
    """Drop the cached catalogue (after a change: api/levels.py, SQL by hand, tests)."""
    with _lock:
        _cache.clear()


# --- changing the catalogue (api/levels.py; admin API and `wangge levels`) ------------------

LEVELS_CHANNEL = "wangge_levels"  # NOTIFY'd by every change (migration 0009), at commit
_LEVEL_CHANGES = 7_160_401  # pg_advisory_xact_lock key: one level change at a time


def lock_levels(connection: Connection) -> None:
    """Serialise level changes (until the transaction ends): each validates against the last."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEVEL_CHANGES})


def level_rows(connection: Connection) -> list[dict[str, Any]]:
    """Every level as stored (not cached), coarsest first, with the roles required at it, its
    grids in the active generation and whether any generation uses it."""
    rows = connection.execute(
        text(
            "WITH active AS (SELECT generation_id FROM generation_activation "
            " WHERE activated_at <= clock_timestamp() ORDER BY activated_at DESC, id DESC LIMIT 1) "
            "SELECT l.name, l.rank, l.label_zh, l.code_pattern, l.code_extends_parent, "
            " l.households_min, l.households_max, "
            " coalesce((SELECT array_agg(k.name ORDER BY k.name) FROM staff_role_kind k "
            "   WHERE k.required_at_level = l.name), '{}') AS required_roles, "
            " (SELECT count(*) FROM grid g, active a WHERE g.level = l.name "
            "   AND g.generation_low <= a.generation_id "
            "   AND g.generation_high >= a.generation_id) AS grids, "
            " EXISTS (SELECT 1 FROM grid g WHERE g.level = l.name) AS used "
            "FROM grid_level l ORDER BY l.rank"
        )
    ).mappings()
    return [{**row, "required_roles": list(row["required_roles"])} for row in rows]


def role_levels(connection: Connection) -> dict[str, str | None]:
    """Every staff role kind and the level it is required at (None: at no level)."""
    rows = connection.execute(text("SELECT name, required_at_level FROM staff_role_kind"))
    return {row.name: row.required_at_level for row in rows}


LEVEL_COLUMNS = (
    "name",
    "rank",
    "label_zh",
    "code_pattern",
    "code_extends_parent",
    "households_min",
    "households_max",
)


def save_level(
    connection: Connection,
    actor: str,
    action: str,
    old_name: str | None,
    level: dict[str, Any],
    roles: list[str] | None,
    details: dict[str, Any],
) -> None:
    """Add (action "level.add") or change ("level.change") a level through the owner's function
    (migration 0009), which writes the audit row and NOTIFYs LEVELS_CHANNEL; `roles` None leaves
    the required roles as they are."""
    connection.execute(
        text(
            "SELECT level_admin_save(:actor, :action, :old_name, :name, :rank, :label_zh, "
            ":code_pattern, :code_extends_parent, :households_min, :households_max, "
            "CAST(:roles AS text[]), :details)"
        ).bindparams(bindparam("details", type_=JSONB)),
        {
            **{column: level[column] for column in LEVEL_COLUMNS},
            "actor": actor,
            "action": action,
            "old_name": old_name,
            "roles": roles,
            "details": details,
        },
    )


def remove_level(connection: Connection, actor: str, name: str, details: dict[str, Any]) -> None:
    """Remove a level (no grid may use it) through the owner's function (migration 0009)."""
    connection.execute(
        text("SELECT level_admin_remove(:actor, :name, :details)").bindparams(
            bindparam("details", type_=JSONB)
        ),
        {"actor": actor, "name": name, "details": details},
    )


def checked_generations(connection: Connection) -> list[tuple[int, str]]:
    """The generations a level change must keep valid: the active one ("active") and every
    open draft's ("draft:<id>")."""
    rows = connection.execute(
        text(
            "(SELECT generation_id, 'active' AS place FROM generation_activation "
            " WHERE activated_at <= clock_timestamp() ORDER BY activated_at DESC, id DESC LIMIT 1) "
            "UNION ALL (SELECT generation_id, 'draft:' || id FROM draft WHERE status = 'open' "
            " ORDER BY id)"
        )
    ).all()
    return [(int(row[0]), str(row[1])) for row in rows]


def codes_at_level(connection: Connection, level: str, generation: int) -> list[Row[Any]]:
    """code and parent_code of a generation's grids at `level`."""
    return list(
        connection.execute(
            text(
                "SELECT code, parent_code FROM grid "
                f"WHERE level = :level AND {in_generation('', 'generation')} ORDER BY code"
            ),
            {"level": level, "generation": generation},
        )
    )


def parent_levels(connection: Connection, generation: int) -> list[Row[Any]]:
    """Each grid of a generation: code, level and its parent's level (None: no parent; a
    parent missing from the generation is left out: no rank can mend that)."""
    return list(
        connection.execute(
            text(
                "SELECT c.code, c.level, p.level AS parent_level FROM grid c "
                "LEFT JOIN grid p ON p.code = c.parent_code "
                f"AND {in_generation('p', 'generation')} "
                f"WHERE {in_generation('c', 'generation')} "
                "AND (c.parent_code IS NULL OR p.code IS NOT NULL) ORDER BY c.code"
            ),
            {"generation": generation},
        )
    )
