"""Named SQL of the execution API, shared by the async source and its generated sync twin."""

from tradedb.db.outbox_rules import EMIT_VERSIONED

ORDER_BY_CLIENT_ID = "SELECT * FROM execution.orders WHERE client_order_id = %s"
ORDER_FOR_UPDATE = "SELECT * FROM execution.orders WHERE order_id = %s FOR UPDATE"
ACCOUNT_FOR_SHARE = "SELECT is_active FROM execution.accounts WHERE account_id = %s FOR SHARE"
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
ON CONFLICT (client_order_id) DO NOTHING
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
WHERE order_id = %s RETURNING *
"""
FILL_BY_EXECUTION_ID = "SELECT * FROM execution.fills WHERE execution_id = %s"
POSITION = "SELECT * FROM execution.positions WHERE account_id = %s AND security_id = %s"
POSITION_FOR_UPDATE = "SELECT * FROM execution.positions WHERE account_id = %s AND security_id = %s FOR UPDATE"
CREATE_POSITION = """
INSERT INTO execution.positions (account_id, security_id) VALUES (%s, %s)
ON CONFLICT (account_id, security_id) DO NOTHING
"""
INSERT_FILL = """
INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, price, commission,
    liquidity, executed_at, settlement_date)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING *
"""
UPDATE_ORDER_FILLED = """
UPDATE execution.orders SET filled_quantity = %s, avg_fill_price = %s, status = %s, version = version + 1,
    updated_at = now()
WHERE order_id = %s RETURNING *
"""
UPDATE_POSITION = """
UPDATE execution.positions SET quantity = %s, avg_price = %s, realized_pnl = %s, total_commission = %s,
    opened_at = CASE WHEN %s = 0 THEN NULL WHEN quantity = 0 OR sign(quantity) <> sign(%s) THEN %s
                     ELSE opened_at END,
    updated_at = now(), version = version + 1
WHERE account_id = %s AND security_id = %s RETURNING *
"""
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
STAGE_FILLS = """
CREATE TEMP TABLE tradedb_fill_stage (execution_id text, order_id bigint, quantity numeric, price numeric,
    commission numeric) ON COMMIT DROP
"""
STAGED_DUPLICATES = """
SELECT f.execution_id, f.order_id, f.quantity, f.price, f.commission
FROM tradedb_fill_stage s JOIN execution.fills f USING (execution_id)
"""
