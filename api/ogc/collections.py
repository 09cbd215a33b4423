"""The collections wangge publishes through OGC API Features and vector tiles (one list for both).

Ids are stable: `grids-{level}` (the active generation's grids of one level), `buildings`,
`monitoring-points`, `events` (non-personal fields only) and `drafts-{id}-grids` (every grid of an
open draft). Each collection names its public properties; `source_sql` and `columns` give the
constant SQL that reads them, so no identifier ever comes from a request. Only fields everyone may
see are listed here: never `attributes`, never what a citizen told us about an event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from api.auth import Permission
from api.db.catalogue import grid_levels
from api.db.drafts import find_draft
from api.db.generations import NoActiveGeneration, generation_at
from api.errors import NotFound
from api.privacy import Caller

GRIDS_PREFIX = "grids-"
_DRAFT_ID = re.compile(r"^drafts-([0-9]{1,9})-grids$")


@dataclass(frozen=True)
class Property:
    name: str
    type: str  # JSON-schema type: string | integer | number | date-time
    description: str


@dataclass(frozen=True)
class Collection:
    id: str
    title: str  # Chinese
    description: str
    geometry_type: str  # MultiPolygon | Point
    properties: tuple[Property, ...]
    kind: str  # grids | buildings | monitoring-points | events | draft-grids
    level: str | None = None
    generation: int | None = None
    draft_id: int | None = None

    def property_named(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)


_GRID_PROPERTIES = (
    Property("code", "string", "网格编码"),
    Property("name", "string", "名称"),
    Property("level", "string", "层级（street/community/grid/micro_grid…）"),
    Property("level_label", "string", "层级名称"),
    Property("kind", "string", "网格类型"),
    Property("parent_code", "string", "上级网格编码"),
    Property("households", "integer", "户数"),
    Property("population", "integer", "人口"),
    Property("generation", "integer", "边界版本号"),
)
_BUILDING_PROPERTIES = (
    Property("code", "string", "建筑编码"),
    Property("name", "string", "名称"),
    Property("address", "string", "地址"),
    Property("floors", "integer", "层数"),
    Property("households", "integer", "户数"),
    Property("use", "string", "用途"),
)
_POINT_PROPERTIES = (
    Property("code", "string", "点位编码"),
    Property("name", "string", "名称"),
    Property("kind", "string", "类型（camera/sensor）"),
    Property("status", "string", "状态（online/offline/fault）"),
    Property("heading_deg", "number", "朝向（度）"),
    Property("fov_deg", "number", "视场角（度）"),
    Property("range_m", "number", "覆盖距离（米）"),
)
_EVENT_PROPERTIES = (
    Property("id", "integer", "事件编号"),
    Property("source", "string", "来源"),
    Property("category_code", "string", "事件类别编码"),
    Property("category_name", "string", "事件类别"),
    Property("status", "string", "状态"),
    Property("tier", "integer", "处置层级"),
    Property("grid_code", "string", "所在网格编码"),
    Property("reported_at", "date-time", "上报时间"),
    Property("due_at", "date-time", "办结时限"),
    Property("closed_at", "date-time", "结案时间"),
    Property("warning_level", "integer", "预警等级"),
)

# Property name → SQL expression over the aliases of `source_sql` (constants, never request text).
_GRID_COLUMNS = {
    "code": "t.code",
    "name": "t.name",
    "level": "t.level",
    "level_label": "l.label_zh",
    "kind": "t.kind",
    "parent_code": "t.parent_code",
    "households": "t.households",
    "population": "t.population",
    "generation": "CAST(:src_generation AS integer)",
}
_COLUMNS: dict[str, dict[str, str]] = {
    "grids": _GRID_COLUMNS,
    "draft-grids": _GRID_COLUMNS,
    "buildings": {p.name: f"t.{p.name}" for p in _BUILDING_PROPERTIES},
    "monitoring-points": {p.name: f"t.{p.name}" for p in _POINT_PROPERTIES},
    "events": {
        **{p.name: f"t.{p.name}" for p in _EVENT_PROPERTIES},
        "category_name": "c.name_zh",
        # Whole seconds: GDAL keeps seconds as a 32-bit float, and a time like 17.9999996 s
        # broke its readers (pyogrio: "microsecond must be in 0..999999").
        **{
            name: f"date_trunc('second', t.{name})"
            for name in ("reported_at", "due_at", "closed_at")
        },
    },
}
_ID_COLUMN = {
    "grids": "t.code",
    "draft-grids": "t.code",
    "buildings": "t.code",
    "monitoring-points": "t.code",
    "events": "t.id",
}
_GRID_SOURCE = (
    "grid t JOIN grid_level l ON l.name = t.level "
    "WHERE t.generation_low <= :src_generation AND t.generation_high >= :src_generation"
)

GEOMETRY_COLUMN = "t.geom"  # EPSG:4326, in every kind


def columns(collection: Collection) -> dict[str, str]:
    """Public property name → constant SQL expression (aliases of `source_sql`)."""
    return _COLUMNS[collection.kind]


def id_column(collection: Collection) -> str:
    """The SQL expression of the feature id (grid/building/point code, event id)."""
    return _ID_COLUMN[collection.kind]


def source_sql(collection: Collection, generation: int | None = None) -> tuple[str, dict[str, Any]]:
    """Constant `FROM … WHERE …` fragment (table alias `t`, always with a WHERE) and its bound
    parameters. `generation` overrides a grid collection's generation (datetime queries)."""
    kind = collection.kind
    if kind in ("grids", "draft-grids"):
        chosen = generation if generation is not None else collection.generation
        params: dict[str, Any] = {"src_generation": chosen}
        if kind == "grids":
            params["src_level"] = collection.level
            return _GRID_SOURCE + " AND t.level = :src_level", params
        return _GRID_SOURCE, params
    if kind == "buildings":
        return "building t WHERE true", {}
    if kind == "monitoring-points":
        return "monitoring_point t WHERE true", {}
    if kind == "events":
        return "event t LEFT JOIN event_category c ON c.code = t.category_code WHERE true", {}
    raise ValueError(f"unknown collection kind {kind}")


def _grids(level: str, label: str, generation: int) -> Collection:
    return Collection(
        id=f"{GRIDS_PREFIX}{level}",
        title=f"{label}（{level}）",
        description=f"当前生效版本（第 {generation} 版）的{label}层级边界",
        geometry_type="MultiPolygon",
        properties=_GRID_PROPERTIES,
        kind="grids",
        level=level,
        generation=generation,
    )


BUILDINGS = Collection(
    id="buildings",
    title="建筑",
    description="建筑轮廓（公开字段）",
    geometry_type="MultiPolygon",
    properties=_BUILDING_PROPERTIES,
    kind="buildings",
)
MONITORING_POINTS = Collection(
    id="monitoring-points",
    title="监控点位",
    description="摄像头与传感器点位",
    geometry_type="Point",
    properties=_POINT_PROPERTIES,
    kind="monitoring-points",
)
EVENTS = Collection(
    id="events",
    title="事件",
    description="上报事件的位置、类别与办理状态（不含描述、地址、上报人等个人信息）",
    geometry_type="Point",
    properties=_EVENT_PROPERTIES,
    kind="events",
)


def _draft_grids(draft_id: int, name: str, generation: int) -> Collection:
    return Collection(
        id=f"drafts-{draft_id}-grids",
        title=f"草稿 {draft_id}：{name}",
        description=f"草稿 {draft_id}（第 {generation} 版，未发布）的全部网格，各层级以 level 区分",
        geometry_type="MultiPolygon",
        properties=_GRID_PROPERTIES,
        kind="draft-grids",
        generation=generation,
        draft_id=draft_id,
    )


def sees_drafts(caller: Caller) -> bool:
    """Draft collections are listed for callers who may edit grids (planner, admin)."""
    principal = caller.principal
    return principal is not None and principal.can(Permission.write_grids)


def listing(connection: Connection, caller: Caller) -> list[Collection]:
    """Every collection this caller may list, in a stable order."""
    found: list[Collection] = []
    try:
        generation = generation_at(connection)
    except NoActiveGeneration:
        generation = None
    if generation is not None:
        found += [_grids(lv.name, lv.label_zh, generation) for lv in grid_levels(connection)]
    found += [BUILDINGS, MONITORING_POINTS, EVENTS]
    if sees_drafts(caller):
        rows = connection.execute(
            text("SELECT id, name, generation_id FROM draft WHERE status = 'open' ORDER BY id")
        ).all()
        found += [_draft_grids(r.id, r.name, r.generation_id) for r in rows]
    return found


def _unknown(collection_id: str) -> NotFound:
    return NotFound(
        f"没有这个要素集合：{collection_id}",
        code="collection_not_found",
        where="path.collectionId",
    )


def resolve(connection: Connection, collection_id: str, caller: Caller) -> Collection:
    """The collection with this id, or NotFound (404). Draft collections follow the read rule
    of GET /api/v1/drafts/{id}: readable by whoever may read, while the draft is open."""
    fixed = {c.id: c for c in (BUILDINGS, MONITORING_POINTS, EVENTS)}
    if collection_id in fixed:
        return fixed[collection_id]
    if collection_id.startswith(GRIDS_PREFIX):
        level = collection_id[len(GRIDS_PREFIX) :]
        found = next((lv for lv in grid_levels(connection) if lv.name == level), None)
        if found is not None:
            try:
                return _grids(found.name, found.label_zh, generation_at(connection))
            except NoActiveGeneration:
                pass
        raise _unknown(collection_id)
    match = _DRAFT_ID.match(collection_id)
    if match:
        draft = find_draft(connection, int(match.group(1)))
        if draft is not None and draft.status == "open":
            return _draft_grids(draft.id, draft.name, draft.generation_id)
    raise _unknown(collection_id)


def revision(connection: Connection, collection: Collection) -> str:
    """A cheap token that changes whenever the collection's content may change (ETags, caches)."""
    if collection.kind == "grids":
        return f"g{collection.generation}"
    if collection.kind == "draft-grids":
        version = connection.execute(
            text("SELECT version FROM draft WHERE id = :id"), {"id": collection.draft_id}
        ).scalar()
        return f"d{collection.draft_id}.{collection.generation}.{version}"
    # One primary-key read (the counter is bumped at every commit that wrote the layer, in commit
    # order: migrations 0007). Read before the data, so a cache never files new data under an
    # old revision's key nor old data under a new one.
    layer = {"buildings": "building", "monitoring-points": "monitoring_point", "events": "event"}[
        collection.kind
    ]
    counter = connection.execute(
        text("SELECT revision FROM layer_revision WHERE layer = :layer"), {"layer": layer}
    ).scalar()
    return f"{collection.kind[0]}{counter}"
