"""audit trail: hash-chained, append-only shared.audit_log written by triggers on audited tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# Frozen copies (a revision means the same thing forever): the tables audited when this revision was written,
# with their key columns, and the advisory lock key that serialized the chain.
AUDIT_LOCK_KEY = 0x7472616465646202
AUDITED_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("execution", "accounts", ("account_id",)),
    ("execution", "orders", ("order_id",)),
    ("execution", "fills", ("fill_id",)),
    ("execution", "positions", ("account_id", "security_id")),
    ("risk_management", "risk_limits", ("limit_id",)),
    ("strategy_engine", "strategies", ("strategy_id",)),
    ("strategy_engine", "strategy_parameters", ("parameter_id",)),
    ("strategy_engine", "strategy_instances", ("instance_id",)),
    ("shared", "system_config", ("key",)),
    ("notification", "notification_configs", ("config_id",)),
)

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The canonical text a row's hash covers; verification recomputes it with the same function.
PAYLOAD = r"""
CREATE FUNCTION shared.audit_payload(
    audit_id bigint, changed_at timestamptz, table_schema text, table_name text, operation text, row_key jsonb,
    old_values jsonb, new_values jsonb, db_user text, app_user text
) RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT concat_ws(E'\x1f', audit_id::text,
        to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), table_schema, table_name, operation,
        coalesce(row_key::text, ''), coalesce(old_values::text, ''), coalesce(new_values::text, ''), db_user,
        coalesce(app_user, ''))
$fn$
"""

# SECURITY DEFINER: services write audited tables but have no privilege on the log itself. The advisory lock
# serializes appends, so each row's prev_hash is the row_hash of the row before it.
AUDIT_ROW = r"""
CREATE FUNCTION shared.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    old_j jsonb;
    new_j jsonb;
    key_j jsonb := '{}';
    col text;
    prev bytea;
    rec_id bigint;
    at timestamptz := clock_timestamp();
    actor text := CASE WHEN current_setting('role') = 'none' THEN session_user::text
                       ELSE current_setting('role') END;
    app text := nullif(current_setting('tradedb.app_user', true), '');
BEGIN
    IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW); END IF;
    FOREACH col IN ARRAY TG_ARGV LOOP
        key_j := key_j || jsonb_build_object(col, coalesce(new_j, old_j) -> col);
    END LOOP;
    PERFORM pg_advisory_xact_lock(LOCK_KEY);
    SELECT l.row_hash INTO prev FROM shared.audit_log l ORDER BY l.audit_id DESC LIMIT 1;
    rec_id := nextval('shared.audit_log_audit_id_seq');
    INSERT INTO shared.audit_log (audit_id, changed_at, table_schema, table_name, operation, row_key, old_values,
                                  new_values, db_user, app_user, prev_hash, row_hash)
    VALUES (rec_id, at, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, key_j, old_j, new_j, actor, app, prev,
            sha256(coalesce(prev, '\x'::bytea) || convert_to(shared.audit_payload(
                rec_id, at, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, key_j, old_j, new_j, actor, app), 'UTF8')));
    RETURN NULL;
END
$fn$
""".replace("LOCK_KEY", str(AUDIT_LOCK_KEY))

# Append-only: only members of the log's owner role may change or remove entries (and that is detectable).
GUARD = r"""
CREATE FUNCTION shared.audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'shared.audit_log'::regclass),
                       'MEMBER') THEN
        RAISE EXCEPTION 'shared.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$
"""


def upgrade() -> None:
    op.execute(PAYLOAD)
    op.execute(AUDIT_ROW)
    op.execute(GUARD)
    op.execute("REVOKE ALL ON FUNCTION shared.audit_row() FROM PUBLIC")
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON shared.audit_log"
        " FOR EACH ROW EXECUTE FUNCTION shared.audit_log_guard()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON shared.audit_log"
        " FOR EACH STATEMENT EXECUTE FUNCTION shared.audit_log_guard()"
    )
    for schema, table, keys in AUDITED_TABLES:
        args = ", ".join(f"'{k}'" for k in keys)
        op.execute(
            f'CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON "{schema}"."{table}"'
            f" FOR EACH ROW EXECUTE FUNCTION shared.audit_row({args})"
        )


def downgrade() -> None:
    for schema, table, _ in AUDITED_TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS audit ON "{schema}"."{table}"')
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON shared.audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON shared.audit_log")
    op.execute("DROP FUNCTION IF EXISTS shared.audit_log_guard()")
    op.execute("DROP FUNCTION IF EXISTS shared.audit_row()")
    op.execute(
        "DROP FUNCTION IF EXISTS shared.audit_payload(bigint, timestamptz, text, text, text, jsonb, jsonb, jsonb,"
        " text, text)"
    )
