"""maintenance mode's flag in a one-row table of its own, kept by a trigger on shared.system_config

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 05:15:00

The maintenance guard (0017) read ``shared.system_config``. On a Citus cluster the guard runs on the workers (the
shards keep the tables' triggers), which do not hold the platform's settings: the settings table is audited, and
its audit rows belong on the coordinator. ``shared.maintenance_state`` holds only the flag, has no triggers, and
is what a cluster copies to every node (a reference table); a trigger on ``system_config`` keeps it equal to the
``maintenance_mode`` setting, in the same transaction. On one server nothing changes but where the guard looks.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The value is read first: Citus cannot update a reference table from a query on a table of the coordinator. Not
# SECURITY DEFINER: whoever may write system_config owns (or is above) the flag's table, and Citus refuses a
# transaction that touches a reference table's placements as two different users (a setup's grants, then this).
MIRROR = r"""
CREATE FUNCTION shared.mirror_maintenance_mode() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    wanted boolean := coalesce(
        (SELECT c.value = 'true'::jsonb FROM shared.system_config c WHERE c.key = 'maintenance_mode'), false);
BEGIN
    UPDATE shared.maintenance_state SET active = wanted WHERE active IS DISTINCT FROM wanted;
    RETURN NULL;
END
$fn$
"""

# The guard of 0017 with another test of the flag; OLD_GUARD is the frozen 0017 function, restored by downgrade.
GUARD_TEMPLATE = r"""
CREATE OR REPLACE FUNCTION shared.refuse_in_maintenance() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (FLAG)
       AND current_setting('tradedb.maintenance_writes', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION USING ERRCODE = 'TD005',
            MESSAGE = format('the platform is in maintenance mode: %s.%s is read-only until maintenance_mode is '
                             'turned off (tradedb config set maintenance_mode false)', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$fn$
"""
GUARD = GUARD_TEMPLATE.replace("FLAG", "SELECT 1 FROM shared.maintenance_state WHERE active")
OLD_GUARD = GUARD_TEMPLATE.replace(
    "FLAG", "SELECT 1 FROM shared.system_config WHERE key = 'maintenance_mode' AND value = 'true'::jsonb"
)


def upgrade() -> None:
    op.create_table(
        "maintenance_state",
        sa.Column("id", sa.Boolean(), server_default=sa.true(), nullable=False, comment="Always true: one row"),
        sa.Column("active", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_maintenance_state_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_state")),
        schema="shared",
        comment="Maintenance mode's flag, kept equal to system_config maintenance_mode by a trigger; what the "
        "maintenance guard reads (a Citus cluster copies it to every node).",
    )
    op.execute(
        "INSERT INTO shared.maintenance_state (id, active) SELECT true, coalesce((SELECT value = 'true'::jsonb "
        "FROM shared.system_config WHERE key = 'maintenance_mode'), false)"
    )
    op.execute(MIRROR)
    op.execute(
        "CREATE TRIGGER mirror_maintenance_mode AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shared.system_config "
        "FOR EACH STATEMENT EXECUTE FUNCTION shared.mirror_maintenance_mode()"
    )
    op.execute(GUARD)


def downgrade() -> None:
    op.execute(OLD_GUARD)
    op.execute("DROP TRIGGER mirror_maintenance_mode ON shared.system_config")
    op.execute("DROP FUNCTION shared.mirror_maintenance_mode()")
    op.drop_table("maintenance_state", schema="shared")
