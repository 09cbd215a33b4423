"""How a wangge event reads as an Open311 service request, and back.

- status: the loop's open states are "open", its finished ones (结案, 评价, 不予立案, 作废, 合并)
  are "closed" (api/workflow/machine.py decides which is which);
- times are W3C date-times in China Standard Time (+08:00);
- what only Open311 carries and an event has no column for (media_url, email) travels in a
  marked block at the end of the event's description: it is what the citizen told us, so it is
  personal data exactly like the description (api/privacy.py), and wangge never fetches a media_url.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from api.workflow.calendar import SHANGHAI
from api.workflow.machine import LABELS_ZH, OPEN, State

SOURCE = "open311"  # the events this interface receives
EXTRAS_MARK = "\n\n—— Open311 ——\n"
EXTRAS = ("media_url", "email")
_EXTRA_LINE = re.compile(r"^(media_url|email): (\S+)$")
_VALID = {"media_url": re.compile(r"^https?://\S{1,1000}$"), "email": re.compile(r"^\S+@\S+$")}


def open311_status(status: str) -> str:
    return "open" if State(status) in OPEN else "closed"


def wangge_statuses(open311: list[str]) -> list[str]:
    """The loop's states an Open311 status filter (open, closed) means."""
    wanted = set(open311)
    return sorted(s.value for s in State if open311_status(s.value) in wanted)


def w3c(value: datetime | None) -> str | None:
    """A W3C date-time with its offset, in China Standard Time."""
    return value.astimezone(SHANGHAI).isoformat(timespec="seconds") if value else None


def service_notice(status: str) -> str:
    state = State(status)
    return f"{LABELS_ZH[state]}（{state.value}）"


def _cjk(text: str) -> bool:
    return all("\u3400" <= char <= "\u9fff" or char == "·" for char in text)


def reporter_name(first_name: str | None, last_name: str | None) -> str | None:
    """A Chinese name is family name first and unspaced (王 + 小明 → 王小明); others as given."""
    if first_name and last_name and _cjk(first_name + last_name):
        return last_name + first_name
    return " ".join(part for part in (first_name, last_name) if part) or None


def compose_description(description: str | None, extras: dict[str, str | None]) -> str | None:
    """The description as stored: the citizen's text, then the Open311-only values, if any."""
    lines = [f"{name}: {extras[name]}" for name in EXTRAS if extras.get(name)]
    # A citizen who types the mark cannot forge a block: their mark loses its line breaks.
    text = (description or "").replace(EXTRAS_MARK, " " + EXTRAS_MARK.strip() + " ")
    if not lines:
        return text if description is not None else None
    return text + EXTRAS_MARK + "\n".join(lines)


def split_description(stored: str | None) -> tuple[str | None, dict[str, str]]:
    """The citizen's text and the Open311-only values of a stored description. A block that is
    not exactly ours (a citizen who typed the mark) stays part of the text."""
    if not stored or EXTRAS_MARK not in stored:
        return stored, {}
    text, block = stored.rsplit(EXTRAS_MARK, 1)
    extras: dict[str, str] = {}
    for line in block.split("\n"):
        found = _EXTRA_LINE.match(line)
        if (
            found is None
            or found.group(1) in extras
            or not _VALID[found.group(1)].match(found.group(2))
        ):
            return stored, {}
        extras[found.group(1)] = found.group(2)
    return text or None, extras


def request_document(row: dict[str, Any], personal: bool) -> dict[str, Any]:
    """One service request, in the spec's field order. Without `personal` (api/privacy.py:
    Caller.sees_event) the citizen's text, address, media and the staff's notes are left empty."""
    description, extras = (
        split_description(row["description"])
        if row["source"] == SOURCE
        else (row["description"], {})
    )
    return {
        "service_request_id": row["id"],
        "status": open311_status(row["status"]),
        "status_notes": row["last_note"] if personal else None,
        "service_name": row["service_name"],
        "service_code": row["category_code"],
        "description": description if personal else None,
        "agency_responsible": row["unit_name"],
        "service_notice": service_notice(row["status"]),
        "requested_datetime": w3c(row["reported_at"] or row["received_at"]),
        "updated_datetime": w3c(row["updated_at"]),
        "expected_datetime": w3c(row["due_at"]),
        "address": row["address"] if personal else None,
        "address_id": None,
        "zipcode": None,
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": extras.get("media_url") if personal else None,
    }
