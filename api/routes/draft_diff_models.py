"""The answer of GET /api/v1/drafts/{id}/diff, for OpenAPI (api/drafts/diff.py builds it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

GridCode = str | None  # None: outside every grid of that level


class Totals(BaseModel):
    buildings: int
    households: int = Field(description="sum of the buildings' households")
    monitoring_points: int
    open_events: int


class Person(BaseModel):
    id: int
    name: str
    phone: str | None


class RoleHolders(BaseModel):
    role: str = Field(description="staff_role_kind name, e.g. full_time_worker")
    role_label: str = Field(description="its Chinese label, e.g. 专职网格员")
    count: int
    people: list[Person] | None = Field(
        description="null when the caller may not see this grid's personal data (README 个人信息)"
    )


class Move(Totals):
    from_grid: GridCode
    from_name: str | None
    to_grid: GridCode
    to_name: str | None
    from_staff: list[RoleHolders] = Field(description="who is responsible for the losing grid")
    to_staff: list[RoleHolders] = Field(
        description="who will be responsible for the receiving grid once published "
        "(its own staff and those following a recode); [] when nobody yet"
    )


class RoleRef(BaseModel):
    role: str
    role_label: str


class Receiving(BaseModel):
    grid: str
    name: str | None
    gains: Totals
    from_: list[GridCode] = Field(alias="from")
    staff: list[RoleHolders]
    missing_roles: list[RoleRef] = Field(
        description="roles required at this level (staff_role_kind.required_at_level) nobody holds"
    )


class Losing(BaseModel):
    grid: str
    name: str | None
    loses: Totals
    to: list[GridCode]
    removed: bool = Field(description="the grid is not in the draft (nor recoded into it)")
    staff: list[RoleHolders]


class MissingRole(RoleRef):
    grid: str


class Recode(BaseModel):
    old_code: str
    new_code: str


class LevelMoving(BaseModel):
    buildings_moving: int
    households_moving: int
    monitoring_points_moving: int
    open_events_moving: int


class LevelSummary(LevelMoving):
    moves: int = Field(description="(from, to) pairs, all of them")
    receiving_grids: int
    losing_grids: int


class Moving(BaseModel):
    from_grid: GridCode
    to_grid: GridCode
    lon: float
    lat: float


class BuildingMove(Moving):
    code: str
    name: str | None
    households: int | None


class PointMove(Moving):
    code: str
    name: str | None
    kind: str


class EventMove(Moving):
    id: int
    category_code: str | None
    status: str


class ListsTruncated(BaseModel):
    buildings: bool
    monitoring_points: bool
    open_events: bool


class LevelTruncated(ListsTruncated):
    moves: bool = Field(description="moves, receiving or losing cut at 500 (the biggest kept)")


class LevelDiff(BaseModel):
    level: str
    label_zh: str
    summary: LevelSummary
    moves: list[Move] = Field(description="(from grid → to grid), most households first")
    receiving: list[Receiving] = Field(description="totals per receiving grid")
    losing: list[Losing] = Field(description="totals per losing grid")
    missing_roles: list[MissingRole]
    recoded: list[Recode] = Field(
        description="grids only renumbered (not moves: their objects and staff stay)"
    )
    buildings: list[BuildingMove] = Field(description="by code, at most 1000")
    monitoring_points: list[PointMove] = Field(description="by code, at most 1000")
    open_events: list[EventMove] = Field(description="by id, at most 1000")
    truncated: LevelTruncated


class GridChange(BaseModel):
    code: str
    name: str
    level: str
    change: Literal["added", "removed", "changed"]
    area_before_m2: float
    area_after_m2: float
    area_change_m2: float
    attributes_changed: list[str]


class DiffSummary(BaseModel):
    grids_added: int
    grids_removed: int
    grids_changed: int
    buildings_moving: int = Field(description="at the finest level (the lookup's owner)")
    households_moving: int
    monitoring_points_moving: int
    open_events_moving: int
    by_level: dict[str, LevelMoving] = Field(
        description="the same four totals at every level (level name → totals)"
    )


class RebaseConflictRef(BaseModel):
    code: str
    kind: str
    level: str


class BaseChanged(BaseModel):
    """Another draft went live since this one began: publish will rebase it first."""

    base_generation: int = Field(description="the generation the draft began from")
    active_generation: int
    rebased_preview: bool = Field(
        description="true: the diff is of the rebased draft (computed, not stored); false: "
        "the rebase has conflicts, and the diff compares the draft with its own base"
    )
    conflicts: list[RebaseConflictRef] = Field(
        description="grids to resolve with POST /drafts/{id}/rebase first (empty when none)"
    )


class DraftDiff(BaseModel):
    """The draft against the active generation. The top-level lists are the finest level (each
    object's finest covering grid, as lookups answer); `levels` has every level, coarsest first."""

    draft: int
    generation: int
    against_generation: int
    base_changed: BaseChanged | None = Field(
        description="null when the draft is based on the active generation"
    )
    summary: DiffSummary
    grids: list[GridChange]
    buildings: list[BuildingMove] = Field(description="by code, at most 2000")
    monitoring_points: list[PointMove] = Field(description="by code, at most 2000")
    open_events: list[EventMove] = Field(description="by id, at most 2000")
    truncated: ListsTruncated
    levels: list[LevelDiff]
