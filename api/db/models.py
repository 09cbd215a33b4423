"""Tables of wangge. Geometry is stored in EPSG:4326 and measured in a Gauss-Kruger zone.

Grids are versioned the way MapIt versions areas: a row is valid for an inclusive range of
generations [generation_low, generation_high]; an unchanged grid keeps its row across
generations, a redrawn one gets a new row under the same code. The code is the stable
identity, so a parent is referenced by code, not by row id.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class GridLevel(Base):
    """A level of the hierarchy, as data: a deployment can rename levels or add one."""

    __tablename__ = "grid_level"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    label_zh: Mapped[str] = mapped_column(String(32))
    # Regular expression a code at this level must match; NULL disables the check.
    code_pattern: Mapped[str | None] = mapped_column(Text)
    # Whether a code must start with its parent's code (micro-grids extend their grid's code).
    code_extends_parent: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    households_min: Mapped[int | None] = mapped_column(Integer)
    households_max: Mapped[int | None] = mapped_column(Integer)


class GridKind(Base):
    __tablename__ = "grid_kind"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(32))


class Generation(Base):
    """One version of the whole boundary set."""

    __tablename__ = "generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class GenerationActivation(Base):
    """The activation log: the generation active at time T is the last one activated before T."""

    __tablename__ = "generation_activation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    activated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    activated_by: Mapped[str | None] = mapped_column(Text)


class Grid(Base):
    __tablename__ = "grid"
    __table_args__ = (
        CheckConstraint("generation_low <= generation_high", name="generation_range"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint("households IS NULL OR households >= 0", name="households_nonnegative"),
        CheckConstraint("population IS NULL OR population >= 0", name="population_nonnegative"),
        Index("ix_grid_generation", "generation_low", "generation_high"),
        Index("ix_grid_code", "code"),
        Index("ix_grid_parent_code", "parent_code"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(ForeignKey("grid_level.name", onupdate="CASCADE"))
    kind: Mapped[str] = mapped_column(
        ForeignKey("grid_kind.name", onupdate="CASCADE"), server_default="other"
    )
    parent_code: Mapped[str | None] = mapped_column(String(64))
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )
    generation_low: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    generation_high: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Building(Base):
    __tablename__ = "building"
    __table_args__ = (CheckConstraint("ST_IsValid(geom)", name="geom_valid"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    floors: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int | None] = mapped_column(Integer)
    use: Mapped[str | None] = mapped_column(String(32))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MonitoringPoint(Base):
    """A camera or sensor; cameras see a sector: heading, field-of-view angle and range."""

    __tablename__ = "monitoring_point"
    __table_args__ = (
        CheckConstraint("kind IN ('camera', 'sensor')", name="kind_known"),
        CheckConstraint("status IN ('online', 'offline', 'fault')", name="status_known"),
        CheckConstraint("heading_deg IS NULL OR (heading_deg >= 0 AND heading_deg < 360)"),
        CheckConstraint("fov_deg IS NULL OR (fov_deg > 0 AND fov_deg <= 360)"),
        CheckConstraint("range_m IS NULL OR range_m > 0"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), server_default="camera")
    heading_deg: Mapped[float | None] = mapped_column(Float)
    fov_deg: Mapped[float | None] = mapped_column(Float)
    range_m: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), server_default="online")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StaffRoleKind(Base):
    """网格长, 网格指导员, 专职网格员, 职能网格员, 微网格联络员 …, as data."""

    __tablename__ = "staff_role_kind"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(32))
    required_at_level: Mapped[str | None] = mapped_column(
        ForeignKey("grid_level.name", onupdate="CASCADE")
    )


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class StaffAssignment(Base):
    """A person's role on a grid (by code, so it survives redraws that keep the code)."""

    __tablename__ = "staff_assignment"
    __table_args__ = (UniqueConstraint("staff_id", "grid_code", "role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    grid_code: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(ForeignKey("staff_role_kind.name", onupdate="CASCADE"))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EventCategory(Base):
    """GB/T 30428.2-style catalogue of events (事件) and components (部件), as data."""

    __tablename__ = "event_category"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # event | component
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("event_category.code"))
    default_tier: Mapped[int | None] = mapped_column(SmallInteger)


class HandlingUnit(Base):
    """A unit that handles events (社区工作站, 城管, 市场监管 …) and the areas it answers for."""

    __tablename__ = "handling_unit"
    __table_args__ = (CheckConstraint("tier IN (1, 2, 3)", name="tier_known"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    tier: Mapped[int] = mapped_column(SmallInteger)
    areas: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class DispatchRule(Base):
    """What a category at a tier proposes: the kind of unit and the deadlines (working time)."""

    __tablename__ = "dispatch_rule"
    __table_args__ = (
        UniqueConstraint("category_code", "tier", name="uq_dispatch_rule_category_tier"),
        CheckConstraint("tier IN (1, 2, 3)", name="tier_known"),
        CheckConstraint("handle_unit IN ('hours', 'days')", name="handle_unit_known"),
        CheckConstraint("accept_hours > 0 AND handle_amount > 0", name="durations_positive"),
        Index(
            "uq_dispatch_rule_fallback",
            "tier",
            unique=True,
            postgresql_where=text("category_code IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str | None] = mapped_column(ForeignKey("event_category.code"))
    tier: Mapped[int] = mapped_column(SmallInteger)
    unit_kind: Mapped[str] = mapped_column(String(32))
    accept_hours: Mapped[float] = mapped_column(Float)
    handle_amount: Mapped[float] = mapped_column(Float)
    handle_unit: Mapped[str] = mapped_column(String(8))


class WorkCalendar(Base):
    """Days that break the Monday–Friday rule: holidays, and weekend days worked (调休)."""

    __tablename__ = "work_calendar"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str | None] = mapped_column(Text)


class EventKey(Base):
    """The keys of every event, whatever its month: `event` is partitioned by month and a unique
    constraint there must contain the month, so the id and (source, external_id) are unique here
    and the tables that point at an event reference this table (migrations/0008)."""

    __tablename__ = "event_key"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_event_key_source_external_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))


class Event(Base):
    """Reported events, partitioned by local month of `reported_at` (event_part.event_YYYY_MM and
    event_part.event_default); triggers keep each event's row in event_key."""

    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint(
            "status IN ('reported', 'accepted', 'rejected', 'dispatched', 'processing', 'handled', "
            "'returned', 'closed', 'evaluated', 'cancelled', 'merged')",
            name="status_known",
        ),
        CheckConstraint("tier IS NULL OR tier IN (1, 2, 3)", name="tier_known"),
        CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction_range"
        ),
        Index("ix_event_grid_code", "grid_code"),
        Index("ix_event_status", "status"),
        Index("ix_event_due_at", "due_at"),
        Index("ix_event_reported_at", "reported_at"),
        Index("ix_event_unit_code", "unit_code"),
        Index("ix_event_grid_reported", "grid_code", "reported_at"),
        Index("ix_event_grid_due", "grid_code", "due_at"),
        Index(
            "ix_event_open_deadline",
            "due_at",
            postgresql_where=text(
                "status IN ('reported', 'accepted', 'dispatched', 'processing', 'handled', "
                "'returned')"
            ),
        ),
        {"postgresql_partition_by": "RANGE (reported_at)"},
    )

    id: Mapped[int] = mapped_column(
        ForeignKey("event_key.id", ondelete="CASCADE", name="event_id_fkey"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    category_code: Mapped[str | None] = mapped_column(ForeignKey("event_category.code"))
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    raw_x: Mapped[float | None] = mapped_column(Float)
    raw_y: Mapped[float | None] = mapped_column(Float)
    raw_crs: Mapped[str | None] = mapped_column(String(32))
    geom: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True), nullable=True
    )
    grid_code: Mapped[str | None] = mapped_column(String(64))
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="reported")
    reporter_name: Mapped[str | None] = mapped_column(Text)
    reporter_phone: Mapped[str | None] = mapped_column(String(32))
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The loop (api/workflow): optimistic version, tier, who handles it, and its clock.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    unit_code: Mapped[str | None] = mapped_column(ForeignKey("handling_unit.code"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    accept_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The first decision on a report (accept, reject, merge, cancel): what 响应率 measures.
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    postpone_count: Mapped[int] = mapped_column(Integer, server_default="0")
    postpone_requested_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rework_count: Mapped[int] = mapped_column(Integer, server_default="0")
    return_count: Mapped[int] = mapped_column(Integer, server_default="0")
    escalation_count: Mapped[int] = mapped_column(Integer, server_default="0")
    handling_hours: Mapped[float | None] = mapped_column(Float)  # working hours, at closing
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("event_key.id"))
    duplicate_candidates: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    warning_level: Mapped[int] = mapped_column(SmallInteger, server_default="0")


class EventHistory(Base):
    __tablename__ = "event_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("event_key.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class Supervision(Base):
    """A supervision order (督办) on an event: why, by when, by whom."""

    __tablename__ = "supervision"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("event_key.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    issued_by: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class EventAttachment(Base):
    """A photo of an event, stored content-addressed (re-encoded, EXIF stripped)."""

    __tablename__ = "event_attachment"
    __table_args__ = (CheckConstraint("stage IN ('before', 'after', 'other')", name="stage_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("event_key.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    thumb_sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16), server_default="other")
    lon: Mapped[float | None] = mapped_column(Float)  # from the photo's EXIF GPS, kept as data
    lat: Mapped[float | None] = mapped_column(Float)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    storage: Mapped[str] = mapped_column(String(8), server_default="file")
    uploaded_by: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Outbox(Base):
    """Notifications written in the same transaction as the change they announce."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxDelivery(Base):
    """One notification to one webhook target: attempts, back-off, delivered or not."""

    __tablename__ = "outbox_delivery"
    __table_args__ = (
        Index(
            "ix_outbox_delivery_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL"),
        ),
    )

    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class ApiToken(Base):
    """API tokens, stored as SHA-256 of a 256-bit random secret (never the secret itself)."""

    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'planner', 'dispatcher', 'supervisor', 'handler', 'field_staff', "
            "'viewer')",
            name="role_known",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    grid_codes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unit_code: Mapped[str | None] = mapped_column(ForeignKey("handling_unit.code"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


class LayerRevision(Base):
    """How many committed transactions have written a layer (building, monitoring_point, event):
    bumped by a deferred trigger (migration 0007), read as the layer's cache and ETag revision."""

    __tablename__ = "layer_revision"

    layer: Mapped[str] = mapped_column(String(32), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class CoverageCheck(Base):
    """A stored coverage check: its parameters and the full report (findings as GeoJSON)."""

    __tablename__ = "coverage_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"), index=True)
    level: Mapped[str | None] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    report: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(Text)


class Draft(Base):
    """A planner's working copy: an inactive generation edited copy-on-write, with a version."""

    __tablename__ = "draft"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'published', 'discarded')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"), unique=True)
    base_generation: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    source: Mapped[str] = mapped_column(
        Text, server_default="copy"
    )  # copy | import | fix | suggest
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DraftEdit(Base):
    __tablename__ = "draft_edit"
    __table_args__ = (UniqueConstraint("draft_id", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("draft.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(32))
    codes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    undone: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class GridLineage(Base):
    """Which old grids became which new ones when a generation was published."""

    __tablename__ = "grid_lineage"
    __table_args__ = (
        CheckConstraint(
            "relation IN ('split', 'merge', 'redraw', 'create', 'delete', 'recode')",
            name="relation_known",
        ),
        Index("ix_grid_lineage_generation", "generation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id"))
    old_code: Mapped[str | None] = mapped_column(String(64))
    new_code: Mapped[str | None] = mapped_column(String(64))
    relation: Mapped[str] = mapped_column(String(16))


class LoginLink(Base):
    """A short link (and QR code) that signs a phone in with a token; only its code's hash is kept."""

    __tablename__ = "login_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_token.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)


class IdempotencyKey(Base):
    """The first answer to an action a phone may replay from its offline queue."""

    __tablename__ = "idempotency_key"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_token.id", ondelete="CASCADE"), primary_key=True
    )
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class Patrol(Base):
    """A patrol (巡查): one worker's walk, from the phone or an uploaded GPX/GeoJSON track."""

    __tablename__ = "patrol"
    __table_args__ = (
        UniqueConstraint("token_id", "client_id", name="uq_patrol_token_client"),
        CheckConstraint("source IN ('phone', 'gpx', 'geojson')", name="source_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="SET NULL"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    grid_code: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16), server_default="phone")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    points: Mapped[int] = mapped_column(Integer, server_default="0")
    dropped_points: Mapped[int] = mapped_column(Integer, server_default="0")
    length_m: Mapped[float | None] = mapped_column(Float)
    track: Mapped[Any | None] = mapped_column(
        Geometry("LINESTRINGM", srid=4326, dimension=3, spatial_index=True), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PatrolPoint(Base):
    """A fix as recorded; `kept` false when the speed filter dropped it as a GPS jump."""

    __tablename__ = "patrol_point"

    patrol_id: Mapped[int] = mapped_column(
        ForeignKey("patrol.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    kept: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


# The gazetteer tables live in their own module; importing it registers them on Base.
from api.db import models_gazetteer  # noqa: E402, F401
