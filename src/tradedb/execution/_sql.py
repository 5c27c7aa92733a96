"""Named SQL of the execution API, shared by the async source and its generated sync twin."""

from tradedb.db.outbox_rules import EMIT_VERSIONED

#: Client order ids are unique per account (migration 0022).
ORDER_BY_CLIENT_ID = "SELECT * FROM execution.orders WHERE account_id = %s AND client_order_id = %s"
ORDER_FOR_UPDATE = "SELECT * FROM execution.orders WHERE order_id = %s FOR UPDATE"
#: On Citus a row is locked only by a statement routed to one node: by its whole key, the account found first.
ORDER_ACCOUNT = "SELECT account_id FROM execution.orders WHERE order_id = %s"
ORDER_OF_ACCOUNT_FOR_UPDATE = "SELECT * FROM execution.orders WHERE account_id = %s AND order_id = %s FOR UPDATE"
#: The account, and its halt if the post-trade check (or a person) halted it.
ACCOUNT_FOR_SHARE = """
SELECT a.is_active, r.halted_at, r.halt_reason FROM execution.accounts a
LEFT JOIN risk_management.account_risk r USING (account_id)
WHERE a.account_id = %s FOR SHARE OF a
"""
SECURITY_EXISTS = "SELECT status FROM shared.securities WHERE security_id = %s"
ACTIVE_LIMITS = """
SELECT limit_type, security_id, limit_value FROM risk_management.risk_limits
WHERE account_id = %s AND is_active AND (security_id IS NULL OR security_id = %s)
ORDER BY limit_type, security_id NULLS LAST
"""
POSITION_QUANTITY = "SELECT quantity FROM execution.positions WHERE account_id = %s AND security_id = %s"
LAST_PRICE = """
SELECT price FROM (
    (SELECT price, ts FROM data_ingestion.market_trades WHERE security_id = %(id)s ORDER BY ts DESC LIMIT 1)
    UNION ALL
    (SELECT close, ts FROM data_ingestion.bars WHERE security_id = %(id)s ORDER BY ts DESC LIMIT 1)
) latest ORDER BY ts DESC LIMIT 1
"""
INSERT_ORDER = """
INSERT INTO execution.orders (client_order_id, account_id, security_id, side, order_type, quantity, limit_price,
    stop_price, time_in_force, expire_at, strategy_instance_id, signal_id)
VALUES (%(client_order_id)s, %(account_id)s, %(security_id)s, %(side)s, %(order_type)s, %(quantity)s,
    %(limit_price)s, %(stop_price)s, %(time_in_force)s, %(expire_at)s, %(strategy_instance_id)s, %(signal_id)s)
ON CONFLICT (account_id, client_order_id) DO NOTHING
RETURNING *
"""
INSERT_EVENT = """
INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason, payload)
VALUES (%s, %s, %s, %s, %s, %s)
"""
#: The order event and the outbox's events in one statement (no extra round trip on the fill path).
INSERT_EVENT_EMIT = f"WITH order_event AS ({INSERT_EVENT.strip()}) {EMIT_VERSIONED}"
INSERT_RISK_EVENT = """
INSERT INTO risk_management.risk_events (account_id, security_id, event_type, severity, message, data)
VALUES (%s, %s, 'order_blocked', 'high', %s, %s)
"""
UPDATE_STATUS = """
UPDATE execution.orders SET status = %s, version = version + 1, updated_at = now(),
    reject_reason = CASE WHEN %s = 'rejected' THEN %s ELSE reject_reason END
WHERE account_id = %s AND order_id = %s RETURNING *
"""
POSITION = "SELECT * FROM execution.positions WHERE account_id = %s AND security_id = %s"
#: One fill, one round trip: the server-side function (migrations 0015, 0022) does what record_fill documents; its
#: row is the fill's, the order's and the position's columns with a column named ``|`` between each, then the flag,
#: then whether the account has a PnL limit (then a post-trade check follows).
RECORD_FILL = """
SELECT (r.fill).*, NULL AS "|", (r.ord).*, NULL AS "|", (r.pos).*, NULL AS "|", r.duplicate, r.pnl_limited
FROM execution.record_fill(%s::text, %s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::timestamptz, %s::text,
    %s::date, %s::boolean, %s::text) r
"""
# --- a batch of fills: locks in the order single fills take them (orders by id, then positions by key) ---
ACCOUNTS_OF_ORDERS = "SELECT order_id, account_id FROM execution.orders WHERE order_id = ANY(%s::bigint[])"
#: Execution ids are unique per account (migration 0022): the batch's are looked up with their orders' accounts.
FILLS_BY_EXECUTION_IDS = """
SELECT f.account_id, f.execution_id, f.order_id, f.quantity, f.price, f.commission
FROM execution.fills f JOIN unnest(%s::text[], %s::text[]) k(account_id, execution_id) USING (account_id, execution_id)
"""
ORDERS_FOR_UPDATE = """
SELECT *, now() AS tx_now FROM execution.orders WHERE order_id = ANY(%s::bigint[]) ORDER BY order_id FOR UPDATE
"""
CREATE_POSITIONS = """
INSERT INTO execution.positions (account_id, security_id)
SELECT * FROM unnest(%s::text[], %s::bigint[]) ORDER BY 1, 2
ON CONFLICT (account_id, security_id) DO NOTHING
"""
POSITIONS_FOR_UPDATE = """
SELECT p.* FROM execution.positions p JOIN unnest(%s::text[], %s::bigint[]) k(account_id, security_id)
    USING (account_id, security_id)
ORDER BY p.account_id, p.security_id FOR UPDATE OF p
"""
# On Citus a batch is applied account by account, each statement routed to the account's node (a lock or a join
# with a list of values is planned there only for one node's rows).
ORDERS_OF_ACCOUNT_FOR_UPDATE = """
SELECT *, now() AS tx_now FROM execution.orders WHERE account_id = %s AND order_id = ANY(%s::bigint[])
ORDER BY order_id FOR UPDATE
"""
POSITIONS_OF_ACCOUNT_FOR_UPDATE = """
SELECT * FROM execution.positions WHERE account_id = %s AND security_id = ANY(%s::bigint[])
ORDER BY security_id FOR UPDATE
"""
RESERVE_FILL_IDS = "SELECT nextval(pg_get_serial_sequence('execution.fills', 'fill_id')) FROM generate_series(1, %s)"
COPY_FILLS = """
COPY execution.fills (fill_id, execution_id, order_id, account_id, security_id, side, quantity, price, commission,
    liquidity, executed_at, settlement_date) FROM STDIN
"""
COPY_ORDER_EVENTS = """
COPY execution.order_events (order_id, account_id, from_status, to_status, reason, payload) FROM STDIN
"""
#: PostgreSQL refuses COPY into a table under row-level security (a scoped service's role): such a batch is COPYed
#: into staging tables of the same columns and inserted from there, so the policies check every row.
RLS_ACTIVE = """
SELECT row_security_active('execution.fills') OR row_security_active('execution.order_events') AS rls
"""
STAGE = """
CREATE TEMP TABLE IF NOT EXISTS tradedb_fills_stage (LIKE execution.fills INCLUDING DEFAULTS)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tradedb_order_events_stage (LIKE execution.order_events INCLUDING DEFAULTS)
    ON COMMIT DELETE ROWS
"""
COPY_FILLS_STAGED = COPY_FILLS.replace("execution.fills", "tradedb_fills_stage")
#: On Citus under row-level security: the shards refuse COPY (and Citus copies an INSERT ... SELECT's rows to
#: them), so such a batch is inserted row by row, in a pipeline.
INSERT_FILL_ROW = """
INSERT INTO execution.fills (fill_id, execution_id, order_id, account_id, security_id, side, quantity, price,
    commission, liquidity, executed_at, settlement_date)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
INSERT_ORDER_EVENT_ROW = """
INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason, payload)
VALUES (%s, %s, %s, %s, %s, %s::jsonb)
"""
COPY_ORDER_EVENTS_STAGED = COPY_ORDER_EVENTS.replace("execution.order_events", "tradedb_order_events_stage")
INSERT_STAGED = """
INSERT INTO execution.fills SELECT * FROM tradedb_fills_stage;
INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason, payload)
SELECT order_id, account_id, from_status, to_status, reason, payload FROM tradedb_order_events_stage
"""
UPDATE_ORDERS_FILLED = """
UPDATE execution.orders o SET filled_quantity = u.filled, avg_fill_price = u.avg, status = u.status,
    version = o.version + u.fills, updated_at = now()
FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::text[], %s::int[]) u(order_id, filled, avg, status, fills)
WHERE o.order_id = u.order_id
"""
UPDATE_ORDERS_OF_ACCOUNT_FILLED = UPDATE_ORDERS_FILLED.replace("WHERE o.", "WHERE o.account_id = %s AND o.")
UPDATE_POSITIONS = """
UPDATE execution.positions p SET quantity = u.quantity, avg_price = u.avg, realized_pnl = u.pnl,
    total_commission = u.fees, opened_at = u.opened_at, version = p.version + u.fills, updated_at = now()
FROM unnest(%s::text[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::timestamptz[],
    %s::int[]) u(account_id, security_id, quantity, avg, pnl, fees, opened_at, fills)
WHERE p.account_id = u.account_id AND p.security_id = u.security_id
"""
UPDATE_POSITIONS_OF_ACCOUNT = UPDATE_POSITIONS.replace("WHERE p.account_id = u.account_id", "WHERE p.account_id = %s")
FILLS_FOR_REPLAY = """
SELECT account_id, security_id, side, quantity, price, commission FROM execution.fills
WHERE (%(account)s::text IS NULL OR account_id = %(account)s)
ORDER BY account_id, security_id, fill_id
"""
FILLS_FOR_POSITION_AT = """
SELECT side, quantity, price, commission FROM execution.fills
WHERE account_id = %s AND security_id = %s AND executed_at <= %s ORDER BY fill_id
"""
POSITIONS = """
SELECT * FROM execution.positions WHERE (%(account)s::text IS NULL OR account_id = %(account)s)
ORDER BY account_id, security_id
"""
ORDERS = """
SELECT * FROM execution.orders
WHERE (%(account)s::text IS NULL OR account_id = %(account)s) AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY order_id DESC LIMIT %(limit)s
"""
