"""Safe code patterns: a level's code rule is a Python regular expression run on every code
an import, a draft edit or the coverage check meets, so it must not backtrack without bound
(ReDoS). Python's `re` has no time limit; the guard is structural, on the parsed pattern."""

from __future__ import annotations

import re
from re import _parser  # type: ignore[attr-defined]
from typing import Any

MAX_PATTERN_LENGTH = 200
# Codes are at most 64 characters (api/codes.CODE_CHARACTERS is checked before the pattern), so
# with no nested repeats and at most three variable ones a match costs at most ~64³ steps.
MAX_VARIABLE_REPEATS = 3
MAX_REPEAT_COUNT = 64

_REPEATS = {_parser.MAX_REPEAT, _parser.MIN_REPEAT, getattr(_parser, "POSSESSIVE_REPEAT", None)}
_PLAIN = {
    _parser.LITERAL,
    _parser.NOT_LITERAL,
    _parser.IN,
    _parser.ANY,
    _parser.AT,
    _parser.CATEGORY,
    _parser.RANGE,
}


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a level's code rule, or None.

    It must compile as a Python regular expression, be at most MAX_PATTERN_LENGTH characters,
    use no back-references or look-arounds, nest no repeat that varies or alternates inside
    another repeat (`(a+)+`, `(a|ab)*`: exponential backtracking), repeat at most
    MAX_REPEAT_COUNT times, and have at most MAX_VARIABLE_REPEATS variable repeats."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"编码规则最长 {MAX_PATTERN_LENGTH} 个字符"
    try:
        re.compile(pattern)
        tree = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        return f"不是有效的正则表达式：{error}"
    counts = {"variable": 0}
    problem = _walk(tree, counts, inside_repeat=False)
    if problem is None and counts["variable"] > MAX_VARIABLE_REPEATS:
        problem = f"编码规则最多含 {MAX_VARIABLE_REPEATS} 个可变次数的重复（*、+、?、{{m,n}}）"
    return problem


def _walk(items: Any, counts: dict[str, int], *, inside_repeat: bool) -> str | None:
    for op, av in items:
        problem: str | None = None
        if op in _PLAIN:
            continue
        if op in _REPEATS:
            low, high, body = av
            bounded = high != _parser.MAXREPEAT
            if low > MAX_REPEAT_COUNT or (bounded and high > MAX_REPEAT_COUNT):
                return f"重复次数不能超过 {MAX_REPEAT_COUNT}（编码最长 64 个字符）"
            if low != high:
                counts["variable"] += 1
                if inside_repeat:
                    return "编码规则不能在重复中嵌套可变次数的重复（如 (a+)+），以免回溯失控"
            problem = _walk(body, counts, inside_repeat=inside_repeat or high > 1)
        elif op == _parser.SUBPATTERN:
            problem = _walk(av[-1], counts, inside_repeat=inside_repeat)
        elif op == getattr(_parser, "ATOMIC_GROUP", None):
            problem = _walk(av, counts, inside_repeat=inside_repeat)
        elif op == _parser.BRANCH:
            if inside_repeat:
                return "编码规则不能在重复中使用多选（如 (a|ab)*），以免回溯失控"
            for branch in av[1]:
                problem = problem or _walk(branch, counts, inside_repeat=False)
        else:
            return "编码规则不能使用反向引用、条件或前后断言"
        if problem:
            return problem
    return None
