"""maintenance mode refuses writes in the database; max_concurrent_trades, which nothing honoured, is removed

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 19:00:00

With ``shared.system_config`` ``maintenance_mode`` true, every table of the trading services (execution, risk,
strategies, market data, analytics, notifications) refuses INSERT, UPDATE, DELETE, COPY and TRUNCATE with SQLSTATE
``TD005``, whoever writes; reads go on. ``shared`` (so the mode can be turned off, and the audit ledger and the
event outbox keep working) and ``logging`` are not covered. A session that must write during maintenance (an
operator's repair) sets ``tradedb.maintenance_writes = on``. One statement-level trigger per table: the check is one
primary-key lookup per statement, not per row.

The seeded ``max_concurrent_trades`` was never enforced; per-account limits (``risk_limits``) are where such caps
belong, so the key is removed rather than honoured half-way.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_IN_MAINTENANCE = r"""
CREATE FUNCTION shared.refuse_in_maintenance() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM shared.system_config WHERE key = 'maintenance_mode' AND value = 'true'::jsonb)
       AND current_setting('tradedb.maintenance_writes', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION USING ERRCODE = 'TD005',
            MESSAGE = format('the platform is in maintenance mode: %s.%s is read-only until maintenance_mode is '
                             'turned off (tradedb config set maintenance_mode false)', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$fn$
"""

# Tables, not partitions: a statement on a partitioned table fires the parent's statement triggers.
GUARD_TABLES = r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('execution', 'risk_management', 'strategy_engine', 'data_ingestion', 'analytics',
                            'notification')
          AND c.relkind IN ('r', 'p')
          AND NOT c.relispartition
        ORDER BY 1, 2
    LOOP
        EXECUTE format('CREATE TRIGGER maintenance_mode BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION shared.refuse_in_maintenance()', r.nspname, r.relname);
    END LOOP;
END
$do$
"""

UNGUARD_TABLES = r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT t.tgrelid::regclass AS tbl FROM pg_trigger t
        WHERE t.tgname = 'maintenance_mode' AND t.tgfoid = 'shared.refuse_in_maintenance()'::regprocedure
    LOOP
        EXECUTE format('DROP TRIGGER maintenance_mode ON %s', r.tbl);
    END LOOP;
END
$do$
"""


def upgrade() -> None:
    op.execute(REFUSE_IN_MAINTENANCE)
    op.execute(
        "COMMENT ON FUNCTION shared.refuse_in_maintenance() IS 'Statement trigger: refuses writes while "
        "shared.system_config maintenance_mode is true (SQLSTATE TD005), unless tradedb.maintenance_writes = on'"
    )
    op.execute(GUARD_TABLES)
    op.execute("DELETE FROM shared.system_config WHERE key = 'max_concurrent_trades'")


def downgrade() -> None:
    op.execute(UNGUARD_TABLES)
    op.execute("DROP FUNCTION shared.refuse_in_maintenance()")
    op.execute(
        "INSERT INTO shared.system_config (key, value, description) VALUES ('max_concurrent_trades', '10', "
        "'Upper bound on simultaneously open trades per strategy instance') ON CONFLICT (key) DO NOTHING"
    )
