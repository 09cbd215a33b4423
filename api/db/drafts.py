"""Draft rows and their edit log (draft, draft_edit)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from api.db.filters import in_generation
from api.db.versioning import grid_row
from spatial.grids import GridRow

# An edit that still counts: not undone, and not itself an undo.
LIVE_EDIT = "NOT undone AND operation <> 'undo'"
# A rebase starts the draft's history afresh: it records, as its own lineage, what the edits
# before it made of the base (relative to the generation it moved to); only it and the edits
# after it count for the lineage of a publish.
SINCE_REBASE = (
    "version >= coalesce((SELECT max(r.version) FROM draft_edit r WHERE r.draft_id = :d "
    "AND r.operation = 'rebase' AND NOT r.undone), 0)"
)


def insert_draft(
    connection: Connection, generation: int, base: int, name: str, actor: str, source: str
) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO draft (generation_id, base_generation, name, created_by, source) "
                "VALUES (:g, :b, :n, :a, :s) RETURNING id"
            ),
            {"g": generation, "b": base, "n": name, "a": actor, "s": source},
        ).scalar_one()
    )


@dataclass(frozen=True)
class Draft:
    """A draft: its own generation (a working copy of `base_generation`) at `version`."""

    id: int
    generation_id: int
    base_generation: int
    name: str
    version: int
    status: str
    source: str
    created_by: str
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
        }


_DRAFT_COLUMNS = ", ".join(f.name for f in fields(Draft))


def find_draft(connection: Connection, draft_id: int, *, for_update: bool = False) -> Draft | None:
    """The draft row (locked for this transaction with for_update), or None."""
    lock = " FOR UPDATE" if for_update else ""
    row = (
        connection.execute(
            text(f"SELECT {_DRAFT_COLUMNS} FROM draft WHERE id = :id{lock}"), {"id": draft_id}
        )
        .mappings()
        .first()
    )
    return Draft(**row) if row is not None else None


def find_drafts(connection: Connection, status: str | None) -> list[Draft]:
    """Drafts with this status (all when None), newest first."""
    rows = connection.execute(
        text(
            f"SELECT {_DRAFT_COLUMNS} FROM draft WHERE CAST(:s AS text) IS NULL OR status = :s "
            "ORDER BY id DESC"
        ),
        {"s": status},
    ).mappings()
    return [Draft(**r) for r in rows]


def edit_log(connection: Connection, draft_id: int) -> list[dict[str, Any]]:
    """version, operation, codes, actor, at and undone of every edit, newest first."""
    rows = connection.execute(
        text(
            "SELECT version, operation, codes, actor, at, undone FROM draft_edit "
            "WHERE draft_id = :d ORDER BY version DESC"
        ),
        {"d": draft_id},
    ).mappings()
    return [dict(r) for r in rows]


def set_status(connection: Connection, draft_id: int, status: str) -> None:
    connection.execute(
        text("UPDATE draft SET status = :s, updated_at = now() WHERE id = :id"),
        {"s": status, "id": draft_id},
    )


def log_edit(
    connection: Connection,
    draft_id: int,
    version: int,
    operation: str,
    codes: list[str],
    details: dict[str, Any],
    actor: str,
) -> None:
    """Move the draft to `version` and log the edit that made it."""
    connection.execute(
        text("UPDATE draft SET version = :v, updated_at = now() WHERE id = :id"),
        {"v": version, "id": draft_id},
    )
    connection.execute(
        text(
            "INSERT INTO draft_edit (draft_id, version, operation, codes, details, actor) "
            "VALUES (:d, :v, :o, :c, CAST(:details AS jsonb), :a)"
        ),
        {
            "d": draft_id,
            "v": version,
            "o": operation,
            "c": codes,
            "details": json.dumps(details, ensure_ascii=False),
            "a": actor,
        },
    )


def last_live_edit(connection: Connection, draft_id: int) -> Row[Any] | None:
    """id, version, operation and details of the newest edit that still counts."""
    return connection.execute(
        text(
            "SELECT id, version, operation, details FROM draft_edit WHERE draft_id = :d "
            f"AND {LIVE_EDIT} ORDER BY version DESC LIMIT 1"
        ),
        {"d": draft_id},
    ).first()


def mark_undone(connection: Connection, edit_id: int) -> None:
    connection.execute(text("UPDATE draft_edit SET undone = true WHERE id = :id"), {"id": edit_id})


def live_lineages(connection: Connection, draft_id: int) -> list[Any]:
    """The lineage steps recorded by each edit that still counts, oldest first (from the newest
    rebase on, which carries what the edits before it made)."""
    return list(
        connection.execute(
            text(
                "SELECT details->'lineage' FROM draft_edit WHERE draft_id = :d "
                f"AND {LIVE_EDIT} AND {SINCE_REBASE} ORDER BY version"
            ),
            {"d": draft_id},
        ).scalars()
    )


def move_base(connection: Connection, draft_id: int, generation: int) -> None:
    """The draft is now a working copy of `generation` (after a rebase)."""
    connection.execute(
        text("UPDATE draft SET base_generation = :b WHERE id = :id"),
        {"b": generation, "id": draft_id},
    )


def differing_codes(connection: Connection, old: int, new: int) -> list[str]:
    """Codes whose row is not one and the same row in both generations: absent from one, or a
    different row (which may still be a copy with the same content: compare before trusting)."""
    return list(
        connection.execute(
            text(
                "SELECT coalesce(o.code, n.code) FROM "
                f"(SELECT id, code FROM grid WHERE {in_generation(param='old')}) o FULL JOIN "
                f"(SELECT id, code FROM grid WHERE {in_generation(param='new')}) n "
                "ON n.code = o.code WHERE o.id IS DISTINCT FROM n.id"
            ),
            {"old": old, "new": new},
        ).scalars()
    )


def rows_in(connection: Connection, generation: int, codes: list[str]) -> dict[str, GridRow]:
    """The generation's rows of these codes (codes it lacks are left out)."""
    rows = connection.execute(
        text(
            "SELECT code, name, level, kind, parent_code, households, population, attributes, "
            f"ST_AsBinary(geom) AS wkb FROM grid WHERE {in_generation()} AND code = ANY(:codes)"
        ),
        {"g": generation, "codes": codes},
    ).all()
    return {r.code: grid_row(r) for r in rows}


def lineage_since(connection: Connection, base: int) -> list[tuple[str | None, str | None, str]]:
    """The lineage recorded by every activation after the newest activation of `base`."""
    rows = connection.execute(
        text(
            "SELECT l.old_code, l.new_code, l.relation FROM grid_lineage l "
            "JOIN generation_activation a ON a.generation_id = l.generation_id "
            "WHERE a.id > (SELECT coalesce(max(id), 0) FROM generation_activation "
            "WHERE generation_id = :b) ORDER BY a.id, l.id"
        ),
        {"b": base},
    ).all()
    return [(r.old_code, r.new_code, r.relation) for r in rows]


def edit_groups(connection: Connection, draft_id: int) -> list[set[str]]:
    """The codes each edit that still counts changed (from the newest rebase on, which
    recorded the groups of the changes it carried)."""
    rows = connection.execute(
        text(
            "SELECT operation, codes, details->'groups' AS groups FROM draft_edit "
            f"WHERE draft_id = :d AND {LIVE_EDIT} AND {SINCE_REBASE} ORDER BY version"
        ),
        {"d": draft_id},
    ).all()
    groups: list[set[str]] = []
    for row in rows:
        if row.operation == "rebase":
            groups += [set(g) for g in row.groups or []]
        else:
            groups.append(set(row.codes))
    return groups


def drafts_published_since(connection: Connection, base: int) -> list[int]:
    """Drafts whose generation was activated after the newest activation of `base`."""
    return list(
        connection.execute(
            text(
                "SELECT DISTINCT d.id FROM draft d JOIN generation_activation a "
                "ON a.generation_id = d.generation_id WHERE a.id > (SELECT coalesce(max(id), 0) "
                "FROM generation_activation WHERE generation_id = :b) ORDER BY d.id"
            ),
            {"b": base},
        ).scalars()
    )


def draft_version_of(connection: Connection, generation: int) -> int | None:
    """The version of the draft owning `generation` (None for a generation no draft owns)."""
    return connection.execute(
        text("SELECT version FROM draft WHERE generation_id = :g"), {"g": generation}
    ).scalar()
