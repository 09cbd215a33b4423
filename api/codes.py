"""The grid code rule of a level (GB/T 30428-style: a pattern, and codes that extend their
parent's code), decided here for imports and draft edits alike."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# Whatever a level's pattern: a code is a short run of letters, digits, '-', '_' or '.', so it
# is safe in a URL path, a file name and a spreadsheet cell.
CODE_CHARACTERS = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}")


def code_problem(code: str, parent_code: str | None, level: dict[str, Any] | Any) -> str | None:
    """Why `code` breaks the rule of `level` (a grid_level row) under `parent_code`, or None."""
    if not CODE_CHARACTERS.fullmatch(code):
        return "编码只能由字母、数字和 - _ . 组成（以字母或数字开头，最长 64 个字符）"
    name = _get(level, "name")
    pattern = _get(level, "code_pattern")
    if pattern and not _compiled(pattern).fullmatch(code):
        return f"编码不符合 {name} 层级的编码规则 {pattern}"
    if (
        pattern
        and _get(level, "code_extends_parent")
        and parent_code
        and not code.startswith(parent_code)
    ):
        return f"编码应以上级编码 {parent_code} 开头"
    return None


def _get(level: dict[str, Any] | Any, key: str) -> Any:
    return level[key] if isinstance(level, dict) else getattr(level, key)
