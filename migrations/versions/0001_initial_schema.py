"""Initial schema: grid hierarchy with generations, buildings, monitoring points, staff,
events, tokens, audit log; the level, kind, role and category catalogues as data.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 04:46:42.499582
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Extensions need a superuser the first time; on a managed service create them beforehand.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "grid_codes",
            postgresql.ARRAY(sa.String(length=64)),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'planner', 'dispatcher', 'field_staff', 'viewer')", name="role_known"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_geospatial_table(
        "building",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("floors", sa.Integer(), nullable=True),
        sa.Column("households", sa.Integer(), nullable=True),
        sa.Column("use", sa.String(length=32), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_geospatial_index(
        "idx_building_geom",
        "building",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "event_category",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name_zh", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.String(length=16), nullable=True),
        sa.Column("due_hours", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["event_category.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "grid_kind",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("label_zh", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "grid_level",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("label_zh", sa.String(length=32), nullable=False),
        sa.Column("code_pattern", sa.Text(), nullable=True),
        sa.Column(
            "code_extends_parent", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("households_min", sa.Integer(), nullable=True),
        sa.Column("households_max", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("rank"),
    )
    op.create_geospatial_table(
        "monitoring_point",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), server_default="camera", nullable=False),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("fov_deg", sa.Float(), nullable=True),
        sa.Column("range_m", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="online", nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('camera', 'sensor')", name="kind_known"),
        sa.CheckConstraint("status IN ('online', 'offline', 'fault')", name="status_known"),
        sa.CheckConstraint("fov_deg IS NULL OR (fov_deg > 0 AND fov_deg <= 360)"),
        sa.CheckConstraint("heading_deg IS NULL OR (heading_deg >= 0 AND heading_deg < 360)"),
        sa.CheckConstraint("range_m IS NULL OR range_m > 0"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_geospatial_index(
        "idx_monitoring_point_geom",
        "monitoring_point",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_geospatial_table(
        "event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("raw_x", sa.Float(), nullable=True),
        sa.Column("raw_y", sa.Float(), nullable=True),
        sa.Column("raw_crs", sa.String(length=32), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("grid_code", sa.String(length=64), nullable=True),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="received", nullable=False),
        sa.Column("reporter_name", sa.Text(), nullable=True),
        sa.Column("reporter_phone", sa.String(length=32), nullable=True),
        sa.Column("payload_sha256", sa.String(length=64), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('received', 'dispatched', 'processing', 'resolved', 'closed', 'cancelled')",
            name="status_known",
        ),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["event_category.code"],
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id", name="uq_event_source_external_id"),
    )
    op.create_geospatial_index(
        "idx_event_geom",
        "event",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_event_grid_code", "event", ["grid_code"], unique=False)
    op.create_index("ix_event_status", "event", ["status"], unique=False)
    op.create_table(
        "generation_activation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column(
            "activated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("activated_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_generation_activation_activated_at"),
        "generation_activation",
        ["activated_at"],
        unique=False,
    )
    op.create_geospatial_table(
        "grid",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), server_default="other", nullable=False),
        sa.Column("parent_code", sa.String(length=64), nullable=True),
        sa.Column("households", sa.Integer(), nullable=True),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("generation_low", sa.Integer(), nullable=False),
        sa.Column("generation_high", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        sa.CheckConstraint("generation_low <= generation_high", name="generation_range"),
        sa.CheckConstraint("households IS NULL OR households >= 0", name="households_nonnegative"),
        sa.CheckConstraint("population IS NULL OR population >= 0", name="population_nonnegative"),
        sa.ForeignKeyConstraint(
            ["generation_high"],
            ["generation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["generation_low"],
            ["generation.id"],
        ),
        sa.ForeignKeyConstraint(["kind"], ["grid_kind.name"], onupdate="CASCADE"),
        sa.ForeignKeyConstraint(["level"], ["grid_level.name"], onupdate="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_geospatial_index(
        "idx_grid_geom", "grid", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index("ix_grid_code", "grid", ["code"], unique=False)
    op.create_index(
        "ix_grid_generation", "grid", ["generation_low", "generation_high"], unique=False
    )
    op.create_index("ix_grid_parent_code", "grid", ["parent_code"], unique=False)
    op.create_table(
        "staff_role_kind",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("label_zh", sa.String(length=32), nullable=False),
        sa.Column("required_at_level", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["required_at_level"], ["grid_level.name"], onupdate="CASCADE"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "event_history",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_event_history_event_id"), "event_history", ["event_id"], unique=False)
    op.create_table(
        "staff_assignment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("grid_code", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column(
            "since", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["role"], ["staff_role_kind.name"], onupdate="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("staff_id", "grid_code", "role"),
    )
    op.create_index(
        op.f("ix_staff_assignment_grid_code"), "staff_assignment", ["grid_code"], unique=False
    )
    # A code names one grid per generation: no two rows of a code may share a generation.
    op.execute(
        "ALTER TABLE grid ADD CONSTRAINT grid_code_generation_excl EXCLUDE USING gist "
        "(code WITH =, int4range(generation_low, generation_high, '[]') WITH &&)"
    )
    _seed_catalogues()


def _seed_catalogues() -> None:
    levels = sa.table(
        "grid_level",
        sa.column("name"),
        sa.column("rank"),
        sa.column("label_zh"),
        sa.column("code_pattern"),
        sa.column("code_extends_parent"),
        sa.column("households_min"),
        sa.column("households_max"),
    )
    # Default code convention (DB11/T 2157-2023 style): 6-digit county (GB/T 2260) + 3 street
    # + 3 community + 3 sequence; micro-grids extend their grid's code by 3 digits.
    op.bulk_insert(
        levels,
        [
            {
                "name": "street",
                "rank": 1,
                "label_zh": "街道",
                "code_pattern": r"^\d{9}$",
                "code_extends_parent": True,
                "households_min": None,
                "households_max": None,
            },
            {
                "name": "community",
                "rank": 2,
                "label_zh": "社区",
                "code_pattern": r"^\d{12}$",
                "code_extends_parent": True,
                "households_min": None,
                "households_max": None,
            },
            {
                "name": "grid",
                "rank": 3,
                "label_zh": "网格",
                "code_pattern": r"^\d{15}$",
                "code_extends_parent": True,
                "households_min": 300,
                "households_max": 500,
            },
            {
                "name": "micro_grid",
                "rank": 4,
                "label_zh": "微网格",
                "code_pattern": r"^\d{18}$",
                "code_extends_parent": True,
                "households_min": None,
                "households_max": None,
            },
        ],
    )
    kinds = sa.table("grid_kind", sa.column("name"), sa.column("label_zh"))
    op.bulk_insert(
        kinds,
        [
            {"name": "residential", "label_zh": "村居"},
            {"name": "commercial", "label_zh": "商圈"},
            {"name": "office", "label_zh": "楼宇"},
            {"name": "other", "label_zh": "其他"},
        ],
    )
    roles = sa.table(
        "staff_role_kind", sa.column("name"), sa.column("label_zh"), sa.column("required_at_level")
    )
    op.bulk_insert(
        roles,
        [
            {"name": "grid_head", "label_zh": "网格长", "required_at_level": "grid"},
            {"name": "grid_instructor", "label_zh": "网格指导员", "required_at_level": "grid"},
            {"name": "full_time_worker", "label_zh": "专职网格员", "required_at_level": "grid"},
            {"name": "functional_officer", "label_zh": "职能网格员", "required_at_level": None},
            {
                "name": "micro_grid_liaison",
                "label_zh": "微网格联络员",
                "required_at_level": "micro_grid",
            },
            {"name": "supervisor", "label_zh": "网格监督员", "required_at_level": None},
        ],
    )
    categories = sa.table(
        "event_category",
        sa.column("code"),
        sa.column("name_zh"),
        sa.column("kind"),
        sa.column("parent_code"),
        sa.column("due_hours"),
    )
    # Top classes of the GB/T 30428.2 family; deployments extend the catalogue as data.
    op.bulk_insert(
        categories,
        [
            {
                "code": "E01",
                "name_zh": "市容环境",
                "kind": "event",
                "parent_code": None,
                "due_hours": 24,
            },
            {
                "code": "E02",
                "name_zh": "宣传广告",
                "kind": "event",
                "parent_code": None,
                "due_hours": 48,
            },
            {
                "code": "E03",
                "name_zh": "施工管理",
                "kind": "event",
                "parent_code": None,
                "due_hours": 48,
            },
            {
                "code": "E04",
                "name_zh": "街面秩序",
                "kind": "event",
                "parent_code": None,
                "due_hours": 12,
            },
            {
                "code": "E05",
                "name_zh": "突发事件",
                "kind": "event",
                "parent_code": None,
                "due_hours": 2,
            },
            {
                "code": "E99",
                "name_zh": "其他事件",
                "kind": "event",
                "parent_code": None,
                "due_hours": 72,
            },
            {
                "code": "C01",
                "name_zh": "公用设施",
                "kind": "component",
                "parent_code": None,
                "due_hours": 72,
            },
            {
                "code": "C02",
                "name_zh": "道路交通",
                "kind": "component",
                "parent_code": None,
                "due_hours": 48,
            },
            {
                "code": "C03",
                "name_zh": "市容环境",
                "kind": "component",
                "parent_code": None,
                "due_hours": 48,
            },
            {
                "code": "C04",
                "name_zh": "园林绿化",
                "kind": "component",
                "parent_code": None,
                "due_hours": 72,
            },
            {
                "code": "C05",
                "name_zh": "房屋土地",
                "kind": "component",
                "parent_code": None,
                "due_hours": 120,
            },
            {
                "code": "C99",
                "name_zh": "其他部件",
                "kind": "component",
                "parent_code": None,
                "due_hours": 120,
            },
        ],
    )


def downgrade() -> None:
    # Extensions stay: other schemas in the same database may use PostGIS.
    op.drop_index(op.f("ix_staff_assignment_grid_code"), table_name="staff_assignment")
    op.drop_table("staff_assignment")
    op.drop_index(op.f("ix_event_history_event_id"), table_name="event_history")
    op.drop_table("event_history")
    op.drop_table("staff_role_kind")
    op.drop_index("ix_grid_parent_code", table_name="grid")
    op.drop_index("ix_grid_generation", table_name="grid")
    op.drop_index("ix_grid_code", table_name="grid")
    op.drop_geospatial_index(
        "idx_grid_geom", table_name="grid", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("grid")
    op.drop_index(op.f("ix_generation_activation_activated_at"), table_name="generation_activation")
    op.drop_table("generation_activation")
    op.drop_index("ix_event_status", table_name="event")
    op.drop_index("ix_event_grid_code", table_name="event")
    op.drop_geospatial_index(
        "idx_event_geom", table_name="event", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("event")
    op.drop_table("staff")
    op.drop_geospatial_index(
        "idx_monitoring_point_geom",
        table_name="monitoring_point",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("monitoring_point")
    op.drop_table("grid_level")
    op.drop_table("grid_kind")
    op.drop_table("generation")
    op.drop_table("event_category")
    op.drop_geospatial_index(
        "idx_building_geom", table_name="building", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("building")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_token")
