"""Drafts (a planner's working copy: an inactive generation), their edit log, and grid lineage.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("base_generation", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('open', 'published', 'discarded')", name="status_known"),
        sa.ForeignKeyConstraint(["generation_id"], ["generation.id"]),
        sa.ForeignKeyConstraint(["base_generation"], ["generation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("generation_id"),
    )
    op.create_table(
        "draft_edit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("codes", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["draft_id"], ["draft.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("draft_id", "version"),
    )
    op.create_table(
        "grid_lineage",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("old_code", sa.String(length=64), nullable=True),
        sa.Column("new_code", sa.String(length=64), nullable=True),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "relation IN ('split', 'merge', 'redraw', 'create', 'delete')", name="relation_known"
        ),
        sa.ForeignKeyConstraint(["generation_id"], ["generation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_grid_lineage_generation", "grid_lineage", ["generation_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_grid_lineage_generation", table_name="grid_lineage")
    op.drop_table("grid_lineage")
    op.drop_table("draft_edit")
    op.drop_table("draft")
