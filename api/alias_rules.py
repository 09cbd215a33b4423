"""What a dispatcher may teach the matcher (api/address_corrections.py): checks of a wording
against its own words and against the register, before it is saved as an address alias.

- A wording with no place words of its own — only building, unit or room numbers, a direction
  or a gate ("4栋", "3单元", "东门", "A座", "楼下"), or only a street or community name — is
  refused (422 `wording_too_vague`): after saving, every ticket that says it would go to one
  place.
- A wording the matcher already places confidently (≥ the service's threshold) on ANOTHER place
  is refused (409 `official_name`, naming that place) when it is that place's own words (its
  name, alias or address: no complaint, relative phrase or building/number the place is coarser
  than left over) or when that place is at least as precise as the target ("新翠居4栋" is building 新翠居4幢, never 5幢; "淞江路" is the road). On the target itself
  it is no lesson at all: answered as "already matches", nothing saved.
An alias already stored under the wording is left to the alias table's own rule (the same place
again: no change; another: 409 `alias_taken`), so this module is asked only about new wordings.
"""

from __future__ import annotations

import re
from typing import Any

from api.errors import Conflict, InvalidInput
from api.geocode.places import PRECISIONS

# Characters that name no place by themselves (in a normalised key: 栋 is 幢, numerals digits).
_NO_PLACE = re.compile(
    r"[0-9A-Za-z#\-幢栋号楼座单元室层户弄附之甲乙丙丁第期区零〇一二三四五六七八九十百两"
    r"东南西北侧边旁门口对面近前后左右上下里内外头处米]"
)
_ADMIN_ONLY = {"street", "community", "building", "unit", "room", "floor"}
RANK = {precision: rank for rank, precision in enumerate(PRECISIONS)}  # 0: the finest
LABELS = {
    "building": "楼栋",
    "house_number": "门牌",
    "compound": "小区",
    "intersection": "路口",
    "poi": "地标",
    "road": "道路",
    "community": "社区",
}


def too_vague(wording: str, key: str, where: str) -> None:
    """422 when the normalised wording holds nothing but numbers, units and directions."""
    if _NO_PLACE.sub("", key):
        return
    raise InvalidInput(
        f"「{wording}」只有楼栋、单元、门牌号或方位，没有地名：保存后凡是这样说的工单都会"
        "匹配到同一个地点。请写上小区、道路或地标的名称（如 新翠居4栋）",
        code="wording_too_vague",
        where=where,
    )


def _finer_said(parsed: set[str], match: Any) -> bool:
    """The wording names a building or a house number that the match is coarser than (the
    register lacks it: "纠错苑4栋" answered by the compound), so it is more than its words."""
    if "building" in parsed and match.precision != "building":
        return True
    return "number" in parsed and match.precision not in ("building", "house_number")


def _same(match: Any, kind: str, code: str) -> bool:
    if match.kind != kind:
        return False
    if kind == "intersection":
        return sorted(match.code.split("+")) == sorted(code.split("+"))
    return bool(match.code == code)


def against_register(
    gazetteer: Any, wording: str, kind: str, code: str, threshold: float, where: str
) -> Any | None:
    """The match (a PlaceMatch) when the matcher already places `wording` confidently on the
    target itself (nothing to save); None when the wording may be taught; otherwise refused."""
    result = gazetteer.geocode(wording, limit=1)
    top = result.candidates[0] if result.candidates else None
    parsed = set(result.parsed)
    if (
        parsed & {"street", "community"}
        and parsed <= _ADMIN_ONLY
        and (top is None or top.precision == "community")
    ):
        raise InvalidInput(
            f"「{wording}」只有街道或社区名称（及楼栋号），范围太大，不能指向一个地点；"
            "请写上小区、道路或地标的名称",
            code="wording_too_vague",
            where=where,
        )
    if top is None or top.confidence < threshold:
        return None
    if _same(top, kind, code):
        return top
    own_words = not result.complaint and result.relative is None and not _finer_said(parsed, top)
    if not own_words and RANK.get(top.precision, len(RANK)) > RANK.get(kind, len(RANK)):
        return None  # more than a place's own words, and a coarser place: a lesson
    label = LABELS.get(top.precision, top.kind)
    via = "（按已有地址别名）" if top.via_alias else ""
    if own_words:
        why = f"就是{label}「{top.name}」的名称、别名或地址{via}"
    else:
        why = f"已能匹配到{label}「{top.name}」{via}，它不比所选地点粗"
    raise Conflict(
        f"说法「{wording}」{why}（把握 {top.confidence:.2f}）：保存后会把这种说法改指别处。"
        "请换一个更具体的说法，或核对所选地点",
        code="official_name",
        where=where,
        details=[
            {
                "place": {
                    "kind": top.kind,
                    "code": top.code,
                    "name": top.name,
                    "precision": top.precision,
                    "confidence": top.confidence,
                    "via_alias": top.via_alias,
                }
            }
        ],
    )
