"""What the per-worker lookup index is built from: grids, staff on duty, the activation
timeline and the building address register."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from api.db.filters import in_generation


def generation_grids(connection: Connection, generation: int) -> Sequence[Row[Any]]:
    """code, name, level, rank, parent_code, households and wkb of a generation's grids, by
    code: what the lookup index and the coverage check are built from."""
    return connection.execute(
        text(
            "SELECT g.code, g.name, g.level, l.rank, g.parent_code, g.households, "
            "ST_AsBinary(g.geom) AS wkb FROM grid g JOIN grid_level l ON l.name = g.level "
            f"WHERE {in_generation('g')} ORDER BY g.code"
        ),
        {"g": generation},
    ).all()


def staff_on_duty(connection: Connection) -> list[dict[str, Any]]:
    """Active staff per assignment: grid_code, id, name, phone, department, role, role_label."""
    rows = connection.execute(
        text(
            "SELECT a.grid_code, s.id, s.name, s.phone, s.department, a.role, k.label_zh AS role_label "
            "FROM staff_assignment a JOIN staff s ON s.id = a.staff_id JOIN staff_role_kind k "
            "ON k.name = a.role WHERE s.active ORDER BY a.grid_code, k.name, s.id"
        )
    ).mappings()
    return [dict(row) for row in rows]


def staff_stamp(connection: Connection) -> str | None:
    """A digest of everything `staff_on_duty` returns, computed by the server: workers poll
    it and reload the staff (and its memory) only when it changes."""
    return connection.execute(
        text(
            "SELECT md5(string_agg(concat_ws('|', a.grid_code, s.id, s.name, s.phone, "
            "s.department, a.role, k.label_zh), '/' ORDER BY a.grid_code, k.name, s.id)) "
            "FROM staff_assignment a JOIN staff s ON s.id = a.staff_id JOIN staff_role_kind k "
            "ON k.name = a.role WHERE s.active"
        )
    ).scalar_one()


def activation_timeline(connection: Connection) -> list[tuple[datetime, int]]:
    """(activated_at, generation) for every activation, oldest first."""
    rows = connection.execute(
        text(
            "SELECT activated_at, generation_id FROM generation_activation ORDER BY activated_at, id"
        )
    )
    return [(row[0], int(row[1])) for row in rows]


def building_register_stamp(connection: Connection) -> tuple[Any, ...]:
    """(count, last update) of the building register: when it changes, addresses reload."""
    return tuple(connection.execute(text("SELECT count(*), max(updated_at) FROM building")).one())


def building_addresses(connection: Connection) -> Sequence[Row[Any]]:
    """code, address, lon and lat (a point on the footprint) of every building with an address."""
    return connection.execute(
        text(
            "SELECT code, address, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
            "SELECT code, address, ST_PointOnSurface(geom) AS p FROM building WHERE address IS NOT NULL) b "
            "ORDER BY code"
        )
    ).all()
