"""The spec's parameters: one value per name from the query string and the form body, checked.

Every problem is an Open311Error (400) naming the parameter in English and Chinese; nothing a
client sends reaches SQL unchecked (bound values only, and never a NUL, which PostgreSQL refuses).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from api.open311.formats import Open311Error
from api.times import in_utc
from api.workflow.calendar import SHANGHAI

MAX_VALUE_CHARS = 4000  # the longest text an event keeps (its description)
MAX_LIST_ITEMS = 1000
BIGINT_MAX = 2**63 - 1
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_]{1,64})\]$")


def bad(description: str) -> Open311Error:
    return Open311Error(400, description)


class Params:
    """A request's parameters: plain ones by name, and the `attribute[code]` ones apart."""

    def __init__(self, items: Iterable[tuple[str, Any]]) -> None:
        self.values: dict[str, str] = {}
        self.attributes: dict[str, str] = {}
        for name, value in items:
            if not isinstance(value, str):
                raise bad(
                    f"{name}: files are not accepted, send media_url instead / 不接受文件上传，请提供 media_url"
                )
            if "\x00" in name or "\x00" in value:
                raise bad(f"{name!r}: NUL characters are not allowed / 参数不能包含 NUL 字符")
            if len(value) > MAX_VALUE_CHARS:
                raise bad(
                    f"{name}: longer than {MAX_VALUE_CHARS} characters / 超过 {MAX_VALUE_CHARS} 个字符"
                )
            attribute = _ATTRIBUTE.match(name)
            target = self.attributes if attribute else self.values
            key = attribute.group(1) if attribute else name
            if key in target and target[key] != value:
                raise bad(f"{name} given twice with different values / 参数 {name} 重复且取值不同")
            target[key] = value

    def text(self, name: str) -> str | None:
        """The value, stripped; an empty one is absent (clients send `jurisdiction_id=`)."""
        value = self.values.get(name, "").strip()
        return value or None

    def number(self, name: str, low: float, high: float) -> float | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise bad(f"{name} must be a number / {name} 应为数字") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise bad(
                f"{name} must be between {low:g} and {high:g} / {name} 应在 {low:g} 到 {high:g} 之间"
            )
        return value

    def instant(self, name: str) -> datetime | None:
        """A W3C date-time; one without an offset is China Standard Time (UTC+8)."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
            if value.tzinfo is None:
                value = value.replace(tzinfo=SHANGHAI)
            return in_utc(value)
        except (ValueError, OverflowError):
            raise bad(
                f"{name} must be a W3C date-time such as 2024-05-01T08:00:00+08:00 / "
                f"{name} 应为 W3C 时间格式，例如 2024-05-01T08:00:00+08:00"
            ) from None

    def words(self, name: str, allowed: Iterable[str] | None = None) -> list[str] | None:
        """A comma-separated list (service_code=E01,E02), each item checked against `allowed`."""
        raw = self.text(name)
        if raw is None:
            return None
        items = list(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
        if not items:
            return None
        if len(items) > MAX_LIST_ITEMS:
            raise bad(f"{name}: at most {MAX_LIST_ITEMS} items / {name} 最多 {MAX_LIST_ITEMS} 项")
        if allowed is not None:
            known = set(allowed)
            unknown = [item for item in items if item not in known]
            if unknown:
                raise bad(
                    f"{name}: unknown value(s) {', '.join(unknown[:5])} / {name} 取值无效：{'、'.join(unknown[:5])}"
                )
        return items

    def ids(self, name: str) -> list[int] | None:
        """Comma-separated service request ids; one beyond any stored id simply matches nothing."""
        items = self.words(name)
        if items is None:
            return None
        ids = []
        for item in items:
            if not item.isascii() or not item.isdigit():
                raise bad(f"{name}: {item!r} is not a request id / {item!r} 不是有效的请求编号")
            ids.append(int(item))
        return [i for i in ids if 0 < i <= BIGINT_MAX]


def request_id(raw: str) -> int | None:
    """A path's service_request_id: an integer (None when no stored id can be that large)."""
    if not raw.isascii() or not raw.isdigit():
        raise bad(f"service_request_id {raw!r} is not an integer / 请求编号应为整数")
    value = int(raw)
    return value if 0 < value <= BIGINT_MAX else None
