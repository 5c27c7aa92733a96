"""post-trade risk: each account's risk state and halt, limits that halt, risk events people acknowledge and resolve

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 18:45:00

``risk_management.account_risk`` keeps what ``max_daily_loss`` and ``max_drawdown`` are measured from (the PnL at
the session start and its high-water mark), the last check, and the account's halt. A limit with
``halt_on_breach`` halts its account when breached. Risk events record who acknowledged and resolved them.

The execution role records fills, and the check that follows a fill writes its risk events and the account's risk
state: the roles that may record fills (found here: role names depend on the deployment's prefix) may insert risk
events and write the risk state. ``account_risk`` is a tenant table: it gets ``risk_limits``' row-level security.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

R = "risk_management"
TS = sa.DateTime(timezone=True)

# Whoever may insert fills may write what the post-trade check writes; account_risk gets the policies of
# risk_limits (the tenant condition and the exemptions, for the same roles).
GRANTS_AND_POLICIES = r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT a.grantee::regrole AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'execution.fills'::regclass AND a.privilege_type = 'INSERT' AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE format('GRANT INSERT ON risk_management.risk_events TO %s', r.grantee);
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE risk_management.risk_events_event_id_seq TO %s', r.grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON risk_management.account_risk TO %s', r.grantee);
    END LOOP;
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = 'risk_management.risk_limits'::regclass) THEN
        ALTER TABLE risk_management.account_risk ENABLE ROW LEVEL SECURITY;
    END IF;
    FOR r IN
        SELECT p.polname, pg_get_expr(p.polqual, p.polrelid) AS qual,
               coalesce(pg_get_expr(p.polwithcheck, p.polrelid), pg_get_expr(p.polqual, p.polrelid)) AS checked,
               CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
                    ELSE (SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE oid = ANY(p.polroles))
               END AS roles
        FROM pg_policy p WHERE p.polrelid = 'risk_management.risk_limits'::regclass
    LOOP
        EXECUTE format('CREATE POLICY %I ON risk_management.account_risk TO %s USING (%s) WITH CHECK (%s)',
                       r.polname, r.roles, r.qual, r.checked);
    END LOOP;
END
$do$
"""


def upgrade() -> None:
    op.add_column(
        "risk_limits",
        sa.Column(
            "halt_on_breach",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="A breach halts the account (only reducing orders pass)",
        ),
        schema=R,
    )
    op.create_table_comment(
        "risk_limits",
        "Limits per account, account-wide (security_id NULL) or per security: quantities and notionals are checked "
        "before an order, max_daily_loss and max_drawdown after every fill and mark-to-market.",
        existing_comment="Pre-trade limits per account, account-wide (security_id NULL) or per security.",
        schema=R,
    )
    for name, comment in (
        ("acknowledged_at", None),
        ("acknowledged_by", None),
        ("resolved_by", None),
        ("note", "What the person who acknowledged or resolved it said"),
    ):
        kind = TS if name.endswith("_at") else sa.Text()
        op.add_column("risk_events", sa.Column(name, kind, nullable=True, comment=comment), schema=R)
    op.create_table(
        "account_risk",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False, comment="Trading day (UTC) the session fields refer to"),
        sa.Column(
            "session_start_pnl",
            sa.Numeric(),
            nullable=False,
            comment="PnL (realized + unrealized, net of commissions) when the session began",
        ),
        sa.Column("high_water_pnl", sa.Numeric(), nullable=False, comment="Highest PnL seen by a check"),
        sa.Column("pnl", sa.Numeric(), nullable=False, comment="PnL at the last check, in the account currency"),
        sa.Column("checked_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("halted_at", TS, nullable=True, comment="Set: only reducing orders are accepted"),
        sa.Column("halt_reason", sa.Text(), nullable=True),
        sa.Column("halted_by", sa.Text(), nullable=True, comment="The limit or the person that halted it"),
        sa.CheckConstraint("(halted_at IS NULL) = (halt_reason IS NULL)", name=op.f("ck_account_risk_halt_has_reason")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["execution.accounts.account_id"], name=op.f("fk_account_risk_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_risk")),
        schema=R,
        comment="Each account's post-trade risk state: PnL at the session start and its high-water mark (what "
        "max_daily_loss and max_drawdown are measured from), the last check, and a halt.",
    )
    op.execute(GRANTS_AND_POLICIES)


def downgrade() -> None:
    op.drop_table("account_risk", schema=R)
    for name in ("note", "resolved_by", "acknowledged_by", "acknowledged_at"):
        op.drop_column("risk_events", name, schema=R)
    op.create_table_comment(
        "risk_limits",
        "Pre-trade limits per account, account-wide (security_id NULL) or per security.",
        existing_comment="Limits per account, account-wide (security_id NULL) or per security: quantities and "
        "notionals are checked before an order, max_daily_loss and max_drawdown after every fill and mark-to-market.",
        schema=R,
    )
    op.drop_column("risk_limits", "halt_on_breach", schema=R)
    # Revoke what upgrade granted on risk events (the grants on account_risk went with the table).
    op.execute(
        r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT a.grantee::regrole AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'execution.fills'::regclass AND a.privilege_type = 'INSERT' AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE format('REVOKE INSERT ON risk_management.risk_events FROM %s', r.grantee);
        EXECUTE format('REVOKE USAGE ON SEQUENCE risk_management.risk_events_event_id_seq FROM %s', r.grantee);
    END LOOP;
END
$do$
"""
    )
