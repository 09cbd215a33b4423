"""Generations: which boundary version is active now or was active at a given time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text


class NoActiveGeneration(LookupError):
    """No generation has been activated yet (load the demo or import grids first)."""


@dataclass(frozen=True)
class GenerationInfo:
    id: int
    description: str
    created_at: datetime
    activated_at: datetime | None


def generation_at(connection: Connection, at: datetime | None = None) -> int:
    """The generation active at `at` (now when None): the last one activated before it.

    "Now" is the statement's clock, not the transaction's start (now()): a publisher that
    began its transaction before another one's activation, and got the lock after it, must
    see that activation (and rebase onto it), or it would activate an older timestamp."""
    row = connection.execute(
        text(
            "SELECT generation_id FROM generation_activation "
            "WHERE activated_at <= coalesce(CAST(:at AS timestamptz), clock_timestamp()) "
            "ORDER BY activated_at DESC, id DESC LIMIT 1"
        ),
        {"at": at},
    ).first()
    if row is None:
        raise NoActiveGeneration(
            "no generation was active at that time" if at else "no generation is active yet"
        )
    return int(row[0])


def create_generation(connection: Connection, description: str, created_by: str) -> int:
    return int(
        connection.execute(
            text("INSERT INTO generation (description, created_by) VALUES (:d, :by) RETURNING id"),
            {"d": description, "by": created_by},
        ).scalar_one()
    )


def activate(connection: Connection, generation_id: int, activated_by: str) -> None:
    """Make `generation_id` the active one (the caller holds the generations lock).

    The activation time is the clock at this statement, never earlier than the newest
    activation: activations are ordered as the lock orders them, whenever each transaction
    began (the column's default, now(), is the transaction's start, which is not)."""
    connection.execute(
        text(
            "INSERT INTO generation_activation (generation_id, activated_by, activated_at) "
            "SELECT :g, :by, greatest(clock_timestamp(), "
            "(SELECT max(activated_at) + interval '1 microsecond' FROM generation_activation))"
        ),
        {"g": generation_id, "by": activated_by},
    )
    # Workers holding an in-memory index listen on this channel (lookup service).
    connection.execute(
        text("SELECT pg_notify('wangge_generation', CAST(:g AS text))"), {"g": generation_id}
    )


def list_generations(connection: Connection) -> list[GenerationInfo]:
    rows = connection.execute(
        text(
            "SELECT g.id, g.description, g.created_at, max(a.activated_at) AS activated_at "
            "FROM generation g LEFT JOIN generation_activation a ON a.generation_id = g.id "
            "GROUP BY g.id ORDER BY g.id"
        )
    ).all()
    return [GenerationInfo(r.id, r.description, r.created_at, r.activated_at) for r in rows]


def max_generation(connection: Connection) -> int | None:
    return connection.execute(text("SELECT max(id) FROM generation")).scalar()


def generation_exists(connection: Connection, generation_id: int) -> bool:
    return (
        connection.execute(
            text("SELECT 1 FROM generation WHERE id = :g"), {"g": generation_id}
        ).first()
        is not None
    )


def postgis_version(connection: Connection) -> str:
    """The PostGIS library version; a round trip that proves the database answers."""
    return str(connection.execute(text("SELECT postgis_lib_version()")).scalar())


def has_grids(connection: Connection) -> bool:
    return bool(connection.execute(text("SELECT EXISTS (SELECT 1 FROM grid)")).scalar())
