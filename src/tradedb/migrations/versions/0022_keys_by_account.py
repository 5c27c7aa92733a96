"""execution keys that contain the account: unique per account, and a fill's or order event's account is its order's

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 15:00:00

A Citus cluster distributes the execution tables by ``account_id``, and accepts a unique key there only if it
contains that column. The keys change on every server, so one schema holds on both:

- ``orders``: primary key ``(account_id, order_id)``; ``client_order_id`` unique per account (a FIX ClOrdID is
  unique per session and account, not across a firm). Lookups by ``order_id`` alone keep an index of their own.
- ``fills``: primary key ``(account_id, fill_id)``; ``execution_id`` unique per account (an execution belongs to
  one order, so to one account: recording it twice is still caught).
- ``fills`` and ``order_events`` reference their order by ``(account_id, order_id)``: the database now refuses a
  fill or an order event whose account is not its order's (before, only the writers kept them equal).
- ``order_events``: primary key ``(account_id, event_id, ts)``; ``risk_limits``: ``(account_id, limit_id)``, with an
  index on ``limit_id`` for removals by id.

``execution.record_fill`` looks the execution id up within the order's account and takes the account as an
optional last argument (``p_account_id``): given, the order must belong to it (TD001 otherwise); not given, it is
looked up before the order is locked by its whole key. It also returns whether the account has a PnL limit.
Calls with the nine arguments of 0015 work unchanged.
The downgrade fails, naming the key, if two accounts share a client order id or an execution id by then.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

E = "execution"

# record_fill of 0015 (OLD) and of this revision (NEW), from one text: they differ only where marked by {...}.
RECORD_FILL_TEMPLATE = r"""
CREATE FUNCTION execution.record_fill(
    p_execution_id text, p_order_id bigint, p_quantity numeric, p_price numeric, p_commission numeric,
    p_executed_at timestamptz, p_liquidity text, p_settlement_date date, p_emit boolean{ACCOUNT_ARG}
) RETURNS TABLE (duplicate boolean, fill execution.fills, ord execution.orders, pos execution.positions{PNL_COLUMN})
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    o execution.orders;
    f execution.fills;
    p execution.positions;
    from_status text;
    signed numeric;
    held numeric;
    closing numeric;
    n_qty numeric;
    n_avg numeric;
    n_pnl numeric;
    n_fees numeric;
    filled numeric;
    pos_version integer;{ACCOUNT_VAR}
BEGIN
    -- Lock order: the order, then the position (as every writer of fills does), so fills never deadlock.{LOCK_ORDER}
    SELECT * INTO f FROM execution.fills WHERE {ACCOUNT_KEY}execution_id = p_execution_id;
    IF FOUND THEN
        IF (f.order_id, f.quantity, f.price, f.commission)
                IS DISTINCT FROM (p_order_id, p_quantity, p_price, p_commission) THEN
            RAISE EXCEPTION 'execution_id % was already recorded with different content (fill %)',
                quote_literal(p_execution_id), f.fill_id USING ERRCODE = 'TD004';
        END IF;
        SELECT * INTO p FROM execution.positions WHERE account_id = o.account_id AND security_id = o.security_id;
        RETURN QUERY SELECT true, f, o, p{PNL_VALUE};
        RETURN;
    END IF;
    IF o.status NOT IN ('pending', 'submitted', 'partially_filled') THEN
        RAISE EXCEPTION 'order % is %: it cannot be filled', p_order_id, o.status USING ERRCODE = 'TD003';
    END IF;
    IF p_quantity > o.quantity - o.filled_quantity THEN
        RAISE EXCEPTION 'fill of % exceeds the remaining % of order %', p_quantity, o.quantity - o.filled_quantity,
            p_order_id USING ERRCODE = 'TD002';
    END IF;
    SELECT * INTO p FROM execution.positions
    WHERE account_id = o.account_id AND security_id = o.security_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO execution.positions (account_id, security_id) VALUES (o.account_id, o.security_id)
        ON CONFLICT (account_id, security_id) DO NOTHING;
        SELECT * INTO p FROM execution.positions
        WHERE account_id = o.account_id AND security_id = o.security_id FOR UPDATE;
    END IF;

    -- The position after the fill: average cost on increases, realized PnL on reductions and flips.
    signed := CASE WHEN o.side = 'buy' THEN p_quantity ELSE -p_quantity END;
    held := p.quantity;
    n_pnl := p.realized_pnl - p_commission;
    n_fees := p.total_commission + p_commission;
    IF held = 0 OR (held > 0) = (signed > 0) THEN
        n_qty := held + signed;
        n_avg := execution.fill_average(abs(held), p.avg_price, p_quantity, p_price);
    ELSE
        closing := least(p_quantity, abs(held));
        n_pnl := n_pnl + closing * (p_price - coalesce(p.avg_price, 0)) * sign(held);
        IF p_quantity = closing THEN
            n_qty := held + signed;
            n_avg := CASE WHEN n_qty <> 0 THEN p.avg_price END;
        ELSE  -- through zero: the rest opens a new position at the fill price
            n_qty := CASE WHEN signed > 0 THEN p_quantity - closing ELSE closing - p_quantity END;
            n_avg := execution.fill_average(0, NULL, 1, p_price);
        END IF;
    END IF;

    INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, price, commission,
        liquidity, executed_at, settlement_date)
    VALUES (p_execution_id, p_order_id, o.account_id, o.security_id, o.side, p_quantity, p_price, p_commission,
        p_liquidity, coalesce(p_executed_at, now()), p_settlement_date)
    RETURNING * INTO f;
    from_status := o.status;
    filled := o.filled_quantity + p_quantity;
    UPDATE execution.orders SET filled_quantity = filled,
        avg_fill_price = execution.fill_average(o.filled_quantity, o.avg_fill_price, p_quantity, p_price),
        status = CASE WHEN filled = o.quantity THEN 'filled' ELSE 'partially_filled' END,
        version = version + 1, updated_at = now()
    WHERE {ACCOUNT_KEY}order_id = p_order_id RETURNING * INTO o;
    INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason, payload)
    VALUES (p_order_id, o.account_id, from_status, o.status, 'fill', jsonb_build_object(
        'execution_id', p_execution_id, 'quantity', p_quantity::text, 'price', p_price::text));
    pos_version := p.version;
    UPDATE execution.positions SET quantity = n_qty, avg_price = n_avg, realized_pnl = n_pnl,
        total_commission = n_fees,
        opened_at = CASE WHEN n_qty = 0 THEN NULL WHEN quantity = 0 OR sign(quantity) <> sign(n_qty) THEN f.executed_at
                         ELSE opened_at END,
        updated_at = now(), version = version + 1
    WHERE account_id = o.account_id AND security_id = o.security_id RETURNING * INTO p;
    IF p_emit THEN
        PERFORM shared.emit_versioned(jsonb_build_array(
            jsonb_build_array('order', o.order_id::text, 'fill.recorded', jsonb_build_object(
                'order_id', o.order_id, 'client_order_id', o.client_order_id, 'account_id', o.account_id,
                'security_id', o.security_id, 'side', o.side, 'order_type', o.order_type,
                'quantity', o.quantity::text, 'limit_price', o.limit_price::text, 'stop_price', o.stop_price::text,
                'status', o.status, 'filled_quantity', o.filled_quantity::text,
                'avg_fill_price', o.avg_fill_price::text, 'version', o.version, 'from_status', from_status,
                'fill_id', f.fill_id, 'execution_id', f.execution_id, 'fill_quantity', f.quantity::text,
                'fill_price', f.price::text, 'commission', f.commission::text,
                'executed_at', to_char(f.executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
                o.version),
            jsonb_build_array('position', o.account_id || ':' || o.security_id, 'position.changed', jsonb_build_object(
                'account_id', o.account_id, 'security_id', o.security_id, 'quantity', n_qty::text,
                'avg_price', n_avg::text, 'realized_pnl', n_pnl::text, 'total_commission', n_fees::text,
                'fill_id', f.fill_id),
                pos_version)));
    END IF;
    RETURN QUERY SELECT false, f, o, p{PNL_VALUE};
END
$fn$
"""
OLD_LOCK_ORDER = """
    SELECT * INTO o FROM execution.orders WHERE order_id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown order %', p_order_id USING ERRCODE = 'TD001';
    END IF;"""
# The order is locked by its whole key: a router (Citus) locks a row only where the account names its node, so an
# order given without its account has the account looked up first (a read, then the lock).
NEW_LOCK_ORDER = """
    v_account := coalesce(p_account_id, (SELECT account_id FROM execution.orders WHERE order_id = p_order_id));
    SELECT * INTO o FROM execution.orders WHERE account_id = v_account AND order_id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown order %', p_order_id || coalesce(' of account ' || p_account_id, '')
            USING ERRCODE = 'TD001';
    END IF;"""


# Whether the account has a PnL limit (the caller's post-trade check follows then), asked here rather than by the
# caller's statement around the call: a router (Citus) plans no subquery correlated with a function's result.
PNL_LIMITED = """, EXISTS (SELECT 1 FROM risk_management.risk_limits l WHERE l.account_id = o.account_id
        AND l.is_active AND l.limit_type IN ('max_daily_loss', 'max_drawdown'))"""


def _record_fill(new: bool) -> str:
    parts = {
        "ACCOUNT_ARG": ", p_account_id text DEFAULT NULL" if new else "",
        "ACCOUNT_VAR": "\n    v_account text;" if new else "",
        "PNL_COLUMN": ", pnl_limited boolean" if new else "",
        "PNL_VALUE": PNL_LIMITED if new else "",
        "LOCK_ORDER": NEW_LOCK_ORDER if new else OLD_LOCK_ORDER,
        "ACCOUNT_KEY": "account_id = o.account_id AND " if new else "",
    }
    text = RECORD_FILL_TEMPLATE
    for name, value in parts.items():
        text = text.replace("{" + name + "}", value)
    return text


OLD_SIGNATURE = "execution.record_fill(text, bigint, numeric, numeric, numeric, timestamptz, text, date, boolean)"
NEW_SIGNATURE = OLD_SIGNATURE.replace("boolean)", "boolean, text)")


#: (table, the key before, the key after): each replaced by upgrade, and put back by downgrade.
KEYS = (
    (f"{E}.orders", "pk_orders PRIMARY KEY (order_id)", "pk_orders PRIMARY KEY (account_id, order_id)"),
    (
        f"{E}.orders",
        "uq_orders_client_order_id UNIQUE (client_order_id)",
        "uq_orders_account_id_client_order_id UNIQUE (account_id, client_order_id)",
    ),
    (f"{E}.fills", "pk_fills PRIMARY KEY (fill_id)", "pk_fills PRIMARY KEY (account_id, fill_id)"),
    (
        f"{E}.fills",
        "uq_fills_execution_id UNIQUE (execution_id)",
        "uq_fills_account_id_execution_id UNIQUE (account_id, execution_id)",
    ),
    (
        f"{E}.order_events",
        "pk_order_events PRIMARY KEY (event_id, ts)",
        "pk_order_events PRIMARY KEY (account_id, event_id, ts)",
    ),
    (
        "risk_management.risk_limits",
        "pk_risk_limits PRIMARY KEY (limit_id)",
        "pk_risk_limits PRIMARY KEY (account_id, limit_id)",
    ),
)
#: The foreign keys on the orders' key: dropped before it changes, made again on the new one after.
FOREIGN_KEYS = tuple(
    (
        f"{E}.{table}",
        f"fk_{table}_order_id_orders FOREIGN KEY (order_id) REFERENCES {E}.orders (order_id)",
        f"fk_{table}_account_id_order_id_orders FOREIGN KEY (account_id, order_id) "
        f"REFERENCES {E}.orders (account_id, order_id)",
    )
    for table in ("fills", "order_events")
)


def _rekey(upgrade: bool) -> None:
    """Replace each key of ``KEYS`` (upgrade: the one before with the one after; downgrade: the reverse), the
    foreign keys on the orders' key dropped first and made again last."""

    def swap(before: str, after: str) -> tuple[str, str]:
        return (before, after) if upgrade else (after, before)

    foreign = [(table, *swap(before, after)) for table, before, after in FOREIGN_KEYS]
    for table, dropped, _ in foreign:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {dropped.split()[0]}")
    for table, before, after in KEYS:
        dropped, added = swap(before, after)
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {dropped.split()[0]}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {added}")
    for table, _, added in foreign:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {added}")


def upgrade() -> None:
    _rekey(upgrade=True)
    op.create_index("ix_orders_order_id", "orders", ["order_id"], schema=E)
    op.create_index("ix_risk_limits_limit_id", "risk_limits", ["limit_id"], schema="risk_management")
    op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
    op.execute(_record_fill(new=True))


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {NEW_SIGNATURE}")
    op.execute(_record_fill(new=False))
    op.drop_index("ix_risk_limits_limit_id", table_name="risk_limits", schema="risk_management")
    op.drop_index("ix_orders_order_id", table_name="orders", schema=E)
    _rekey(upgrade=False)
