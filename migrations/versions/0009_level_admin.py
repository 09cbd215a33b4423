"""Levels changed without SQL (issue 16 §5): the service writes the level catalogue only through
two SECURITY DEFINER functions owned by the schema owner, and each call writes its audit row.

The service role keeps no INSERT, UPDATE or DELETE right on grid_level or staff_role_kind
(api/db/migrate.py), so a compromised service cannot change a code rule unaudited. api/levels.py
validates a change against the grids stored (code rules, hierarchy, bands, roles) and then calls
- `level_admin_save(actor, action, old_name, name, rank, label_zh, code_pattern,
  code_extends_parent, households_min, households_max, required_roles, details)`: adds
  (action 'level.add', old_name NULL) or changes (action 'level.change') a level; required_roles
  NULL leaves the roles as they are, else exactly those roles are required at the level;
- `level_admin_remove(actor, name, details)`: removes a level no grid uses (the foreign key
  from grid refuses it otherwise); roles required at it are required nowhere any more.
Both refuse what the catalogue must never hold (an empty or overlong label, a bad name or rank, a
band upside down, a used level renamed, and a code pattern that is longer than 200 characters, uses
a back-reference or look-around, or repeats a group that ends in * or + — the cheap part of
api/code_patterns.py's guard, so a caller that skips api/levels.py cannot store a catastrophic
pattern), write the audit row, and NOTIFY wangge_levels (delivered at commit: workers forget
their cached catalogue).

EXECUTE is revoked from PUBLIC here, and granted to the service role only by
api/db/migrate.grant_service_role (run after every upgrade). The `actor` is the service's word
(the admin it authenticated); the audit row also records the database role that called
(`details.db_role`, session_user), which the caller cannot choose.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SAVE = r"""
CREATE FUNCTION level_admin_save(
    actor text, action text, old_name text, new_name text, new_rank integer, label text,
    pattern text, extends_parent boolean, band_min integer, band_max integer,
    roles text[], details jsonb
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF coalesce(actor, '') = '' OR coalesce(btrim(label), '') = '' THEN
        RAISE EXCEPTION 'level_admin_save: actor and label_zh are required'
            USING ERRCODE = 'check_violation';
    END IF;
    IF new_name !~ '^[a-z][a-z0-9_]{0,31}$' OR new_rank IS NULL OR new_rank NOT BETWEEN 0 AND 1000
            OR char_length(btrim(label)) > 32 THEN
        RAISE EXCEPTION 'level_admin_save: name, rank or label_zh refused'
            USING ERRCODE = 'check_violation';
    END IF;
    IF char_length(pattern) > 200
            OR pattern ~ '\\[1-9]|\(\?(P=|=|!|<=|<!|\()|(^|[^\\])[*+][)]+[*+{]' THEN
        RAISE EXCEPTION 'level_admin_save: code pattern refused (see api/code_patterns.py)'
            USING ERRCODE = 'check_violation';
    END IF;
    IF band_min < 0 OR band_max < 0 OR band_min > band_max OR band_max > 10000000 THEN
        RAISE EXCEPTION 'level_admin_save: households band % – % refused', band_min, band_max
            USING ERRCODE = 'check_violation';
    END IF;
    IF action = 'level.add' THEN
        INSERT INTO grid_level (name, rank, label_zh, code_pattern, code_extends_parent,
                                households_min, households_max)
        VALUES (new_name, new_rank, label, pattern, extends_parent, band_min, band_max);
    ELSIF action = 'level.change' THEN
        IF new_name <> old_name AND EXISTS (SELECT 1 FROM grid WHERE level = old_name) THEN
            RAISE EXCEPTION 'level_admin_save: level % is used by grids', old_name
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        UPDATE grid_level SET name = new_name, rank = new_rank, label_zh = label,
            code_pattern = pattern, code_extends_parent = extends_parent,
            households_min = band_min, households_max = band_max
        WHERE name = old_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'level_admin_save: no level %', old_name
                USING ERRCODE = 'no_data_found';
        END IF;
    ELSE
        RAISE EXCEPTION 'level_admin_save: unknown action %', action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF roles IS NOT NULL THEN
        UPDATE staff_role_kind SET required_at_level = NULL
        WHERE required_at_level = new_name AND NOT (name = ANY (roles));
        UPDATE staff_role_kind SET required_at_level = new_name WHERE name = ANY (roles);
    END IF;
    INSERT INTO audit_log (actor, action, entity, entity_id, details)
    VALUES (actor, action, 'grid_level', coalesce(old_name, new_name),
            coalesce(details, '{}') || jsonb_build_object('db_role', session_user));
    PERFORM pg_notify('wangge_levels', new_name);
END
$$
"""

REMOVE = """
CREATE FUNCTION level_admin_remove(actor text, level_name text, details jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF coalesce(actor, '') = '' THEN
        RAISE EXCEPTION 'level_admin_remove: actor is required' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE staff_role_kind SET required_at_level = NULL WHERE required_at_level = level_name;
    DELETE FROM grid_level WHERE name = level_name;  -- a used level: the grid FK refuses
    IF NOT FOUND THEN
        RAISE EXCEPTION 'level_admin_remove: no level %', level_name
            USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO audit_log (actor, action, entity, entity_id, details)
    VALUES (actor, 'level.remove', 'grid_level', level_name,
            coalesce(details, '{}') || jsonb_build_object('db_role', session_user));
    PERFORM pg_notify('wangge_levels', level_name);
END
$$
"""


SIGNATURES = (
    "level_admin_save(text, text, text, text, integer, text, text, boolean, integer, integer, "
    "text[], jsonb)",
    "level_admin_remove(text, text, jsonb)",
)


def upgrade() -> None:
    op.execute(SAVE)
    op.execute(REMOVE)
    for signature in SIGNATURES:  # PostgreSQL grants EXECUTE to PUBLIC by default
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    for signature in SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
