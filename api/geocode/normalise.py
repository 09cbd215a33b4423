"""Normalise what a caller wrote into the canonical text the gazetteer is keyed on.

Rules (in order):
1. NFKC (full-width digits, letters and punctuation → ASCII), letters upper-cased, the traditional
   forms of the address words (棟 號 單元 樓 層 區 門 與 東 …) simplified.
2. Spaces and punctuation removed; dashes of every kind (－ — – ~ 之) between digits → "-".
3. Chinese numerals (incl. 十/百 forms) before 号/栋/幢/单元/室/层/楼/弄/座/巷 → Arabic digits; the
   ordinal 第 before a numbered unit dropped (第四栋 → 4幢).
4. 附号: "19号附1号", "19附1号", "19号之一" → "19-1号"; 甲乙丙丁 suffixes: "19号甲", "19甲号" → "19甲号".
5. Building markers 栋/幢/号楼/座/#楼/# → one marker 幢 ("4栋", "4号楼", "A座", "3A#" → "4幢", "A幢", "3A幢").
6. 小区 dropped (“新翠居小区4栋” = “新翠居4幢”); the 花园/家园/公寓 forms of a name are keys of the
   gazetteer (api/geocode/index.py), not removed here.
7. "28号1单元" stays; "28-1" after a compound name is building 28 unit 1 (decided by the parser, which
   knows whether a road precedes it).

Every step keeps a map from each output character to the position in the caller's text it came
from, so the complaint that follows the address is cut from the original wording.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    # 大写 (the forms of cheques and contracts)
    "壹": 1,
    "贰": 2,
    "叁": 3,
    "肆": 4,
    "伍": 5,
    "陆": 6,
    "柒": 7,
    "捌": 8,
    "玖": 9,
}
_TRADITIONAL = str.maketrans(
    "棟號單樓層區門與東西南北側邊對麵附廣場園苑橋灣莊鄰裡",
    "栋号单楼层区门与东西南北侧边对面附广场园苑桥湾庄邻里",
)
_DROP = re.compile(r"[\s,，。.、;；:：()（）\[\]【】{}<>《》\"'“”‘’!！?？·…/\\|_=+*&^%$@`]")
_DASH = re.compile(r"(?<=\d)(?:[－—–~～‐-]|之)(?=\d)")
_NUMERAL = "零〇一二两三四五六七八九十百壹贰叁肆伍陆柒捌玖拾佰"
# 第4栋, 第三单元: the ordinal 第 before a numbered unit is dropped.
_ORDINAL = re.compile(r"第(?=[\d零〇一二两三四五六七八九十百]+(?:号楼|栋|幢|座|单元|层|楼|号|#))")
_NUMERAL_BEFORE_UNIT = re.compile(
    rf"(?<![{_NUMERAL}])([{_NUMERAL}]+)(?=号|栋|幢|单元|室|层|楼|弄|座|巷|#|米)"
)
_ANNEX = re.compile(r"(?<!\d)(\d+)号?(?:附|之)(\d+|[一二三四五六七八九十]+)号?")
_STEM_SUFFIX = re.compile(r"(?<!\d)(\d+)号([甲乙丙丁])(?!\d)")
_XIAOQU = re.compile("小区")
_BUILDING = re.compile(r"((?<!\d)\d+[A-Z]?|(?<![\dA-Z])[A-Z])(?:号楼|栋|幢|座|#楼|#)")


def chinese_number(numeral: str) -> int:
    """一百零三 → 103, 十九 → 19, 二八 → 28 (digit by digit when there is no 十/百)."""
    if numeral.isdigit():
        return int(numeral)
    total, current = 0, 0
    for char in numeral:
        if char in "百佰":
            total += (current or 1) * 100
            current = 0
        elif char in "十拾":
            total += (current or 1) * 10
            current = 0
        else:
            current = current * 10 + DIGITS.get(char, 0)
    return total + current


class Mapped:
    """A string with, for each character, its position in the original text."""

    __slots__ = ("origin", "text")

    def __init__(self, text: str, origin: list[int]) -> None:
        self.text = text
        self.origin = origin

    @classmethod
    def of(cls, original: str) -> Mapped:
        chars: list[str] = []
        origin: list[int] = []
        for position, char in enumerate(original):
            out = char if char.isascii() else unicodedata.normalize("NFKC", char)
            for piece in out.upper().translate(_TRADITIONAL):
                chars.append(piece)
                origin.append(position)
        return cls("".join(chars), origin)

    def sub(self, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> Mapped:
        """Like pattern.sub, keeping the map: new characters map to their match's start."""
        pieces: list[str] = []
        origin: list[int] = []
        last = 0
        for match in pattern.finditer(self.text):
            start, end = match.span()
            pieces.append(self.text[last:start])
            origin.extend(self.origin[last:start])
            new = replace(match)
            pieces.append(new)
            if new == match.group(0):
                origin.extend(self.origin[start:end])
            else:
                here = self.origin[start] if start < len(self.origin) else 0
                origin.extend([here] * len(new))
            last = end
        if last == 0 and not pieces:
            return self
        pieces.append(self.text[last:])
        origin.extend(self.origin[last:])
        return Mapped("".join(pieces), origin)

    def position(self, index: int, original_length: int) -> int:
        """The original position of canonical index `index` (the end when past the last)."""
        if index >= len(self.origin):
            return original_length
        return self.origin[index]


def _annex(match: re.Match[str]) -> str:
    return f"{match.group(1)}-{chinese_number(match.group(2))}号"


def canonical_mapped(text: str) -> Mapped:
    """The canonical text of `text` with its map back to the original positions."""
    mapped = Mapped.of(text)
    mapped = mapped.sub(_DROP, lambda m: "")
    mapped = mapped.sub(_ORDINAL, lambda m: "")
    mapped = mapped.sub(_DASH, lambda m: "-")
    mapped = mapped.sub(_NUMERAL_BEFORE_UNIT, lambda m: str(chinese_number(m.group(1))))
    mapped = mapped.sub(_ANNEX, _annex)
    mapped = mapped.sub(_STEM_SUFFIX, lambda m: f"{m.group(1)}{m.group(2)}号")
    mapped = mapped.sub(_BUILDING, lambda m: f"{m.group(1)}幢")
    return mapped.sub(_XIAOQU, lambda m: "")


def canonical(text: str) -> str:
    """The canonical text (the rules of the module docstring), without the map: the fast path
    for the register's own addresses."""
    text = unicodedata.normalize("NFKC", text or "").upper().translate(_TRADITIONAL)
    text = _DROP.sub("", text)
    text = _ORDINAL.sub("", text)
    text = _DASH.sub("-", text)
    text = _NUMERAL_BEFORE_UNIT.sub(lambda m: str(chinese_number(m.group(1))), text)
    text = _ANNEX.sub(_annex, text)
    text = _STEM_SUFFIX.sub(lambda m: f"{m.group(1)}{m.group(2)}号", text)
    text = _BUILDING.sub(lambda m: f"{m.group(1)}幢", text)
    return text.replace("小区", "")


def normalise_key(text: str) -> str:
    """The key an alias wording is stored and looked up under: its canonical text
    (“景玉府小区九栋” and “景玉府9幢” are one wording)."""
    return canonical(text or "")
