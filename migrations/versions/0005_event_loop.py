"""The event closed loop: workflow states, tiers, handling units, dispatch rules, a working
calendar, supervision orders (督办), attachments, an outbox for webhooks, supervisor and handler
tokens.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = (
    "status IN ('received', 'dispatched', 'processing', 'resolved', 'closed', 'cancelled')"
)
NEW_STATUSES = (
    "status IN ('reported', 'accepted', 'rejected', 'dispatched', 'processing', 'handled', "
    "'returned', 'closed', 'evaluated', 'cancelled', 'merged')"
)
OLD_ROLES = "role IN ('admin', 'planner', 'dispatcher', 'field_staff', 'viewer')"
NEW_ROLES = (
    "role IN ('admin', 'planner', 'dispatcher', 'supervisor', 'handler', 'field_staff', 'viewer')"
)
OPEN_SQL = "('reported', 'accepted', 'dispatched', 'processing', 'handled', 'returned')"
RENAMED = {"received": "reported", "resolved": "handled"}

# (kind, name, tier): the street's own departments; deployments add their own as data.
UNITS = (
    ("community", "社区工作站", 3),
    ("street_office", "街道综合执法办", 2),
    ("chengguan", "区城市管理局", 1),
    ("market", "区市场监督管理局", 1),
    ("housing", "区住房和城乡建设局", 1),
    ("police", "派出所", 1),
    ("greening", "区园林绿化管理所", 1),
)
# category → default tier, unit kind per tier; accept in working hours, handle in working
# hours or days. A rule with category NULL is the fallback for its tier.
RULES = (
    (None, 3, "community", 2, 3, "days"),
    (None, 2, "street_office", 2, 5, "days"),
    (None, 1, "chengguan", 4, 10, "days"),
    ("E01", 3, "community", 2, 1, "days"),
    ("E04", 3, "community", 1, 4, "hours"),
    ("E04", 1, "chengguan", 2, 2, "days"),
    ("E05", 2, "street_office", 0.5, 2, "hours"),
    ("E05", 1, "police", 0.5, 2, "hours"),
    ("E03", 1, "housing", 2, 5, "days"),
    ("C04", 1, "greening", 2, 5, "days"),
)
DEFAULT_TIERS = {"E05": 2, "E03": 2, "C05": 1}


NAMES_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
}


def _seed_calendar() -> list[dict]:
    """China's public holidays and the weekend days that become working days (调休), from the
    chinesecalendar package; other days follow the Monday–Friday rule."""
    try:
        import chinese_calendar
    except ImportError:  # the calendar stays editable data; an empty one means Mon–Fri
        return []
    rows = [
        {"day": day, "workday": False, "name": NAMES_ZH.get(str(name), str(name))}
        for day, name in chinese_calendar.holidays.items()
        if day.weekday() < 5 and day >= date(2020, 1, 1)
    ]
    rows += [
        {"day": day, "workday": True, "name": f"{NAMES_ZH.get(str(name), str(name))}调休上班"}
        for day, name in chinese_calendar.workdays.items()
        if day.weekday() >= 5 and day >= date(2020, 1, 1)
    ]
    return rows


def upgrade() -> None:
    op.create_table(
        "handling_unit",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column(
            "areas", postgresql.ARRAY(sa.String(length=64)), server_default="{}", nullable=False
        ),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint("tier IN (1, 2, 3)", name="tier_known"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "dispatch_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=True),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("unit_kind", sa.String(length=32), nullable=False),
        sa.Column("accept_hours", sa.Float(), nullable=False),
        sa.Column("handle_amount", sa.Float(), nullable=False),
        sa.Column("handle_unit", sa.String(length=8), nullable=False),
        sa.CheckConstraint("tier IN (1, 2, 3)", name="tier_known"),
        sa.CheckConstraint("handle_unit IN ('hours', 'days')", name="handle_unit_known"),
        sa.CheckConstraint("accept_hours > 0 AND handle_amount > 0", name="durations_positive"),
        sa.ForeignKeyConstraint(["category_code"], ["event_category.code"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("category_code", "tier", name="uq_dispatch_rule_category_tier"),
    )
    # UNIQUE treats NULLs as distinct: one fallback rule per tier needs its own index.
    op.create_index(
        "uq_dispatch_rule_fallback",
        "dispatch_rule",
        ["tier"],
        unique=True,
        postgresql_where=sa.text("category_code IS NULL"),
    )
    op.create_table(
        "work_calendar",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("workday", sa.Boolean(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("day"),
    )
    op.add_column("event_category", sa.Column("default_tier", sa.SmallInteger(), nullable=True))
    # Deadlines now come from dispatch rules, in working time (api/workflow/rules.py).
    op.drop_column("event_category", "due_hours")

    op.drop_constraint("status_known", "event", type_="check")
    for old, new in RENAMED.items():
        op.execute(
            sa.text("UPDATE event SET status = :new WHERE status = :old").bindparams(
                old=old, new=new
            )
        )
        op.execute(
            sa.text("UPDATE event_history SET status = :new WHERE status = :old").bindparams(
                old=old, new=new
            )
        )
    op.alter_column("event", "status", server_default="reported")
    op.create_check_constraint("status_known", "event", NEW_STATUSES)
    for column in (
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=True),
        sa.Column("unit_code", sa.String(length=32), nullable=True),
        sa.Column("assignee_id", sa.BigInteger(), nullable=True),
        sa.Column("accept_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("postpone_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("postpone_requested_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rework_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("return_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("escalation_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("handling_hours", sa.Float(), nullable=True),
        sa.Column("satisfaction", sa.SmallInteger(), nullable=True),
        sa.Column("merged_into", sa.BigInteger(), nullable=True),
        sa.Column("duplicate_candidates", postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column("warning_level", sa.SmallInteger(), server_default="0", nullable=False),
    ):
        op.add_column("event", column)
    op.create_foreign_key("event_unit_code_fkey", "event", "handling_unit", ["unit_code"], ["code"])
    op.create_foreign_key("event_assignee_id_fkey", "event", "staff", ["assignee_id"], ["id"])
    op.create_foreign_key("event_merged_into_fkey", "event", "event", ["merged_into"], ["id"])
    op.create_check_constraint("tier_known", "event", "tier IS NULL OR tier IN (1, 2, 3)")
    op.create_check_constraint(
        "satisfaction_range", "event", "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5"
    )
    op.create_index("ix_event_due_at", "event", ["due_at"], unique=False)
    op.create_index("ix_event_reported_at", "event", ["reported_at"], unique=False)
    # The figures (考核) read one area's reports or deadlines of one period.
    op.create_index("ix_event_grid_reported", "event", ["grid_code", "reported_at"], unique=False)
    op.create_index("ix_event_grid_due", "event", ["grid_code", "due_at"], unique=False)
    # Open events are few; warnings, queues and "overdue now" read only them.
    op.create_index(
        "ix_event_open_deadline",
        "event",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text(f"status IN {OPEN_SQL}"),
    )
    op.create_index("ix_event_unit_code", "event", ["unit_code"], unique=False)
    op.execute(
        "UPDATE event SET accepted_at = received_at, responded_at = received_at, "
        "dispatched_at = received_at "
        "WHERE status NOT IN ('reported', 'cancelled')"
    )

    for column in (
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    ):
        op.add_column("event_history", column)

    op.create_table(
        "supervision",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_by", sa.Text(), nullable=False),
        sa.Column(
            "issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_supervision_event_id", "supervision", ["event_id"], unique=False)
    op.create_index("ix_supervision_issued_at", "supervision", ["issued_at"], unique=False)
    op.create_table(
        "event_attachment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("thumb_sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=16), server_default="other", nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("storage", sa.String(length=8), server_default="file", nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=False),
        sa.Column(
            "uploaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("stage IN ('before', 'after', 'other')", name="stage_known"),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_attachment_event_id", "event_attachment", ["event_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "outbox_delivery",
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("outbox_id", "target"),
    )
    op.create_index(
        "ix_outbox_delivery_pending",
        "outbox_delivery",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NULL"),
    )

    op.drop_constraint("role_known", "api_token", type_="check")
    op.create_check_constraint("role_known", "api_token", NEW_ROLES)
    op.add_column("api_token", sa.Column("unit_code", sa.String(length=32), nullable=True))
    op.create_foreign_key(
        "api_token_unit_code_fkey", "api_token", "handling_unit", ["unit_code"], ["code"]
    )

    units = sa.table(
        "handling_unit",
        sa.column("code"),
        sa.column("name"),
        sa.column("kind"),
        sa.column("tier"),
    )
    op.bulk_insert(
        units,
        [{"code": kind, "name": name, "kind": kind, "tier": tier} for kind, name, tier in UNITS],
    )
    rules = sa.table(
        "dispatch_rule",
        sa.column("category_code"),
        sa.column("tier"),
        sa.column("unit_kind"),
        sa.column("accept_hours"),
        sa.column("handle_amount"),
        sa.column("handle_unit"),
    )
    op.bulk_insert(
        rules,
        [
            {
                "category_code": category,
                "tier": tier,
                "unit_kind": kind,
                "accept_hours": accept,
                "handle_amount": amount,
                "handle_unit": unit,
            }
            for category, tier, kind, accept, amount, unit in RULES
        ],
    )
    for code, tier in DEFAULT_TIERS.items():
        op.execute(
            sa.text("UPDATE event_category SET default_tier = :tier WHERE code = :code").bindparams(
                tier=tier, code=code
            )
        )
    calendar = sa.table("work_calendar", sa.column("day"), sa.column("workday"), sa.column("name"))
    op.bulk_insert(calendar, _seed_calendar())


def downgrade() -> None:
    op.drop_constraint("api_token_unit_code_fkey", "api_token", type_="foreignkey")
    op.drop_column("api_token", "unit_code")
    op.execute("DELETE FROM api_token WHERE role IN ('supervisor', 'handler')")
    op.drop_constraint("role_known", "api_token", type_="check")
    op.create_check_constraint("role_known", "api_token", OLD_ROLES)
    op.drop_index("ix_outbox_delivery_pending", table_name="outbox_delivery")
    op.drop_table("outbox_delivery")
    op.drop_table("outbox")
    op.drop_index("ix_event_attachment_event_id", table_name="event_attachment")
    op.drop_table("event_attachment")
    op.drop_index("ix_supervision_issued_at", table_name="supervision")
    op.drop_index("ix_supervision_event_id", table_name="supervision")
    op.drop_table("supervision")
    for column in ("details", "geom", "version", "from_status", "action"):
        op.drop_column("event_history", column)
    op.drop_index("ix_event_unit_code", table_name="event")
    op.drop_index("ix_event_open_deadline", table_name="event")
    op.drop_index("ix_event_grid_due", table_name="event")
    op.drop_index("ix_event_grid_reported", table_name="event")
    op.drop_index("ix_event_reported_at", table_name="event")
    op.drop_index("ix_event_due_at", table_name="event")
    op.drop_constraint("satisfaction_range", "event", type_="check")
    op.drop_constraint("tier_known", "event", type_="check")
    for name in ("event_merged_into_fkey", "event_assignee_id_fkey", "event_unit_code_fkey"):
        op.drop_constraint(name, "event", type_="foreignkey")
    for column in (
        "warning_level",
        "duplicate_candidates",
        "merged_into",
        "satisfaction",
        "handling_hours",
        "escalation_count",
        "return_count",
        "rework_count",
        "postpone_requested_until",
        "postpone_count",
        "handled_at",
        "dispatched_at",
        "responded_at",
        "accepted_at",
        "accept_due_at",
        "unit_code",
        "assignee_id",
        "tier",
        "version",
    ):
        op.drop_column("event", column)
    op.drop_constraint("status_known", "event", type_="check")
    # The old loop knew fewer states: map each new one onto its nearest old one.
    op.execute(
        "UPDATE event SET status = CASE status WHEN 'reported' THEN 'received' "
        "WHEN 'accepted' THEN 'received' WHEN 'returned' THEN 'received' "
        "WHEN 'handled' THEN 'resolved' WHEN 'evaluated' THEN 'closed' "
        "WHEN 'rejected' THEN 'cancelled' WHEN 'merged' THEN 'cancelled' ELSE status END"
    )
    op.execute(
        "UPDATE event_history SET status = CASE status WHEN 'reported' THEN 'received' "
        "WHEN 'accepted' THEN 'received' WHEN 'returned' THEN 'received' "
        "WHEN 'handled' THEN 'resolved' WHEN 'evaluated' THEN 'closed' "
        "WHEN 'rejected' THEN 'cancelled' WHEN 'merged' THEN 'cancelled' ELSE status END"
    )
    op.alter_column("event", "status", server_default="received")
    op.create_check_constraint("status_known", "event", OLD_STATUSES)
    op.drop_column("event_category", "default_tier")
    op.add_column("event_category", sa.Column("due_hours", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE event_category SET due_hours = CASE code WHEN 'E05' THEN 2 WHEN 'E04' THEN 12 "
        "WHEN 'E01' THEN 24 WHEN 'E02' THEN 48 WHEN 'E03' THEN 48 WHEN 'E99' THEN 72 "
        "WHEN 'C01' THEN 72 WHEN 'C02' THEN 48 WHEN 'C03' THEN 48 WHEN 'C04' THEN 72 "
        "WHEN 'C05' THEN 120 WHEN 'C99' THEN 120 END"
    )
    op.drop_table("work_calendar")
    op.drop_index("uq_dispatch_rule_fallback", table_name="dispatch_rule")
    op.drop_table("dispatch_rule")
    op.drop_table("handling_unit")
