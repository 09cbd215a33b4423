"""Drafts: undoable edits (each keeps what it replaced), where a draft came from, re-code lineage.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_RELATIONS = "relation IN ('split', 'merge', 'redraw', 'create', 'delete')"
NEW_RELATIONS = "relation IN ('split', 'merge', 'redraw', 'create', 'delete', 'recode')"


def upgrade() -> None:
    op.add_column(
        "draft_edit",
        sa.Column("undone", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "draft",
        sa.Column("source", sa.Text(), server_default="copy", nullable=False),
    )
    op.drop_constraint("relation_known", "grid_lineage", type_="check")
    op.create_check_constraint("relation_known", "grid_lineage", NEW_RELATIONS)


def downgrade() -> None:
    op.execute("DELETE FROM grid_lineage WHERE relation = 'recode'")
    op.drop_constraint("relation_known", "grid_lineage", type_="check")
    op.create_check_constraint("relation_known", "grid_lineage", OLD_RELATIONS)
    op.drop_column("draft", "source")
    op.drop_column("draft_edit", "undone")
