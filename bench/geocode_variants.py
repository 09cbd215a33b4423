"""How callers write each kind of place (bench/geocode_cases.py): one generator per precision
level, each yielding up to `n` cases drawn with the maker's seeded random stream."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import shapely

from bench.geocode_cases import (
    COMPLAINTS,
    PURE_COMPLAINTS,
    RELATIVE,
    STREET_PREFIXES,
    UNKNOWN_PLACES,
    Case,
    CaseMaker,
    chinese,
    plate_key,
)

MARKERS = (("幢", "marker_zhuang"), ("栋", "marker_dong"), ("号楼", "marker_haolou"),
           ("座", "marker_zuo"), ("#楼", "marker_hash"))  # fmt: skip
SUFFIXES = ("小区", "小区", "花园", "家园")
INTERSECTIONS = (
    "{a}与{b}交叉口", "{a}和{b}交叉路口", "{a}{b}路口", "{b}与{a}交汇处", "{a}/{b}",
    "{a}、{b}十字路口", "{b}跟{a}的路口", "{a}与{b}交界处", "{a}近{b}",
)  # fmt: skip
TRADITIONAL = str.maketrans(
    "锦华湾庄园丰宁兰润枫栋号凤东苏胜环钟阳娄",
    "錦華灣莊園豐寧蘭潤楓棟號鳳東蘇勝環鐘陽婁",
)
OTHER_AREAS = ("昆山市", "苏州市姑苏区", "苏州市吴中区", "上海市浦东新区", "常熟市", "北京市朝阳区")
PLATE = re.compile(r"^(\d+)(?:(?:-|附)(\d+)|([甲乙丙丁]))?$")  # 19, 19-1, 19附1, 19甲
ROAD_TAILS = ("", "上", "沿线", "路边", "人行道上")


def _case(text: str, level: str, code: str | None, variant: str, **extra: object) -> Case:
    return Case("", text, level, code, variant, **extra)  # type: ignore[arg-type]


def buildings(m: CaseMaker, n: int) -> Iterator[Case]:
    rows = m.rows.buildings
    usable = [i for i, p in enumerate(m.parsed) if p]
    for i in m.rng.permutation(usable)[:n]:
        i = int(i)
        p = m.parsed[i] or {}
        street = p.get("street")
        compound, number, building = p["compound"], int(p["number"]), int(p["building"])
        road = p["road"]
        code, accept = rows.codes[i], m.accept_of(i)
        lon, lat = float(rows.lon[i]), float(rows.lat[i])
        kind = m.pick(
            ("full", "full", "compound_building", "compound_building", "road_number_compound",
             "road_building", "unit_dash", "unit_room", "swapped", "spaces", "typo",
             "relative", "missing_building", "number_hao", "ordinal", "traditional")
        )  # fmt: skip
        pre, pre_variant = m.prefix(street)
        marker, marker_variant = m.pick(MARKERS) if m.chance(0.45) else MARKERS[0]
        b_text, b_chinese = m.number_text(building, 0.0 if "#" in marker else 0.15)
        n_text, n_chinese = m.number_text(number, 0.08)
        name = compound + (m.pick(SUFFIXES) if m.chance(0.25) else "")
        relative = None
        level, target = "building", code
        used = {"pre", "marker", "b", "name"}  # what the text is made of, for the tags
        if kind == "full":
            text = f"{pre}{road}{n_text}号{name}{b_text}{marker}"
            used.add("n")
        elif kind == "compound_building":
            text = f"{pre}{name}{b_text}{marker}"
        elif kind == "road_number_compound":
            text = f"{road}{n_text}号{name}{b_text}{marker}"
            used = {"n", "name", "b", "marker"}
        elif kind == "road_building":
            if (road, p["number"], p["building"]) not in m.unique_road_building:
                continue
            text = f"{pre}{road}{n_text}号{b_text}{marker}"
            used = {"pre", "n", "b", "marker"}
        elif kind == "unit_dash":
            text = f"{pre}{name}{building}-{int(m.rng.integers(1, 4))}"
            used = {"pre", "name"}
        elif kind == "unit_room":
            unit, room = int(m.rng.integers(1, 4)), int(m.rng.integers(1, 18)) * 100 + 1
            text = f"{pre}{name}{b_text}{marker}{unit}单元{room}室"
        elif kind == "swapped":
            text = f"{name}{b_text}{marker}{road}{n_text}号"
            used = {"name", "b", "marker", "n"}
        elif kind == "spaces":
            wide = str(building).translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
            text = f"{pre} {road}{number}号 {compound} {wide}{marker}"
            used = {"pre", "marker"}
        elif kind == "typo":
            wrong = m.typo(compound)
            if wrong is None:
                continue
            text = f"{pre}{wrong}{b_text}{marker}"
            used = {"pre", "b", "marker"}
        elif kind == "relative":
            phrase, relative = m.pick(RELATIVE)
            text = f"{pre}{name}{b_text}{marker}{phrase}"
        elif kind == "number_hao":  # "新翠居4号": the building's number without a marker
            text = f"{pre}{name}{b_text}号"
            used = {"pre", "name", "b"}
        elif kind == "ordinal":  # "新翠居第四栋"
            text = f"{pre}{name}第{chinese(building)}{marker if marker in '幢栋座' else '栋'}"
            used = {"pre", "name", "marker"}
        elif kind == "traditional":  # typed in traditional characters: "錦玉苑4棟"
            text = f"{road}{n_text}號{compound}{b_text}{marker}".translate(TRADITIONAL)
            used = {"n", "b", "marker"}
        else:  # missing_building: a number the register lacks → the compound, never a neighbour
            c = int(m.compound_of[i])
            if c < 0:
                continue
            count = len(m.compound_buildings[c])
            text = f"{pre}{name}{count + int(m.rng.integers(3, 30))}{marker}"
            level, target = "compound", m.rows.compounds[c].code
            accept = tuple(a for a in accept if a[0] != "compound")
            used = {"pre", "name", "marker"}
        told = m.name_count[compound] == 1 or ("pre" in used and pre_variant in STREET_PREFIXES)
        told = told or ("n" in used and (road, p["number"], compound) in m.unique_gates)
        if not told and kind != "road_building":  # this name is in several streets
            continue
        tags = [pre_variant] if "pre" in used else []
        tags += [marker_variant] if "marker" in used else []
        chinese_used = ("b" in used and b_chinese) or ("n" in used and n_chinese)
        tags += ["chinese_numeral"] if chinese_used else []
        tags += ["suffix"] if "name" in used and name != compound else []
        text, variant = m.noise(text, f"building/{kind}+" + "+".join(tags), relative=relative)
        yield _case(
            text, level, target, variant, accept=accept, relative=relative, lon=lon, lat=lat
        )


def house_numbers(m: CaseMaker, n: int) -> Iterator[Case]:
    rows = m.rows.house_numbers
    usable = [
        i
        for i, h in enumerate(rows)
        if len(m.numbers[h.road, plate_key(h.number)]) == 1
        or m.numbers_in_street[m.street_of_code(h.code), h.road, plate_key(h.number)] == 1
    ]
    for i in m.rng.permutation(usable)[:n]:
        h = rows[int(i)]
        street = m.street_of_code(h.code)
        # The same road and number in other streets: the text names the street.
        named = len(m.numbers[h.road, plate_key(h.number)]) > 1
        plate = PLATE.match(h.number)
        if plate is None:
            continue
        digits, rest, suffix = plate.group(1), plate.group(2), plate.group(3)
        kind = m.pick(("plain", "plain", "prefix", "chinese", "relative", "no_hao", "missing"))
        level, target, lon, lat = "house_number", h.code, h.lon, h.lat
        roads = [c for c in m.road_codes.get(h.road, []) if m.street_of_code(c) == street]
        accept = tuple(("road", code) for code in roads)
        if h.compound_code:
            accept += (("compound", h.compound_code),)
        if kind == "missing":  # a number no plate carries → the road, never a neighbouring plate
            missing = _missing_number(m, h.road, int(digits))
            if missing is None or len(accept) == 0 or len(m.road_codes[h.road]) != 1:
                continue
            digits, rest, suffix = str(missing), None, None
            level, target, lon, lat = "road", m.road_codes[h.road][0], None, None
            accept = ()
        pre, pre_variant = m.prefix(None) if kind == "prefix" else ("", "no_prefix")
        if named:
            pre, pre_variant = m.prefix(street, named=True)
        number = f"{chinese(int(digits))}" if kind == "chinese" and digits else digits
        if rest:  # 附号: 19-1号 / 19号附1号 / 19号之一
            number_text, shape = m.pick(
                ((f"{number}-{rest}号", "annex_dash"), (f"{number}号附{rest}号", "annex_fu"),
                 (f"{number}号之{chinese(int(rest))}", "annex_zhi"))
            )  # fmt: skip
        elif suffix:
            number_text, shape = m.pick(((f"{number}{suffix}号", "stem"), (f"{number}号{suffix}", "stem_after")))  # fmt: skip
        elif kind == "no_hao":  # "星海路31" (号 left out)
            number_text, shape = number, "number"
        else:
            number_text, shape = f"{number}号", "number"
        relative = None
        text = f"{pre}{h.road}{number_text}"
        if kind == "relative":
            phrase, relative = m.pick(RELATIVE)
            text += phrase
        # No complaint starting with 楼 after a bare number: "19号楼下…" reads as building 19.
        text, variant = m.noise(
            text, f"house_number/{kind}+{shape}+{pre_variant}", relative=relative, avoid="楼"
        )
        yield _case(text, level, target, variant, accept=accept, relative=relative,
                    lon=lon, lat=lat)  # fmt: skip


def _missing_number(m: CaseMaker, road: str, near: int) -> int | None:
    """An odd number close to `near` that no plate on `road` carries."""
    for step in (6, 8, 10, 12, 14):
        for candidate in (near + step, near - step):
            if candidate > 0 and (road, str(candidate)) not in m.numbers:
                return candidate
    return None


def compounds(m: CaseMaker, n: int) -> Iterator[Case]:
    rows = m.rows.compounds
    for i in m.rng.permutation(m.unique_compounds)[:n]:
        c = rows[int(i)]
        members = m.compound_buildings.get(int(i), [])
        street = (m.parsed[members[0]] or {}).get("street") if members else None
        kind = m.pick(("name", "suffix", "alias", "prefix", "road_number", "typo", "relative"))
        pre, pre_variant = m.prefix(street) if kind in ("prefix", "alias") else ("", "no_prefix")
        name = c.name
        relative, level, target, gates = None, "compound", c.code, ()
        if kind == "suffix":
            name += m.pick(SUFFIXES)
        elif kind == "alias":
            if not c.aliases:
                continue
            name = m.pick(c.aliases)
        elif kind == "road_number":
            if not members:
                continue
            p = m.parsed[members[0]] or {}
            if not p:
                continue
            name = f"{p['road']}{p['number']}号{c.name}"
            plates = m.numbers.get((p["road"], plate_key(p["number"])), [])
            own = [m.rows.house_numbers[k] for k in plates]
            own = [h for h in own if h.compound_code == c.code]
            gate = own[0] if len(own) == 1 else None
            if gate is not None:  # its own gate plate is a consistent answer too
                gates = (("house_number", gate.code),)
        elif kind == "typo":
            wrong = m.typo(c.name)
            if wrong is None:
                continue
            name = wrong + ("小区" if m.chance(0.5) else "")
        elif kind == "relative":
            phrase, relative = m.pick(RELATIVE)
            name += phrase
        point = c.geom.representative_point()
        accept = (("community", m.communities[j].code),) if (j := _community(m, point)) >= 0 else ()
        accept += gates
        text, variant = m.noise(f"{pre}{name}", f"compound/{kind}+{pre_variant}", 0.5, relative)
        yield _case(text, level, target, variant, accept=accept, relative=relative,
                    lon=point.x, lat=point.y)  # fmt: skip


def _community(m: CaseMaker, point: shapely.Point) -> int:
    return int(m._containing([a.geom for a in m.communities], np.array([point]))[0])


def intersections(m: CaseMaker, n: int) -> Iterator[Case]:
    found = road_crossings(m)
    pairs = Counter(frozenset(names) for names, _ in found)
    passes = n // max(1, len(found)) + 1  # few crossings: each in several wordings
    for k in np.concatenate([m.rng.permutation(len(found)) for _ in range(passes)])[:n]:
        (a, b), (code, point) = found[int(k)]
        if m.chance(0.5):
            a, b = b, a
        template = m.pick(INTERSECTIONS)
        if pairs[frozenset((a, b))] > 1:  # these two names cross in several streets
            pre, pre_variant = m.prefix(m.street_of_code(code), named=True)
        else:
            pre, pre_variant = m.prefix(None) if m.chance(0.25) else ("", "no_prefix")
        text = pre + template.format(a=a, b=b)
        relative = None
        if m.chance(0.15):
            phrase, relative = m.pick(RELATIVE)
            text += phrase
        shape = INTERSECTIONS.index(template)
        text, variant = m.noise(text, f"intersection/wording{shape}+{pre_variant}", 0.5, relative)
        accept = tuple(("road", r) for r in code.split("+"))
        yield _case(text, "intersection", code, variant, accept=accept, relative=relative,
                    lon=point.x, lat=point.y)  # fmt: skip


def road_crossings(m: CaseMaker) -> list[tuple[tuple[str, str], tuple[str, shapely.Point]]]:
    """Pairs of differently named roads of one street crossing at one place (within 30 m)."""
    roads = list(m.rows.roads)
    if not roads:
        return []
    geoms = np.array([r.geom for r in roads])
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    found = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        a, b = roads[i], roads[j]
        if i >= j or a.name == b.name or m.street_of_code(a.code) != m.street_of_code(b.code):
            continue
        crossing = a.geom.intersection(b.geom)
        points = shapely.get_parts(shapely.extract_unique_points(crossing))
        if len(points) == 0:
            continue
        spread_deg = max(np.ptp(shapely.get_x(points)), np.ptp(shapely.get_y(points)))
        if spread_deg * 111_000 > 30:
            continue
        found.append(((a.name, b.name), (f"{a.code}+{b.code}", shapely.centroid(crossing))))
    return found


def pois(m: CaseMaker, n: int) -> Iterator[Case]:
    rows = m.rows.pois
    counts: dict[str, int] = {}
    for p in rows:
        for name in (p.name, *p.aliases):
            counts[name] = counts.get(name, 0) + 1
    usable = [i for i, p in enumerate(rows) if counts[p.name] == 1]
    for _ in range(max(1, n // max(1, len(usable)) + 1)):
        for i in m.rng.permutation(usable):
            p = rows[int(i)]
            kind = m.pick(("name", "alias", "prefix", "gate", "relative"))
            names = [a for a in p.aliases if counts[a] == 1]
            name = m.pick(names) if kind == "alias" and names else p.name
            pre, pre_variant = m.prefix(None) if kind == "prefix" else ("", "no_prefix")
            relative = None
            text = f"{pre}{name}"
            if kind == "gate":
                text += m.pick(("门口", "大门口", "正门", "东门"))
            elif kind == "relative":
                phrase, relative = m.pick(RELATIVE)
                text += phrase
            text, variant = m.noise(text, f"poi/{kind}+{pre_variant}", 0.5, relative)
            yield _case(text, "poi", p.code, variant, relative=relative, lon=p.lon, lat=p.lat)


def roads(m: CaseMaker, n: int) -> Iterator[Case]:
    usable = [r for r in m.rows.roads if len(m.road_codes[r.name]) == 1 or m.street_of_code(r.code)]
    for _ in range(max(1, n // max(1, len(usable)) + 1)):
        for k in m.rng.permutation(len(usable)):
            r = usable[int(k)]
            names = (r.name, *r.aliases)
            name = m.pick(names) if m.chance(0.3) else r.name
            if len(m.road_codes[r.name]) > 1:  # the same name in several streets
                pre, pre_variant = m.prefix(m.street_of_code(r.code), named=True)
            else:
                pre, pre_variant = m.prefix(None) if m.chance(0.3) else ("", "no_prefix")
            tail = m.pick(ROAD_TAILS)
            text = f"{pre}{name}{tail}" + m.pick(
                COMPLAINTS
            )  # a road alone is rarely the whole text
            point = r.geom.interpolate(0.5, normalized=True)
            variant = f"road/{'alias' if name != r.name else 'name'}+{pre_variant}+complaint"
            yield _case(text, "road", r.code, variant, lon=point.x, lat=point.y)


def communities(m: CaseMaker, n: int) -> Iterator[Case]:
    usable = m.communities
    for _ in range(max(1, n // max(1, len(usable)) + 1)):
        for k in m.rng.permutation(len(usable)):
            a = usable[int(k)]
            street = m.street_of_community.get(a.code)
            if m.community_count[a.name] > 1:  # the same name in several streets
                pre, pre_variant = m.prefix(street, named=True)
            else:
                pre, pre_variant = m.prefix(street) if m.chance(0.4) else ("", "no_prefix")
            name = a.name if m.chance(0.8) else a.name + "居委会附近"
            text, variant = m.noise(f"{pre}{name}", f"community/{pre_variant}", 0.7)
            point = a.geom.representative_point()
            yield _case(text, "community", a.code, variant, lon=point.x, lat=point.y)


def nothing(m: CaseMaker, n: int) -> Iterator[Case]:
    fixed = ["", "   ", "有" * 5000, "园区新翠居" * 120]
    for text in fixed:
        yield _case(text, "none", None, "none/edge")
    unknown = [u for u in UNKNOWN_PLACES if not any(name in u for name in m.names)]
    for _ in range(n):
        kind = m.pick(("complaint", "complaint", "unknown", "mixed", "other_area"))
        if kind == "unknown" and not unknown:
            continue
        if kind == "other_area":  # a place of ours, in another city or district: not ours
            p = m.parsed[int(m.rng.integers(len(m.parsed)))]
            if not p:
                continue
            text = (
                m.pick(OTHER_AREAS) + f"{p['road']}{p['number']}号{p['compound']}{p['building']}幢"
            )
        elif kind == "complaint":
            text = m.pick(PURE_COMPLAINTS) + (m.pick(COMPLAINTS) if m.chance(0.5) else "")
        elif kind == "unknown":
            text = m.pick(unknown) + m.pick(COMPLAINTS)
        else:
            text = f"Room {int(m.rng.integers(1, 999))} " + m.pick(COMPLAINTS)
        yield _case(text, "none", None, f"none/{kind}")


GENERATORS: dict[str, Callable[[CaseMaker, int], Iterator[Case]]] = {
    "building": buildings,
    "house_number": house_numbers,
    "compound": compounds,
    "intersection": intersections,
    "poi": pois,
    "road": roads,
    "community": communities,
    "none": nothing,
}
