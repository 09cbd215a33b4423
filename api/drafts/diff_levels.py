"""A draft diff per level: who gains and who loses which buildings, households, monitoring points
and open events, and the staff responsible on each side.

Staff are today's people (`staff_assignment` by grid code). A grid's staff after publishing are
those assigned to its code plus those of the codes recoded into it (they follow a recode).
Names and phones appear only where `api/privacy.py` lets the caller see the grid's personal
data (judged on the active generation's path of the grid, or of the grid it was recoded
from); everyone else gets each role and how many hold it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping

from api.db import diffs as diff_rows
from api.db.catalogue import Level
from api.privacy import Caller

MOVES_CAP = 500  # moves, receiving and losing grids listed per level (the biggest first)
LEVEL_ITEMS_CAP = 1000  # objects listed per kind and level (by code; the counts cover them all)
KINDS = ("buildings", "monitoring_points", "open_events")
TOTALS = ("buildings", "households", "monitoring_points", "open_events")

Pair = tuple[str | None, str | None]


def _totals() -> dict[str, int]:
    return dict.fromkeys(TOTALS, 0)


def pair_totals(moving: dict[str, diff_rows.Moving]) -> dict[str, dict[Pair, dict[str, int]]]:
    """level → (from grid, to grid) → totals, from each kind's per-level rows."""
    pairs: dict[str, dict[Pair, dict[str, int]]] = {}
    for key, result in moving.items():
        for level, from_grid, to_grid, objects, households in result.by_level:
            entry = pairs.setdefault(level, {}).setdefault((from_grid, to_grid), _totals())
            entry[key] += objects
            if key == "buildings":
                entry["households"] += households
    return pairs


@dataclass(frozen=True)
class StaffBook:
    """Who is responsible for which grid code, and whose names this caller may see."""

    assigned: dict[str, list[RowMapping]]
    recoded_from: dict[str, list[str]]
    active_paths: dict[str, list[str]]
    required: list[RowMapping]
    caller: Caller

    def people(self, code: str) -> list[RowMapping]:
        """Staff of `code` once the draft is live (its own and those following a recode)."""
        found = list(self.assigned.get(code, []))
        for source in self.recoded_from.get(code, []):
            found += self.assigned.get(source, [])
        return found

    def visible(self, code: str) -> bool:
        path = self.active_paths.get(code)
        if path is None:
            path = next(
                (
                    self.active_paths[s]
                    for s in self.recoded_from.get(code, [])
                    if s in self.active_paths
                ),
                [],
            )
        return self.caller.sees_personal(path)

    def by_role(self, code: str | None) -> list[dict[str, Any]]:
        """[{role, role_label, count, people}], people None when the caller may not see them."""
        if code is None:
            return []
        show = self.visible(code)
        roles: dict[str, dict[str, Any]] = {}
        for person in self.people(code):
            entry = roles.setdefault(
                person["role"],
                {
                    "role": person["role"],
                    "role_label": person["role_label"],
                    "count": 0,
                    "people": [] if show else None,
                },
            )
            entry["count"] += 1
            if show:
                entry["people"].append(
                    {"id": person["id"], "name": person["name"], "phone": person["phone"]}
                )
        return list(roles.values())

    def missing(self, code: str, level: str) -> list[dict[str, str]]:
        """Roles required at `level` that nobody holds on `code` once the draft is live."""
        held = {person["role"] for person in self.people(code)}
        return [
            {"role": r["role"], "role_label": r["role_label"]}
            for r in self.required
            if r["level"] == level and r["role"] not in held
        ]


def staff_book(
    connection: Connection,
    active: int,
    codes: Iterable[str],
    recodes: Sequence[tuple[str, str]],
    caller: Caller,
) -> StaffBook:
    """The staff of `codes` (and of the codes recoded into them), read in three queries."""
    recoded_from: dict[str, list[str]] = {}
    for old, new in recodes:
        recoded_from.setdefault(new, []).append(old)
    wanted = sorted(set(codes) | {old for old, _ in recodes})
    assigned: dict[str, list[RowMapping]] = {}
    for row in diff_rows.staff_on(connection, wanted):
        assigned.setdefault(row["grid_code"], []).append(row)
    return StaffBook(
        assigned=assigned,
        recoded_from=recoded_from,
        active_paths=diff_rows.paths(connection, active, wanted),
        required=diff_rows.required_roles(connection),
        caller=caller,
    )


def _ranked(totals: dict[str, int]) -> tuple[int, ...]:
    return tuple(
        -totals[k] for k in ("households", "buildings", "monitoring_points", "open_events")
    )


def level_entry(
    level: Level,
    pairs: dict[Pair, dict[str, int]],
    names: dict[str, tuple[str, bool]],
    recodes: list[tuple[str, str]],
    staff: StaffBook,
    items: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """One level's moves, receiving and losing grids (each list the biggest first, capped) and
    the objects that change grid at this level."""

    def name(code: str | None) -> str | None:
        return names[code][0] if code in names else None

    ordered = sorted(pairs.items(), key=lambda p: (_ranked(p[1]), p[0][0] or "", p[0][1] or ""))
    moves = [
        {
            "from_grid": from_grid,
            "from_name": name(from_grid),
            "to_grid": to_grid,
            "to_name": name(to_grid),
            **totals,
            "from_staff": staff.by_role(from_grid),
            "to_staff": staff.by_role(to_grid),
        }
        for (from_grid, to_grid), totals in ordered[:MOVES_CAP]
    ]
    gains: dict[str, tuple[dict[str, int], list[str | None]]] = {}
    losses: dict[str, tuple[dict[str, int], list[str | None]]] = {}
    for (from_grid, to_grid), totals in ordered:
        for code, other, book in ((to_grid, from_grid, gains), (from_grid, to_grid, losses)):
            if code is None:
                continue
            sums, others = book.setdefault(code, (_totals(), []))
            for key in TOTALS:
                sums[key] += totals[key]
            others.append(other)
    recoded_away = {old for old, _ in recodes}
    missing = {code: staff.missing(code, level.name) for code in gains}
    receiving: list[dict[str, Any]] = [
        {
            "grid": code,
            "name": name(code),
            "gains": sums,
            "from": sorted(others, key=lambda c: c or ""),
            "staff": staff.by_role(code),
            "missing_roles": missing[code],
        }
        for code, (sums, others) in sorted(gains.items(), key=lambda g: (_ranked(g[1][0]), g[0]))
    ]
    losing: list[dict[str, Any]] = [
        {
            "grid": code,
            "name": name(code),
            "loses": sums,
            "to": sorted(others, key=lambda c: c or ""),
            "removed": not names.get(code, ("", True))[1] and code not in recoded_away,
            "staff": staff.by_role(code),
        }
        for code, (sums, others) in sorted(losses.items(), key=lambda g: (_ranked(g[1][0]), g[0]))
    ]
    summary = {f"{key}_moving": sum(t[key] for t in pairs.values()) for key in TOTALS}
    return {
        "level": level.name,
        "label_zh": level.label_zh,
        "summary": {
            **summary,
            "moves": len(pairs),
            "receiving_grids": len(receiving),
            "losing_grids": len(losing),
        },
        "moves": moves,
        "receiving": receiving[:MOVES_CAP],
        "losing": losing[:MOVES_CAP],
        "missing_roles": [
            {"grid": r["grid"], **role}
            for r in receiving[:MOVES_CAP]
            for role in missing[r["grid"]]
        ],
        "recoded": [{"old_code": old, "new_code": new} for old, new in recodes],
        **{kind: items.get(kind, []) for kind in KINDS},
        "truncated": {
            "moves": max(len(pairs), len(receiving), len(losing)) > MOVES_CAP,
            **{kind: summary[f"{kind}_moving"] > len(items.get(kind, [])) for kind in KINDS},
        },
    }
