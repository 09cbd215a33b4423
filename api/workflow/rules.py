"""What a category at a tier proposes: the tier itself, the handling unit, and the deadlines.

三级事项 (tiers): 3 — the community and its grid staff; 2 — the street; 1 — district departments.
A dispatch rule names, per category and tier, the kind of unit that handles it and the working
time to accept (立案) and to handle it; a rule without a category is its tier's fallback. A unit
answers for the areas it lists (grid codes at any level); a unit listing none answers everywhere,
and the unit whose area is the finest on the event's path wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.workflow.calendar import WorkCalendar

DEFAULT_TIER = 3
# When no rule at all matches (a deployment deleted them): two working hours, three working days.
FALLBACK_RULE = {
    "unit_kind": None,
    "accept_hours": 2.0,
    "handle_amount": 3.0,
    "handle_unit": "days",
}


@dataclass(frozen=True)
class Catalogue:
    rules: list[dict[str, Any]]
    units: list[dict[str, Any]]
    category_tiers: dict[str, int | None]
    calendar: WorkCalendar = field(default_factory=WorkCalendar)

    def tier_for(self, category: str | None) -> int:
        return self.category_tiers.get(category or "") or DEFAULT_TIER

    def rule(self, category: str | None, tier: int) -> dict[str, Any]:
        fallback = None
        for rule in self.rules:
            if rule["tier"] != tier:
                continue
            if rule["category_code"] == category and category is not None:
                return rule
            if rule["category_code"] is None:
                fallback = rule
        return fallback or {**FALLBACK_RULE, "tier": tier, "category_code": None}

    def unit_for(
        self, category: str | None, tier: int, path_codes: Sequence[str]
    ) -> dict[str, Any] | None:
        """The unit the rule proposes for an event on this path (finest area first)."""
        kind = self.rule(category, tier)["unit_kind"]
        best: tuple[int, dict[str, Any]] | None = None
        for unit in self.units:
            if unit["kind"] != kind:
                continue
            areas = unit["areas"] or []
            if not areas:
                depth = -1
            else:
                matches = [i for i, code in enumerate(path_codes) if code in areas]
                if not matches:
                    continue
                depth = max(matches)
            if best is None or depth > best[0]:
                best = (depth, unit)
        return best[1] if best else None

    def unit(self, code: str) -> dict[str, Any] | None:
        return next((u for u in self.units if u["code"] == code), None)

    def accept_deadline(self, start: datetime, category: str | None, tier: int) -> datetime:
        return self.calendar.add_hours(start, float(self.rule(category, tier)["accept_hours"]))

    def handle_deadline(self, start: datetime, category: str | None, tier: int) -> datetime:
        rule = self.rule(category, tier)
        return self.calendar.add(start, float(rule["handle_amount"]), rule["handle_unit"])
