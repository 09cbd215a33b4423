"""A revision counter per changing layer (buildings, monitoring points, events), bumped once per
committing transaction that wrote the layer: the OGC pages and vector tiles key their caches and
ETags on it (`api.ogc.collections.revision`) instead of counting the table per request.

The bump is a deferred constraint trigger, so it runs at commit, after every other lock the
transaction takes: writers wait on the counter row only while committing, never in an order that
could deadlock, and the counter grows in commit order (a reader that reads the revision before the
data never caches new data under an old revision, nor old data under a new one). A transaction
bumps a layer once however many rows it wrote (a transaction-local setting remembers it).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAYERS = ("building", "monitoring_point", "event")


def upgrade() -> None:
    op.execute(
        "CREATE TABLE layer_revision ("
        " layer varchar(32) PRIMARY KEY,"
        " revision bigint NOT NULL DEFAULT 0,"
        " changed_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("INSERT INTO layer_revision (layer) VALUES " + ", ".join(f"('{t}')" for t in LAYERS))
    # SECURITY DEFINER: the service role may not write the counter itself (api/db/migrate.py).
    op.execute(
        """
        CREATE FUNCTION bump_layer_revision() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        DECLARE
            flag text := 'wangge.revised_' || TG_TABLE_NAME;
        BEGIN
            IF TG_OP = 'TRUNCATE' OR coalesce(current_setting(flag, true), '') = '' THEN
                UPDATE layer_revision SET revision = revision + 1, changed_at = now()
                WHERE layer = TG_TABLE_NAME;
                PERFORM set_config(flag, '1', true);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for table in LAYERS:
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE "
            f"ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION bump_layer_revision()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_revision_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_layer_revision()"
        )


def downgrade() -> None:
    for table in LAYERS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_revision_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_revision ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_layer_revision()")
    op.execute("DROP TABLE IF EXISTS layer_revision")
