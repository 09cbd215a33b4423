"""Events partitioned by month (native declarative partitioning, RANGE on `reported_at`), so the
figures of a period and the map of recent work read only the months they need, and old months
can be archived or dropped whole.

A unique constraint on a partitioned table must contain the partition key, so `event.id` alone can
no longer be a primary key, a foreign-key target, nor can (source, external_id) stay unique across
months. Both global keys move to a small unpartitioned table, `event_key` (id, source,
external_id): one row per event ever accepted.

- `event` has PRIMARY KEY (id, reported_at) and a foreign key id → event_key(id) ON DELETE
  CASCADE: an event always has its key.
- The tables that point at an event (history, supervision orders, attachments, merged_into) keep
  real foreign keys, now to event_key(id), with their ON DELETE CASCADE: PostgreSQL checks them.
- Triggers keep the key with its event: a BEFORE INSERT trigger writes the key (a duplicate id or
  (source, external_id) is refused as before; a bulk writer that wrote the keys itself sets
  `wangge.event_keys_written`), a BEFORE UPDATE trigger follows changes of source/external_id,
  and an AFTER DELETE trigger removes the key of an event that is gone (so its children go too).
  An UPDATE that moves a row to another month keeps its key and children.
- Months are Asia/Shanghai calendar months (the figures are asked per local month), tables
  `event_part.event_YYYY_MM` in their own schema (the public schema lists the model's tables
  only); `event_part.event_default` takes whatever has no month yet, so nothing accepted is lost.
- `event_partition_ensure(moment)` creates the month of `moment` (moving its rows out of the default
  partition first) and `event_partitions_maintain(ahead)` the months ahead and every month found
  in the default partition. Both are SECURITY DEFINER, owned by the schema owner: the service role
  has no DDL right and creates months only through them.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILDREN = (  # (table, constraint, column): they pointed at event(id) ON DELETE CASCADE
    ("event_history", "event_history_event_id_fkey", "event_id"),
    ("supervision", "supervision_event_id_fkey", "event_id"),
    ("event_attachment", "event_attachment_event_id_fkey", "event_id"),
)
FOREIGN_KEYS = (  # event's own references to other tables
    ("event_category_code_fkey", "category_code", "event_category(code)"),
    ("event_generation_id_fkey", "generation_id", "generation(id)"),
    ("event_unit_code_fkey", "unit_code", "handling_unit(code)"),
    ("event_assignee_id_fkey", "assignee_id", "staff(id)"),
)
OPEN_SQL = "('reported', 'accepted', 'dispatched', 'processing', 'handled', 'returned')"
INDEXES = (
    "CREATE INDEX idx_event_geom ON event USING gist (geom)",
    "CREATE INDEX ix_event_grid_code ON event (grid_code)",
    "CREATE INDEX ix_event_status ON event (status)",
    "CREATE INDEX ix_event_due_at ON event (due_at)",
    "CREATE INDEX ix_event_reported_at ON event (reported_at)",
    "CREATE INDEX ix_event_grid_reported ON event (grid_code, reported_at)",
    "CREATE INDEX ix_event_grid_due ON event (grid_code, due_at)",
    f"CREATE INDEX ix_event_open_deadline ON event (due_at) WHERE status IN {OPEN_SQL}",
    "CREATE INDEX ix_event_unit_code ON event (unit_code)",
)
ZONE = "Asia/Shanghai"
AHEAD = 3  # months created ahead by the migration and by maintenance

# 0007's counter, with a partition counted as its table: TG_TABLE_NAME of a row trigger on a
# partitioned table is the partition's name.
BUMP_PARTITION_AWARE = """
CREATE OR REPLACE FUNCTION bump_layer_revision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    layer_name text := CASE WHEN TG_TABLE_SCHEMA = 'event_part' THEN 'event'
        ELSE TG_TABLE_NAME END;
    flag text := 'wangge.revised_' || layer_name;
BEGIN
    IF TG_OP = 'TRUNCATE' OR coalesce(current_setting(flag, true), '') = '' THEN
        UPDATE layer_revision SET revision = revision + 1, changed_at = now()
        WHERE layer = layer_name;
        PERFORM set_config(flag, '1', true);
    END IF;
    RETURN NULL;
END
$$
"""
BUMP_0007 = """
CREATE OR REPLACE FUNCTION bump_layer_revision() RETURNS trigger
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

KEY_FUNCTIONS = (
    # A new event's key. A row moved to another month by an UPDATE arrives here too: its key is
    # there already, with the same (source, external_id).
    """
    CREATE FUNCTION event_key_insert() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
    BEGIN
        IF coalesce(current_setting('wangge.event_keys_written', true), '') = 'on' THEN
            RETURN NEW;
        END IF;
        INSERT INTO event_key (id, source, external_id)
        VALUES (NEW.id, NEW.source, NEW.external_id) ON CONFLICT (id) DO NOTHING;
        IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM event_key k WHERE k.id = NEW.id
                AND k.source = NEW.source AND k.external_id = NEW.external_id) THEN
            RAISE unique_violation USING MESSAGE = format('event id %s exists', NEW.id),
                CONSTRAINT = 'event_key_pkey';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE FUNCTION event_key_update() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
    BEGIN
        IF NEW.id <> OLD.id THEN
            RAISE EXCEPTION 'event id cannot change' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF (NEW.source, NEW.external_id) IS DISTINCT FROM (OLD.source, OLD.external_id) THEN
            UPDATE event_key SET source = NEW.source, external_id = NEW.external_id
            WHERE id = NEW.id;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    # The key of an event that is gone (and with it, by their foreign keys, its children); not
    # while a month's rows are being moved out of the default partition, nor for a row that an
    # UPDATE moved to another month (it exists again by the end of the statement).
    """
    CREATE FUNCTION event_key_delete() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
    BEGIN
        IF coalesce(current_setting('wangge.moving_events', true), '') = 'on' THEN
            RETURN NULL;
        END IF;
        DELETE FROM event_key k WHERE k.id = OLD.id
            AND NOT EXISTS (SELECT 1 FROM event e WHERE e.id = OLD.id);
        RETURN NULL;
    END
    $$
    """,
)

PARTITION_FUNCTIONS = (
    f"""
    CREATE FUNCTION event_partition_ensure(moment timestamptz) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        local_month timestamp := date_trunc('month', moment AT TIME ZONE '{ZONE}');
        low timestamptz := local_month AT TIME ZONE '{ZONE}';
        high timestamptz := (local_month + interval '1 month') AT TIME ZONE '{ZONE}';
        part text := 'event_' || to_char(local_month, 'YYYY_MM');
    BEGIN
        -- Months since 2000 (the earliest report intake takes) up to a year ahead, no others.
        IF moment IS NULL OR local_month < timestamp '2000-01-01'
                OR low > now() + interval '12 months' THEN
            RETURN NULL;
        END IF;
        IF to_regclass('event_part.' || part) IS NOT NULL THEN
            RETURN part;
        END IF;
        -- One creator at a time; readers and writers of other months go on.
        LOCK TABLE event IN SHARE UPDATE EXCLUSIVE MODE;
        IF to_regclass('event_part.' || part) IS NOT NULL THEN
            RETURN part;
        END IF;
        EXECUTE format('CREATE TABLE event_part.%I (LIKE event INCLUDING DEFAULTS '
            'INCLUDING CONSTRAINTS)', part);
        -- The month's rows that waited in the default partition move into it, keeping their
        -- keys and children (the delete trigger stands aside while they move).
        PERFORM set_config('wangge.moving_events', 'on', true);
        EXECUTE format('WITH moved AS (DELETE FROM event_part.event_default '
            'WHERE reported_at >= $1 AND reported_at < $2 RETURNING *) '
            'INSERT INTO event_part.%I SELECT * FROM moved', part) USING low, high;
        PERFORM set_config('wangge.moving_events', '', true);
        EXECUTE format('ALTER TABLE event ATTACH PARTITION event_part.%I '
            'FOR VALUES FROM (%L) TO (%L)', part, low, high);
        RETURN part;
    END
    $$
    """,
    f"""
    CREATE FUNCTION event_partitions_maintain(ahead integer DEFAULT {AHEAD}) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        first_day timestamptz;
        made text;
    BEGIN
        FOR first_day IN
            SELECT (date_trunc('month', now() AT TIME ZONE '{ZONE}')
                    + make_interval(months => i)) AT TIME ZONE '{ZONE}'
            FROM generate_series(0, least(greatest(ahead, 0), 12)) AS i
            UNION
            SELECT DISTINCT date_trunc('month', reported_at AT TIME ZONE '{ZONE}')
                    AT TIME ZONE '{ZONE}'
            FROM event_part.event_default
            ORDER BY 1
        LOOP
            IF to_regclass('event_part.event_'
                    || to_char(first_day AT TIME ZONE '{ZONE}', 'YYYY_MM')) IS NULL THEN
                made := event_partition_ensure(first_day);
                IF made IS NOT NULL THEN
                    RETURN NEXT made;
                END IF;
            END IF;
        END LOOP;
    END
    $$
    """,
)


def _months(connection: sa.Connection) -> list[tuple[str, str, str]]:
    """(name, low, high) of every local month holding an event, and the months ahead."""
    rows = connection.execute(
        sa.text(
            "WITH months AS (SELECT DISTINCT date_trunc('month', coalesce(reported_at, "
            "received_at) AT TIME ZONE :zone) AS m FROM event_unpartitioned "
            "UNION SELECT date_trunc('month', now() AT TIME ZONE :zone) "
            "+ make_interval(months => i) FROM generate_series(0, :ahead) AS i) "
            "SELECT 'event_' || to_char(m, 'YYYY_MM'), (m AT TIME ZONE :zone)::text, "
            "((m + interval '1 month') AT TIME ZONE :zone)::text FROM months "
            "WHERE m >= timestamp '2000-01-01' ORDER BY m"
        ),
        {"zone": ZONE, "ahead": AHEAD},
    ).all()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _columns(connection: sa.Connection, table: str) -> list[str]:
    return list(
        connection.execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        ).scalars()
    )


def upgrade() -> None:
    connection = op.get_bind()
    for table, name, _ in CHILDREN:
        op.drop_constraint(name, table, type_="foreignkey")
    op.drop_constraint("event_merged_into_fkey", "event", type_="foreignkey")
    op.execute("DROP TRIGGER event_revision_truncate ON event")
    op.execute("DROP TRIGGER event_revision ON event")
    op.execute("ALTER TABLE event RENAME TO event_unpartitioned")
    op.execute("ALTER SEQUENCE event_id_seq OWNED BY NONE")

    op.execute("CREATE SCHEMA event_part")
    op.execute(
        "CREATE TABLE event (LIKE event_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        "PARTITION BY RANGE (reported_at)"
    )
    op.execute("ALTER TABLE event ALTER COLUMN reported_at SET NOT NULL")
    for name, low, high in _months(connection):
        op.execute(
            f"CREATE TABLE event_part.{name} PARTITION OF event "
            f"FOR VALUES FROM ('{low}') TO ('{high}')"
        )
    op.execute("CREATE TABLE event_part.event_default PARTITION OF event DEFAULT")
    columns = _columns(connection, "event_unpartitioned")
    selected = ["coalesce(reported_at, received_at)" if c == "reported_at" else c for c in columns]
    op.execute(
        f"INSERT INTO event ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM event_unpartitioned"
    )
    op.execute(
        "CREATE TABLE event_key (id bigint NOT NULL, source varchar(32) NOT NULL, "
        "external_id varchar(128) NOT NULL, CONSTRAINT event_key_pkey PRIMARY KEY (id), "
        "CONSTRAINT uq_event_key_source_external_id UNIQUE (source, external_id))"
    )
    op.execute(
        "INSERT INTO event_key (id, source, external_id) "
        "SELECT id, source, external_id FROM event_unpartitioned"
    )
    op.execute("DROP TABLE event_unpartitioned")
    op.execute("ALTER SEQUENCE event_id_seq OWNED BY event.id")

    op.execute("ALTER TABLE event ADD CONSTRAINT event_pkey PRIMARY KEY (id, reported_at)")
    op.execute(
        "ALTER TABLE event ADD CONSTRAINT event_id_fkey FOREIGN KEY (id) "
        "REFERENCES event_key (id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE event ADD CONSTRAINT event_merged_into_fkey FOREIGN KEY (merged_into) "
        "REFERENCES event_key (id)"
    )
    for name, column, target in FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE event ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target}"
        )
    for statement in INDEXES:
        op.execute(statement)
    for table, name, column in CHILDREN:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            "REFERENCES event_key (id) ON DELETE CASCADE"
        )

    for statement in KEY_FUNCTIONS:
        op.execute(statement)
    op.execute(
        "CREATE TRIGGER event_key_insert BEFORE INSERT ON event "
        "FOR EACH ROW EXECUTE FUNCTION event_key_insert()"
    )
    op.execute(
        "CREATE TRIGGER event_key_update BEFORE UPDATE OF id, source, external_id ON event "
        "FOR EACH ROW EXECUTE FUNCTION event_key_update()"
    )
    op.execute(
        "CREATE TRIGGER event_key_delete AFTER DELETE ON event "
        "FOR EACH ROW EXECUTE FUNCTION event_key_delete()"
    )
    op.execute(BUMP_PARTITION_AWARE)
    op.execute(
        "CREATE CONSTRAINT TRIGGER event_revision AFTER INSERT OR UPDATE OR DELETE ON event "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_layer_revision()"
    )
    op.execute(
        "CREATE TRIGGER event_revision_truncate AFTER TRUNCATE ON event "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_layer_revision()"
    )
    for statement in PARTITION_FUNCTIONS:
        op.execute(statement)
    op.execute("ANALYZE event")
    op.execute("ANALYZE event_key")


def downgrade() -> None:
    connection = op.get_bind()
    for name in ("event_partitions_maintain(integer)", "event_partition_ensure(timestamptz)"):
        op.execute(f"DROP FUNCTION {name}")
    for trigger in (
        "event_revision_truncate",
        "event_revision",
        "event_key_delete",
        "event_key_update",
        "event_key_insert",
    ):
        op.execute(f"DROP TRIGGER {trigger} ON event")
    for name in ("event_key_delete()", "event_key_update()", "event_key_insert()"):
        op.execute(f"DROP FUNCTION {name}")
    op.execute(BUMP_0007)
    for table, name, _ in CHILDREN:
        op.drop_constraint(name, table, type_="foreignkey")

    op.execute("ALTER SEQUENCE event_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE event RENAME TO event_partitioned")
    op.execute(
        "CREATE TABLE event (LIKE event_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    columns = ", ".join(_columns(connection, "event_partitioned"))
    op.execute(f"INSERT INTO event ({columns}) SELECT {columns} FROM event_partitioned")
    op.execute("DROP TABLE event_partitioned")  # and its partitions
    op.execute("DROP TABLE event_key")
    op.execute("DROP SCHEMA event_part")
    op.execute("ALTER SEQUENCE event_id_seq OWNED BY event.id")
    op.execute("ALTER TABLE event ALTER COLUMN reported_at DROP NOT NULL")
    op.execute("ALTER TABLE event ADD CONSTRAINT event_pkey PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE event ADD CONSTRAINT uq_event_source_external_id UNIQUE (source, external_id)"
    )
    op.execute(
        "ALTER TABLE event ADD CONSTRAINT event_merged_into_fkey FOREIGN KEY (merged_into) "
        "REFERENCES event (id)"
    )
    for name, column, target in FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE event ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target}"
        )
    for statement in INDEXES:
        op.execute(statement)
    for table, name, column in CHILDREN:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            "REFERENCES event (id) ON DELETE CASCADE"
        )
    op.execute(
        "CREATE CONSTRAINT TRIGGER event_revision AFTER INSERT OR UPDATE OR DELETE ON event "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_layer_revision()"
    )
    op.execute(
        "CREATE TRIGGER event_revision_truncate AFTER TRUNCATE ON event "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_layer_revision()"
    )
