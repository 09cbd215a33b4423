"""CQL2 filters (OGC API Features Part 3) → a WHERE fragment with bound values.

CQL2 text is parsed by pygeofilter; CQL2 JSON is read here (pygeofilter's JSON reader follows an
older draft: it swaps BBOX axes and wants BETWEEN's bounds in a list), into the same pygeofilter
AST. The translator below accepts only what the declared conformance classes promise: AND/OR/NOT,
comparisons, LIKE, BETWEEN, IN, IS NULL, CASEI, property–property comparisons, and every S_*
spatial function on the geometry. Property names are checked against the collection's queryables
and mapped to constant SQL; every literal is a bound parameter; types are checked before the
database sees them (a mismatch is a 400, not a database error).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import shapely
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_text import parse as parse_text

from api.errors import InvalidInput
from api.ogc.collections import GEOMETRY_COLUMN, Collection, columns
from api.ogc.crs import OgcCrs, within_zone
from spatial.crs import transform

MAX_FILTER_CHARS = 8_000
WHERE = "query.filter"
GEOMETRY = "geometry"  # the queryable name of each collection's geometry

_COMPARISONS = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}
_SPATIAL = {
    ast.GeometryIntersects: "ST_Intersects",
    ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains",
    ast.GeometryWithin: "ST_Within",
    ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryOverlaps: "ST_Overlaps",
    ast.GeometryEquals: "ST_Equals",
}
_JSON_COMPARISONS = {
    "=": ast.Equal,
    "<>": ast.NotEqual,
    "<": ast.LessThan,
    "<=": ast.LessEqual,
    ">": ast.GreaterThan,
    ">=": ast.GreaterEqual,
}
_JSON_SPATIAL = {f"s_{cls.op.value.lower()}": cls for cls in _SPATIAL}
_NUMERIC = ("integer", "number")


def invalid(message: str, code: str = "invalid_filter") -> InvalidInput:
    return InvalidInput(message, code=code, where=WHERE)


# --- CQL2 JSON → pygeofilter AST -------------------------------------------------------------


def _json_node(node: Any) -> Any:
    if isinstance(node, bool | int | float | str) or node is None:
        return node
    if isinstance(node, list):
        return [_json_node(item) for item in node]
    if not isinstance(node, dict):
        raise invalid("CQL2 JSON 中有无法识别的值")
    if "property" in node:
        return ast.Attribute(str(node["property"]))
    if "bbox" in node:
        box = node["bbox"]
        if not isinstance(box, list) or len(box) not in (4, 6):
            raise invalid("bbox 须为 4 个或 6 个数")
        half = len(box) // 2
        return values.Envelope(box[0], box[half], box[1], box[half + 1])
    if "timestamp" in node or "date" in node:
        return _instant(str(node.get("timestamp") or node.get("date")))
    if ("type" in node and "coordinates" in node) or node.get("type") == "GeometryCollection":
        return values.Geometry(node)
    if "op" in node:
        return _json_op(str(node["op"]).lower(), node.get("args", []))
    raise invalid("CQL2 JSON 中有无法识别的对象")


def _json_op(op: str, raw_args: Any) -> Any:
    if not isinstance(raw_args, list):
        raise invalid(f"运算 {op} 的 args 须为数组")
    args = [_json_node(a) for a in raw_args]
    if op in ("and", "or") and len(args) >= 2:
        joined = args[0]
        for arg in args[1:]:
            joined = ast.And(joined, arg) if op == "and" else ast.Or(joined, arg)
        return joined
    if op == "not" and len(args) == 1:
        return ast.Not(args[0])
    if op in _JSON_COMPARISONS and len(args) == 2:
        return _JSON_COMPARISONS[op](args[0], args[1])
    if op == "like" and len(args) == 2:
        return ast.Like(args[0], args[1], False, "%", "_", "\\", False)
    if op == "between" and len(args) == 3:
        return ast.Between(args[0], args[1], args[2], False)
    if op == "in" and len(args) == 2 and isinstance(args[1], list):
        return ast.In(args[0], args[1], False)
    if op == "isnull" and len(args) == 1:
        return ast.IsNull(args[0], False)
    if op == "casei" and len(args) == 1:
        return ast.Function("lower", args)
    if op in _JSON_SPATIAL and len(args) == 2:
        return _JSON_SPATIAL[op](args[0], args[1])
    raise invalid(f"不支持的 CQL2 运算或参数个数不对：{op[:40]}", "unsupported_filter")


def parse(filter_text: str, lang: str | None) -> Any:
    """The filter as a pygeofilter AST (400 if it does not parse)."""
    if len(filter_text) > MAX_FILTER_CHARS:
        raise invalid(f"过滤条件过长（上限 {MAX_FILTER_CHARS} 个字符）")
    chosen = (lang or "cql2-text").lower()
    if chosen == "cql-text":  # GDAL (3.12 too) still sends the draft's name for CQL2 text
        chosen = "cql2-text"
    try:
        if chosen == "cql2-json":
            document = json.loads(filter_text)
            return True if document is True else _json_node(document)
        if chosen == "cql2-text":
            return parse_text(filter_text)
    except InvalidInput:
        raise
    except RecursionError:
        raise invalid("过滤条件嵌套过深") from None
    except Exception as error:  # lark, json and pygeofilter raise many kinds for bad text
        raise invalid(f"无法解析过滤条件（{chosen}）：{type(error).__name__}") from None
    raise InvalidInput(
        "filter-lang 只能是 cql2-text 或 cql2-json",
        code="invalid_filter_lang",
        where="query.filter-lang",
    )


# --- AST → SQL ------------------------------------------------------------------------------


def _instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"无法识别的时间：{value[:40]}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Translator:
    """Turns one filter into SQL over one collection; values go to `params` as :f0, :f1…"""

    def __init__(self, collection: Collection, filter_crs: OgcCrs, prefix: str = "f") -> None:
        self.collection = collection
        self.columns = columns(collection)
        self.filter_crs = filter_crs
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        if isinstance(value, str) and "\x00" in value:  # PostgreSQL text cannot hold U+0000
            raise invalid("过滤条件不能包含 NUL 字符（U+0000）", "nul_character")
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def condition(self, node: Any) -> str:
        if node is True or (isinstance(node, ast.Include) and not node.not_):
            return "true"
        if isinstance(node, ast.Include):
            return "false"
        if isinstance(node, ast.And | ast.Or):
            word = "AND" if isinstance(node, ast.And) else "OR"
            return f"({self.condition(node.lhs)} {word} {self.condition(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.condition(node.sub_node)})"
        if type(node) in _COMPARISONS:
            return self._comparison(node)
        if isinstance(node, ast.Like):
            return self._like(node)
        if isinstance(node, ast.Between):
            kind, column = self.scalar(node.lhs)
            if kind not in (*_NUMERIC, "date-time"):
                raise invalid("BETWEEN 只能用于数值或时间属性", "type_mismatch")
            low, high = self.literal(node.low, kind), self.literal(node.high, kind)
            negation = "NOT " if node.not_ else ""
            return f"({column} {negation}BETWEEN {low} AND {high})"
        if isinstance(node, ast.In):
            kind, column = self.scalar(node.lhs)
            if not node.sub_nodes:
                raise invalid("IN 列表不能为空")
            items = ", ".join(self.literal(item, kind) for item in node.sub_nodes)
            return f"({column} {'NOT ' if node.not_ else ''}IN ({items}))"
        if isinstance(node, ast.IsNull):
            if isinstance(node.lhs, ast.Attribute) and node.lhs.name == GEOMETRY:
                column = GEOMETRY_COLUMN
            else:
                column = self.scalar(node.lhs)[1]
            return f"({column} IS {'NOT ' if node.not_ else ''}NULL)"
        if type(node) in _SPATIAL:
            function = _SPATIAL[type(node)]
            return f"{function}({self.geometry(node.lhs)}, {self.geometry(node.rhs)})"
        raise invalid(f"不支持的过滤运算：{type(node).__name__}", "unsupported_filter")

    def attribute(self, name: str) -> tuple[str, str]:
        found = self.collection.property_named(name)
        if found is None:
            raise invalid(
                f"集合 {self.collection.id} 没有可查询属性 {name[:60]}（见 queryables）",
                "unknown_property",
            )
        return found.type, self.columns[name]

    def scalar(self, node: Any) -> tuple[str, str]:
        """(type, SQL) of a property or CASEI(property)."""
        if isinstance(node, ast.Attribute):
            return self.attribute(node.name)
        if isinstance(node, ast.Function) and node.name == "lower" and len(node.arguments) == 1:
            kind, column = self.scalar(node.arguments[0])
            if kind != "string":
                raise invalid("CASEI 只能用于文本属性", "type_mismatch")
            return kind, f"lower({column})"
        raise invalid("比较的左侧须为属性", "unsupported_filter")

    def literal(self, value: Any, kind: str) -> str:
        """A bound literal of the property's type (400 on a mismatch)."""
        if isinstance(value, ast.Function) and value.name == "lower" and len(value.arguments) == 1:
            if kind != "string" or not isinstance(value.arguments[0], str):
                raise invalid("CASEI 只能用于文本", "type_mismatch")
            return f"lower({self.bind(value.arguments[0])})"
        if kind == "string" and isinstance(value, str):
            return self.bind(value)
        if kind in _NUMERIC and isinstance(value, int | float) and not isinstance(value, bool):
            return self.bind(value)  # 2.5 against an integer compares as numeric
        if kind == "date-time":
            if isinstance(value, datetime):
                stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
                try:
                    utc = stamp.astimezone(UTC)
                except OverflowError:  # 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
                    raise invalid(
                        "时间超出可表示的范围（公元 1–9999 年）", "type_mismatch"
                    ) from None
                return f"CAST({self.bind(utc)} AS timestamptz)"
            if isinstance(value, date):
                return f"CAST({self.bind(value)} AS date)"
            if isinstance(value, str):
                return f"CAST({self.bind(_instant(value))} AS timestamptz)"
        raise invalid(f"值 {str(value)[:40]} 与属性类型 {kind} 不符", "type_mismatch")

    def _comparison(self, node: Any) -> str:
        operator = _COMPARISONS[type(node)]
        lhs, rhs = node.lhs, node.rhs
        if not _is_property(lhs) and _is_property(rhs):
            lhs, rhs = rhs, lhs
            operator = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(operator, operator)
        kind, column = self.scalar(lhs)
        if _is_property(rhs):
            other_kind, other = self.scalar(rhs)
            if (kind in _NUMERIC) != (other_kind in _NUMERIC) or (
                kind not in _NUMERIC and kind != other_kind
            ):
                raise invalid("比较的两个属性类型不同", "type_mismatch")
            return f"({column} {operator} {other})"
        return f"({column} {operator} {self.literal(rhs, kind)})"

    def _like(self, node: ast.Like) -> str:
        kind, column = self.scalar(node.lhs)
        if kind != "string":
            raise invalid("LIKE 只能用于文本属性", "type_mismatch")
        pattern = node.pattern
        function = isinstance(pattern, ast.Function) and pattern.arguments
        text = pattern.arguments[0] if function else pattern
        if isinstance(text, str) and (len(text) - len(text.rstrip("\\"))) % 2:
            raise invalid("LIKE 模式不能以转义符 \\ 结尾", "invalid_filter")
        if isinstance(pattern, ast.Function) or not isinstance(pattern, str):
            pattern_sql = self.literal(pattern, "string")
        else:
            pattern_sql = self.bind(pattern)
        operator = "ILIKE" if node.nocase else "LIKE"
        # CQL2's LIKE uses % and _ with backslash escapes: PostgreSQL's own convention.
        return f"({column} {'NOT ' if node.not_ else ''}{operator} {pattern_sql})"

    def geometry(self, node: Any) -> str:
        """SQL of a spatial argument: the collection's geometry or a literal in EPSG:4326."""
        if isinstance(node, ast.Attribute):
            if node.name != GEOMETRY:
                raise invalid(f"空间运算只能用于 geometry 属性，而不是 {node.name[:60]}")
            return GEOMETRY_COLUMN
        if isinstance(node, ast.Function) and node.name.lower() == "bbox":
            numbers = node.arguments
            if len(numbers) not in (4, 6):
                raise invalid("BBOX 须为 4 个或 6 个数")
            half = len(numbers) // 2
            node = values.Envelope(numbers[0], numbers[half], numbers[1], numbers[half + 1])
        if isinstance(node, values.Envelope | values.Geometry):
            return self._literal_geometry(node)
        raise invalid("空间运算的参数须为 geometry 属性或几何字面量")

    def _literal_geometry(self, node: values.Envelope | values.Geometry) -> str:
        try:
            if isinstance(node, values.Envelope):
                if not all(
                    isinstance(v, int | float) for v in (node.x1, node.x2, node.y1, node.y2)
                ):
                    raise ValueError("bbox")
                if node.x1 > node.x2 or node.y1 > node.y2:
                    raise invalid("BBOX 的最小值须不大于最大值")
            geometry = shapely.from_geojson(json.dumps(node.geometry))
        except InvalidInput:
            raise
        except Exception:
            raise invalid("无法读取过滤条件中的几何") from None
        # PostGIS refuses (or fails on) what GEOS calls invalid: say so here, as a 400.
        if geometry.is_empty or not shapely.is_valid(geometry):
            reason = shapely.is_valid_reason(geometry) if not geometry.is_empty else "空几何"
            raise invalid(f"过滤条件中的几何无效：{reason}", "invalid_geometry")
        crs = self.filter_crs
        if crs.lat_first:
            geometry = shapely.transform(geometry, lambda xy: xy[:, ::-1])
        if crs.projected and not within_zone(crs.srid, geometry.bounds):
            raise invalid(
                "过滤条件中的几何超出该投影带的适用范围（北坐标在前）", "invalid_geometry"
            )
        if crs.chinese:
            geometry = transform(geometry, crs.chinese, "EPSG:4326")
        wkt = self.bind(shapely.to_wkt(geometry, rounding_precision=-1))
        if crs.srid == 4326:
            return f"ST_GeomFromText({wkt}, 4326)"
        return f"ST_Transform(ST_GeomFromText({wkt}, {self.bind(crs.srid)}), 4326)"


def _is_property(node: Any) -> bool:
    return isinstance(node, ast.Attribute) or (
        isinstance(node, ast.Function)
        and node.name == "lower"
        and len(node.arguments) == 1
        and isinstance(node.arguments[0], ast.Attribute)
    )


def compile_filter(
    collection: Collection, filter_text: str, lang: str | None, filter_crs: OgcCrs
) -> tuple[str, dict[str, Any]]:
    """`filter` as an SQL condition over `source_sql`'s aliases, with its bound parameters."""
    translator = Translator(collection, filter_crs)
    try:
        sql = translator.condition(parse(filter_text, lang))
    except RecursionError:
        raise invalid("过滤条件嵌套过深") from None
    return sql, translator.params


def equals_filter(
    collection: Collection, name: str, value: str, index: int
) -> tuple[str, dict[str, Any]]:
    """A queryable used as a query parameter (`?status=closed`): equality with a typed value."""
    found = collection.property_named(name)
    if found is None:
        raise InvalidInput(f"未知属性 {name}", code="unknown_property", where=f"query.{name}")
    typed: Any = value
    try:
        if found.type == "integer":
            typed = int(value)
        elif found.type == "number":
            typed = float(value)
        elif found.type == "date-time":
            typed = _instant(value)
    except (ValueError, InvalidInput):
        raise InvalidInput(
            f"参数 {name} 的值与类型 {found.type} 不符", code="type_mismatch", where=f"query.{name}"
        ) from None
    key = f"q{index}"
    return f"({columns(collection)[name]} = :{key})", {key: typed}
