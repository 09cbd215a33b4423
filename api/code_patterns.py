"""Safe code patterns: a level's code rule is a Python regular expression run on every code
an import, a draft edit or the coverage check meets, so it must not backtrack without bound
(ReDoS). Python's `re` has no time limit; the guard is structural, on the parsed pattern.

Backtracking is bounded by the ways a code can be cut between the variable repeats: each one
of range m..n offers n - m + 1 lengths (an unbounded one up to the 64 characters of a code, so
65), and the product of these is capped at MAX_BACKTRACK_FACTOR (one unbounded repeat with a
small optional part; `\\d*\\d*\\d*…`, ~14 ms per 64-character code, is refused, the accepted worst
cases take well under 0.1 ms)."""

from __future__ import annotations

import re
from re import _parser  # type: ignore[attr-defined]
from typing import Any

MAX_PATTERN_LENGTH = 200
# Codes are at most 64 characters (api/codes.CODE_CHARACTERS is checked before the pattern); with
# no nested variable repeat, a match tries at most MAX_BACKTRACK_FACTOR ways to cut a code.
MAX_VARIABLE_REPEATS = 3
MAX_REPEAT_COUNT = 64
UNBOUNDED_CHOICES = 65  # lengths 0..64: codes are at most 64 characters
MAX_BACKTRACK_FACTOR = 4 * UNBOUNDED_CHOICES

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
    MAX_REPEAT_COUNT times, have at most MAX_VARIABLE_REPEATS variable repeats, and the product
    of their ranges (unbounded: UNBOUNDED_CHOICES) at most MAX_BACKTRACK_FACTOR."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"编码规则最长 {MAX_PATTERN_LENGTH} 个字符"
    try:
        re.compile(pattern)
        tree = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        return f"不是有效的正则表达式：{error}"
    counts = {"variable": 0, "factor": 1}
    problem = _walk(tree, counts, inside_repeat=False)
    if problem is None and counts["variable"] > MAX_VARIABLE_REPEATS:
        problem = f"编码规则最多含 {MAX_VARIABLE_REPEATS} 个可变次数的重复（*、+、?、{{m,n}}）"
    if problem is None and counts["factor"] > MAX_BACKTRACK_FACTOR:
        problem = (
            "编码规则最多含一个不限次数的重复（*、+、{m,}），其余可变部分须很短"
            "（如 -? 或 {4,8}），以免回溯失控"
        )
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
                choices = high - low + 1 if bounded else UNBOUNDED_CHOICES
                counts["factor"] *= min(choices, UNBOUNDED_CHOICES)
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
