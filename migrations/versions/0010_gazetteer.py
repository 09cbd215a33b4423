"""The address gazetteer (地名地址库): compounds, roads, house-number points, POIs, and the aliases
dispatchers teach it. Buildings keep their own addresses (table `building`).

- `compound` 小区/园/苑/府: a name, aliases (俗称, "…小区" forms), an outline; its buildings are
  the buildings inside that outline.
- `road`: a named line (MultiLineString) with aliases; intersections are computed from the lines.
- `house_number` 门牌: a point on a road's frontage, e.g. 淞江路19号 (`number` is the normalised
  number: "19", "19-1", "19甲").
- `poi` 地标: schools, markets, hospitals, parks… as points with aliases.
- `address_alias`: a wording (normalised) that means a place (`target_kind`, `target_code`), saved
  by a dispatcher's correction; `text` is what was said, as said.

Each table bumps its layer revision (migration 0007), which is how the workers' in-memory
gazetteer knows to reload.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAYERS = ("compound", "road", "house_number", "poi", "address_alias")
TARGET_KINDS = ("building", "compound", "house_number", "road", "poi", "intersection")


def upgrade() -> None:
    op.execute(
        "CREATE TABLE compound ("
        " id bigserial PRIMARY KEY,"
        " code varchar(64) NOT NULL UNIQUE,"
        " name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),"
        " aliases text[] NOT NULL DEFAULT '{}',"
        " kind varchar(32),"
        " geom geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom)),"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        "CREATE TABLE road ("
        " id bigserial PRIMARY KEY,"
        " code varchar(64) NOT NULL UNIQUE,"
        " name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),"
        " aliases text[] NOT NULL DEFAULT '{}',"
        " kind varchar(32),"
        " geom geometry(MultiLineString, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom)),"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        "CREATE TABLE house_number ("
        " id bigserial PRIMARY KEY,"
        " code varchar(64) NOT NULL UNIQUE,"
        " road text NOT NULL CHECK (length(road) BETWEEN 1 AND 100),"
        " number varchar(32) NOT NULL,"
        " compound_code varchar(64),"
        " geom geometry(Point, 4326) NOT NULL,"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("CREATE INDEX house_number_road_number ON house_number (road, number)")
    op.execute(
        "CREATE TABLE poi ("
        " id bigserial PRIMARY KEY,"
        " code varchar(64) NOT NULL UNIQUE,"
        " name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),"
        " aliases text[] NOT NULL DEFAULT '{}',"
        " category varchar(32),"
        " geom geometry(Point, 4326) NOT NULL,"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    )
    kinds = ", ".join(f"'{k}'" for k in TARGET_KINDS)
    op.execute(
        "CREATE TABLE address_alias ("
        " id bigserial PRIMARY KEY,"
        " normalised text NOT NULL UNIQUE CHECK (length(normalised) BETWEEN 1 AND 200),"
        " text text NOT NULL CHECK (length(text) BETWEEN 1 AND 500),"
        f" target_kind varchar(32) NOT NULL CHECK (target_kind IN ({kinds})),"
        " target_code varchar(200) NOT NULL,"
        " event_id bigint,"
        " created_by text NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    for table in ("compound", "road", "house_number", "poi"):
        op.execute(f"CREATE INDEX idx_{table}_geom ON {table} USING gist (geom)")
    op.execute("INSERT INTO layer_revision (layer) VALUES " + ", ".join(f"('{t}')" for t in LAYERS))
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
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute(
        "DELETE FROM layer_revision WHERE layer IN (" + ", ".join(f"'{t}'" for t in LAYERS) + ")"
    )
