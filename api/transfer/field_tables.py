"""What an import expects of each kind of file: the target fields, their column names and checks.

Each target lists candidate column names (English and Chinese); values are parsed by
`api.transfer.fields` and checked against the database's limits here, so a bad value is the
file's error (row, field, reason), never a 500.
"""

from __future__ import annotations

from typing import Any

from api.transfer.fields import TargetField, choice, float_value, int_value

KINDS = {
    "residential": "residential",
    "村居": "residential",
    "commercial": "commercial",
    "商圈": "commercial",
    "office": "office",
    "楼宇": "office",
    "other": "other",
    "其他": "other",
}
POINT_KINDS = {
    "camera": "camera",
    "摄像头": "camera",
    "监控": "camera",
    "sensor": "sensor",
    "传感器": "sensor",
}
STATUSES = {
    "online": "online",
    "在线": "online",
    "offline": "offline",
    "离线": "offline",
    "fault": "fault",
    "故障": "fault",
}


def nonnegative(value: Any) -> str | None:
    return "不能为负数" if value < 0 else None


def at_most(characters: int) -> Any:
    """The column's width in the database: longer text is the file's error, not a 500."""

    def check(value: str) -> str | None:
        return (
            f"最长 {characters} 个字符，此处有 {len(value)} 个" if len(value) > characters else None
        )

    return check


def in_range(low: float, high: float, high_inclusive: bool = True) -> Any:
    def check(value: float) -> str | None:
        ok = low <= value <= high if high_inclusive else low <= value < high
        return None if ok else f"应在 {low}–{high} 之间，实为 {value}"

    return check


GRID_FIELDS = (
    TargetField("code", ("code", "grid_code", "编码", "网格编码", "编号", "adcode"), required=True),
    TargetField("name", ("name", "名称", "网格名称", "Name", "NAME"), required=True),
    TargetField("parent", ("parent_code", "parent", "上级编码", "父编码")),
    TargetField("kind", ("kind", "类型", "网格类型"), choice(KINDS)),
    TargetField("households", ("households", "户数"), int_value, check=nonnegative),
    TargetField("population", ("population", "人口", "人口数"), int_value, check=nonnegative),
)
BUILDING_FIELDS = (
    TargetField(
        "code",
        ("code", "building_code", "编码", "楼栋编码", "编号", "id", "osm_id"),
        check=at_most(64),
    ),
    TargetField("name", ("name", "名称", "楼栋名称", "Name")),
    TargetField("address", ("address", "地址", "addr")),
    TargetField(
        "floors", ("floors", "层数", "building:levels", "levels"), int_value, check=nonnegative
    ),
    TargetField("households", ("households", "户数"), int_value, check=nonnegative),
    TargetField("use", ("use", "用途", "building"), check=at_most(32)),
)
POINT_FIELDS = (
    TargetField(
        "code", ("code", "编码", "点位编码", "编号", "id"), required=True, check=at_most(64)
    ),
    TargetField("name", ("name", "名称", "点位名称", "Name")),
    TargetField("kind", ("kind", "类型"), choice(POINT_KINDS)),
    TargetField(
        "heading_deg",
        ("heading_deg", "heading", "朝向", "方向"),
        float_value,
        check=in_range(0, 360, high_inclusive=False),
    ),
    TargetField("fov_deg", ("fov_deg", "fov", "视角"), float_value, check=in_range(0.1, 360)),
    TargetField(
        "range_m", ("range_m", "range", "距离", "视距"), float_value, check=in_range(0.1, 10000)
    ),
    TargetField("status", ("status", "状态"), choice(STATUSES)),
)
