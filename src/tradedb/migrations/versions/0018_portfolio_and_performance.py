"""portfolio and performance: an account's capital, daily PnL, equity and turnover, and marks that check risk

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 19:30:00

Returns are measured on an account's ``capital`` (its starting equity in the base currency). Daily performance
rows gain the day's PnL, the closing equity and the turnover. A mark-to-market (the analytics service) runs the
post-trade risk check, so the roles that write portfolio snapshots (found here: role names depend on the
deployment's prefix) may write what that check writes, as migration 0016 let the execution role.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

A = "analytics"

GRANTS = r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT a.grantee::regrole AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'analytics.portfolio_summary'::regclass AND a.privilege_type = 'INSERT'
          AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE format('GRANT INSERT ON risk_management.risk_events TO %s', r.grantee);
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE risk_management.risk_events_event_id_seq TO %s', r.grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON risk_management.account_risk TO %s', r.grantee);
    END LOOP;
END
$do$
"""

REVOKES = r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT a.grantee::regrole AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'analytics.portfolio_summary'::regclass AND a.privilege_type = 'INSERT'
          AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE format('REVOKE INSERT ON risk_management.risk_events FROM %s', r.grantee);
        EXECUTE format('REVOKE USAGE, SELECT ON SEQUENCE risk_management.risk_events_event_id_seq FROM %s', r.grantee);
        EXECUTE format('REVOKE INSERT, UPDATE ON risk_management.account_risk FROM %s', r.grantee);
    END LOOP;
END
$do$
"""


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "capital",
            sa.Numeric(),
            nullable=True,
            comment="Equity the account started with, in its base currency (returns are measured on it)",
        ),
        schema="execution",
    )
    op.create_check_constraint(
        op.f("ck_accounts_capital_positive"), "accounts", "capital IS NULL OR capital > 0", schema="execution"
    )
    for name, comment in (
        ("pnl", "PnL of the day (realized + change in unrealized)"),
        ("equity", "Equity at the day's close (capital + PnL)"),
        ("turnover", "Notional traded that day / equity before it"),
    ):
        op.add_column("performance_metrics", sa.Column(name, sa.Numeric(), nullable=True, comment=comment), schema=A)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(REVOKES)
    for name in ("turnover", "equity", "pnl"):
        op.drop_column("performance_metrics", name, schema=A)
    op.drop_constraint(op.f("ck_accounts_capital_positive"), "accounts", schema="execution", type_="check")
    op.drop_column("accounts", "capital", schema="execution")
