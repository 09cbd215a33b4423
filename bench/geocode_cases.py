"""The geocoding evaluation set (issue 17 §4): several thousand address texts with known answers,
generated from a gazetteer (`GazetteerRows`) the way hotline callers write them.

Each case names the place it means (precision level + code) or "none" (nothing placeable), the
variant that produced it, and the coarser places that are still consistent with it (the compound,
house number, road and community of a building: an honest coarser answer is not a wrong one).
Variants: full and short administrative prefixes, the 园区 prefix, 小区 suffix, Chinese numerals,
栋/号楼/座/#楼, "28-1" (building-unit), road + number + building without the compound, house
number alone, intersections in several wordings, POIs by alias, road stretches, communities; and
noise: dropped parts, swapped order, one-character near-homophone typos, complaint text appended,
a caller's preamble, relative phrases (东侧, 对面, 附近 50 米). A fixed seed; every text found in
the matcher's development cases (tests/geocode_dev_cases.py) is left out.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from api.geocode.rows import GazetteerRows

SEED = 17
DEV_CASES = Path(__file__).resolve().parent.parent / "tests" / "geocode_dev_cases.py"
# Cases per precision level in the full set (fewer where the gazetteer has fewer places).
QUOTAS = {
    "building": 2400,
    "house_number": 700,
    "compound": 1000,
    "intersection": 400,
    "poi": 400,
    "road": 300,
    "community": 250,
    "none": 250,
}
ID_PREFIX = {"building": "bu", "house_number": "hn", "compound": "cp", "intersection": "in",
             "poi": "po", "road": "rd", "community": "cm", "none": "no"}  # fmt: skip
_ADDRESS = re.compile(
    r"^(?P<province>.+?省)?(?P<city>.+?市)?(?P<district>.+?区)?(?P<street>.+?(?:街道|镇))?"
    r"(?P<road>.+?(?:大道|路|街|巷))(?P<number>\d+)号(?P<compound>.+?)(?P<building>\d+)幢$"
)
# Near-homophones (same or close pinyin) of the characters demo compound names are made of.
HOMOPHONES = {
    "翠": "萃粹", "锦": "金景", "华": "花化", "金": "锦今", "玉": "钰御", "湖": "胡虎",
    "星": "兴新", "月": "悦越", "桂": "贵", "兰": "蓝澜", "枫": "丰峰", "荷": "和禾",
    "新": "欣心", "嘉": "佳家", "瑞": "睿锐", "和": "禾合", "馨": "欣鑫", "雅": "亚娅",
    "景": "京境", "泰": "太", "康": "慷", "宁": "凝柠", "丰": "峰枫", "盛": "胜圣",
    "怡": "宜益", "润": "闰", "庭": "亭廷", "苑": "院源", "园": "源圆", "湾": "弯",
    "城": "成程", "庄": "妆", "岸": "安", "府": "富福", "居": "局聚",
}  # fmt: skip
COMPLAINTS = (
    "楼下垃圾堆放", "门口有人占道经营", "东侧绿化带被踩坏", "有人乱停车堵住消防通道",
    "下水道堵塞污水外溢", "井盖缺失", "夜间施工噪音扰民", "楼道堆放杂物", "路面破损有坑",
    "路灯不亮", "有流浪狗", "垃圾桶满溢无人清运", "共享单车乱停放", "小广告乱贴", "树木倒伏",
    "积水严重", "有人私搭乱建", "油烟扰民", "电动车楼道充电", "违规晾晒",
)  # fmt: skip
PREAMBLES = ("市民来电反映：", "您好，", "来电人称", "市民反映")
RELATIVE = (  # phrase, direction
    ("东侧", "east"), ("西侧", "west"), ("南侧", "south"), ("北侧", "north"),
    ("对面", "opposite"), ("附近", "near"), ("旁边", "near"), ("东侧50米", "east"),
    ("附近100米", "near"), ("北面200米", "north"),
)  # fmt: skip
NUMERALS = "零一二三四五六七八九"
STREET_PREFIXES = {"full_prefix", "street_prefix", "street_short_prefix"}  # they name the street
PURE_COMPLAINTS = (
    "有人乱扔垃圾", "噪音扰民请处理", "这里路灯坏了", "我要投诉", "请尽快派人处理", "不知道具体在哪",
    "hello", "Building 4 please help", "１２３４５", "？？？", "小区里有人遛狗不拴绳",
    "马路上有个坑", "这边有人打架",
)  # fmt: skip
UNKNOWN_PLACES = (
    "幸福里5幢",
    "人民路88号",
    "解放大道与中山路交叉口",
    "紫荆花园12栋",
    "光明小学门口",
)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    level: str  # the precision the text allows: building … community, or "none"
    code: str | None  # the place's code (intersection: "<road>+<road>", either order)
    variant: str  # e.g. "building/short_prefix+complaint"
    accept: tuple[tuple[str, str], ...] = ()  # coarser (level, code) consistent with the truth
    relative: str | None = None  # the relative direction the text carries
    lon: float | None = None  # the true place's point
    lat: float | None = None


def dev_texts(path: Path = DEV_CASES) -> set[str]:
    """Every string in the matcher's development cases (any nesting), as written and squeezed."""
    if not path.exists():
        return set()
    spec = importlib.util.spec_from_file_location("geocode_dev_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
            found.add(squeeze(value))
        elif isinstance(value, dict):
            for item in value.items():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            walk(vars(value))

    for name, value in vars(module).items():
        if not name.startswith("_") and not callable(value):
            walk(value)
    return found


def plate_key(number: str) -> str:
    """A plate's number as one key: 19附1 and 19-1 are the same plate."""
    return number.replace("附", "-")


def squeeze(text: str) -> str:
    """NFKC without spaces: the same text as far as exclusion is concerned."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def chinese(number: int) -> str:
    """4 → 四, 12 → 十二, 23 → 二十三, 103 → 一百零三, 115 → 一百一十五."""
    if number < 10:
        return NUMERALS[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return ("" if tens == 1 else NUMERALS[tens]) + "十" + (NUMERALS[ones] if ones else "")
    hundreds, rest = divmod(number, 100)
    head = chinese(hundreds) + "百"
    if rest == 0:
        return head
    if rest < 10:
        return head + "零" + NUMERALS[rest]
    return head + ("一" if rest < 20 else "") + chinese(rest)


class CaseMaker:
    """Everything the cases need, indexed once from the rows."""

    def __init__(self, rows: GazetteerRows, seed: int = SEED) -> None:
        self.rows = rows
        self.rng = np.random.default_rng(seed)
        b = rows.buildings
        self.points = shapely.points(b.lon, b.lat)
        communities = [a for a in rows.areas if a.level == "community"]
        self.communities = communities
        self.street_names = sorted({a.name for a in rows.areas if a.level == "street"})
        self.community_of = self._containing([a.geom for a in communities], self.points)
        compounds = rows.compounds
        self.compound_of = self._containing([c.geom for c in compounds], self.points)
        self.road_codes: dict[str, list[str]] = defaultdict(list)
        for road in rows.roads:
            self.road_codes[road.name].append(road.code)
        self.numbers: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, h in enumerate(rows.house_numbers):
            self.numbers[h.road, plate_key(h.number)].append(i)
        self.names = {c.name for c in compounds} | {a for c in compounds for a in c.aliases}
        self.names |= {p.name for p in rows.pois} | {a for p in rows.pois for a in p.aliases}
        self.parsed: list[dict[str, str] | None] = []
        by_road_building: Counter[tuple[str, str, str]] = Counter()
        for address in b.addresses:
            found = _ADDRESS.match(address)
            parts = {k: v for k, v in found.groupdict().items() if v} if found else None
            self.parsed.append(parts)
            if parts:
                by_road_building[parts["road"], parts["number"], parts["building"]] += 1
        self.unique_road_building = {k for k, n in by_road_building.items() if n == 1}
        self.compound_buildings: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(self.compound_of):
            if c >= 0:
                self.compound_buildings[int(c)].append(i)
        # At district scale names repeat from street to street: a text names one place only
        # with a unique name, its street, or its road and number (bench/geocode_variants.py).
        self.name_count = Counter(c.name for c in compounds)
        self.unique_compounds = [i for i, c in enumerate(compounds) if self.name_count[c.name] == 1]
        gate_compounds: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        for i, c in enumerate(self.compound_of):
            if c >= 0 and (parts := self.parsed[i]):
                gate_compounds[parts["road"], parts["number"], parts["compound"]].add(int(c))
        self.unique_gates = {k for k, v in gate_compounds.items() if len(v) == 1}
        streets = {a.code: a.name for a in rows.areas if a.level == "street"}
        self.streets = streets
        self.numbers_in_street: Counter[tuple[str | None, str, str]] = Counter(
            (self.street_of_code(h.code), h.road, plate_key(h.number)) for h in rows.house_numbers
        )
        self.street_of_community = {
            a.code: next((n for code, n in streets.items() if a.code.startswith(code)), None)
            for a in communities
        }
        self.community_count = Counter(a.name for a in communities)

    def street_of_code(self, code: str) -> str | None:
        """The street (name) whose code starts a place's code (320571005-R14 → 湖东示范街道)."""
        return next((n for c, n in self.streets.items() if code.startswith(c)), None)

    @staticmethod
    def _containing(geoms: list[Any], points: np.ndarray) -> np.ndarray:
        """For each point the index of the first geometry containing it, or −1."""
        found = np.full(len(points), -1, dtype=np.int64)
        if not geoms:
            return found
        tree = shapely.STRtree(geoms)
        point_index, geom_index = tree.query(points, predicate="within")
        order = np.lexsort((geom_index, point_index))[::-1]
        found[point_index[order]] = geom_index[order]
        return found

    # --- pieces of text ------------------------------------------------------------------------

    def pick(self, options: tuple[Any, ...] | list[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def prefix(self, street: str | None, named: bool = False) -> tuple[str, str]:
        """(text, variant) of an administrative prefix of some length (`named`: one that names
        the street)."""
        if street is None and len(self.street_names) != 1:
            return self.pick((("", "no_prefix"), ("苏州工业园区", "district_prefix"), ("园区", "yuanqu_prefix")))  # fmt: skip
        street = street or self.street_names[0]
        short = street.removesuffix("街道").removesuffix("示范")  # 湖东示范街道 → 湖东
        options = (
            ("", "no_prefix"),
            ("", "no_prefix"),
            (f"江苏省苏州市苏州工业园区{street}", "full_prefix"),
            ("苏州市工业园区", "city_prefix"),
            ("苏州工业园区", "district_prefix"),
            ("园区", "yuanqu_prefix"),
            ("工业园区", "yuanqu_prefix"),
            (f"园区{street}", "street_prefix"),
            (f"{short}", "street_short_prefix"),
            (f"苏州{street}", "street_prefix"),
        )
        return self.pick([o for o in options if o[1] in STREET_PREFIXES] if named else options)

    def number_text(self, number: int, p_chinese: float = 0.15) -> tuple[str, bool]:
        return (chinese(number), True) if self.chance(p_chinese) else (str(number), False)

    def noise(
        self,
        text: str,
        variant: str,
        p_complaint: float = 0.4,
        relative: str | None = None,
        avoid: str = "",
    ) -> tuple[str, str]:
        """A complaint appended (none that starts with a direction after a relative phrase) and
        now and then a caller's preamble."""
        if self.chance(p_complaint):
            complaints = [
                c
                for c in COMPLAINTS
                if not (avoid and c.startswith(avoid))
                and (relative is None or not c.startswith("东侧"))
            ]
            text, variant = text + self.pick(complaints), variant + "+complaint"
        if self.chance(0.08):
            text, variant = self.pick(PREAMBLES) + text, variant + "+preamble"
        return text, variant

    def typo(self, name: str) -> str | None:
        """One character of `name` swapped for a near-homophone, not another place's name."""
        spots = [i for i, ch in enumerate(name) if ch in HOMOPHONES]
        if not spots:
            return None
        i = int(self.pick(spots))
        wrong = name[:i] + self.pick(HOMOPHONES[name[i]]) + name[i + 1 :]
        return None if wrong in self.names else wrong

    def accept_of(self, building: int) -> tuple[tuple[str, str], ...]:
        """The coarser places a building lies in: compound, its gate numbers, road, community."""
        accept: list[tuple[str, str]] = []
        c = int(self.compound_of[building])
        parts = self.parsed[building] or {}
        if c >= 0:
            accept.append(("compound", self.rows.compounds[c].code))
        for h in self.numbers.get((parts.get("road", ""), parts.get("number", "")), []):
            accept.append(("house_number", self.rows.house_numbers[h].code))
        for code in self.road_codes.get(parts.get("road", ""), []):
            accept.append(("road", code))
        m = int(self.community_of[building])
        if m >= 0:
            accept.append(("community", self.communities[m].code))
        return tuple(accept)


def make_cases(
    rows: GazetteerRows,
    *,
    seed: int = SEED,
    scale: float = 1.0,
    exclude: set[str] | None = None,
) -> list[Case]:
    """The evaluation set: QUOTAS × scale cases (fewer where places run out), dev texts left out."""
    from bench.geocode_variants import GENERATORS

    maker = CaseMaker(rows, seed)
    exclude = dev_texts() if exclude is None else exclude
    cases: list[Case] = []
    seen: set[str] = set()
    for level, quota in QUOTAS.items():
        wanted = max(1, round(quota * scale))
        made = 0
        for case in GENERATORS[level](maker, wanted * 3):
            if made >= wanted:
                break
            key = squeeze(case.text)
            if case.text in exclude or key in exclude or key in seen:
                continue
            seen.add(key)
            cases.append(Case(f"{ID_PREFIX[level]}{made:05d}", *_fields(case)))
            made += 1
    return cases


def _fields(case: Case) -> tuple[Any, ...]:
    return (
        case.text,
        case.level,
        case.code,
        case.variant,
        case.accept,
        case.relative,
        case.lon,
        case.lat,
    )
