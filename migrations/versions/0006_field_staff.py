"""Field staff on their phones: sign-in links (QR), idempotency keys for actions replayed from an
offline queue, patrols and their timestamped track points.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A field worker's token names the person (staff) it belongs to: "my tasks" are theirs.
    op.add_column("api_token", sa.Column("staff_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        "api_token_staff_id_fkey", "api_token", "staff", ["staff_id"], ["id"], ondelete="SET NULL"
    )
    # A short link (and its QR code) that signs a phone in with a token: only the SHA-256 of the
    # link's code is stored, like a token's. The token itself is made when the link is created.
    op.create_table(
        "login_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_sha256"),
    )
    # An action replayed from a phone's offline queue carries the key it was made with: the first
    # answer is kept and given again, so nothing is applied twice.
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_id", "key"),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])
    # A patrol (巡查): one worker's walk, started and stopped on the phone or uploaded from a file.
    op.create_table(
        "patrol",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.BigInteger(), nullable=True),
        sa.Column("grid_code", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), server_default="phone", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("points", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dropped_points", sa.Integer(), server_default="0", nullable=False),
        sa.Column("length_m", sa.Float(), nullable=True),
        sa.Column(
            "track",
            Geometry(geometry_type="LINESTRINGM", srid=4326, dimension=3, spatial_index=False),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("source IN ('phone', 'gpx', 'geojson')", name="source_known"),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id", "client_id", name="uq_patrol_token_client"),
    )
    op.create_index("ix_patrol_started_at", "patrol", ["started_at"])
    op.create_index("ix_patrol_grid_code", "patrol", ["grid_code"])
    op.create_index("idx_patrol_track", "patrol", ["track"], postgresql_using="gist", unique=False)
    # The fixes as recorded (WGS84, time, accuracy); `kept` false for a GPS jump the speed filter
    # dropped. One fix per patrol and moment: a replayed batch adds nothing twice.
    op.create_table(
        "patrol_point",
        sa.Column("patrol_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("kept", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.ForeignKeyConstraint(["patrol_id"], ["patrol.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("patrol_id", "at"),
    )


def downgrade() -> None:
    op.drop_table("patrol_point")
    op.drop_index("idx_patrol_track", table_name="patrol", postgresql_using="gist")
    op.drop_index("ix_patrol_grid_code", table_name="patrol")
    op.drop_index("ix_patrol_started_at", table_name="patrol")
    op.drop_table("patrol")
    op.drop_index("ix_idempotency_key_created_at", table_name="idempotency_key")
    op.drop_table("idempotency_key")
    op.drop_table("login_link")
    op.drop_constraint("api_token_staff_id_fkey", "api_token", type_="foreignkey")
    op.drop_column("api_token", "staff_id")
