"""Named SQL of the risk API."""

ACCOUNT = "SELECT account_id, base_currency, now() AS tx_now FROM execution.accounts WHERE account_id = %s"
SECURITY = "SELECT 1 FROM shared.securities WHERE security_id = %s"
#: The account, locked for its check: checks of one account run one at a time (the state they advance is read,
#: then written). Statements after this one see what the check before committed.
ACCOUNT_LOCKED = """
SELECT account_id, base_currency, now() AS tx_now,
    pg_advisory_xact_lock(hashtextextended('tradedb.risk ' || account_id, 0))::text AS locked
FROM execution.accounts WHERE account_id = %s
"""
STATE = "SELECT * FROM risk_management.account_risk WHERE account_id = %s"
#: The newest of a security's last quote mid, last trade and last bar close (``{id}``: the security's id).
_LATEST_PRICE = """
    SELECT price, ts FROM (
        (SELECT (q.bid + q.ask) / 2 AS price, q.ts FROM data_ingestion.last_quotes q
         WHERE q.security_id = {id} AND q.bid > 0 AND q.ask > 0 ORDER BY q.ts DESC LIMIT 1)
        UNION ALL
        (SELECT t.price, t.ts FROM data_ingestion.market_trades t
         WHERE t.security_id = {id} ORDER BY t.ts DESC LIMIT 1)
        UNION ALL
        (SELECT b.close, b.ts FROM data_ingestion.bars b WHERE b.security_id = {id} ORDER BY b.ts DESC LIMIT 1)
    ) latest ORDER BY ts DESC LIMIT 1
"""
_POSITIONS = """
SELECT p.security_id, p.quantity, p.avg_price, p.realized_pnl, s.currency{marked}
FROM execution.positions p JOIN shared.securities s USING (security_id){join}
WHERE p.account_id = %s
ORDER BY p.security_id
"""
#: Each position with its mark, the newest price of its security.
POSITIONS_MARKED = _POSITIONS.format(
    marked=", m.price AS mark, m.ts AS marked_at",
    join=f"\nLEFT JOIN LATERAL ({_LATEST_PRICE.format(id='p.security_id')}) m ON true",
)
#: On Citus, where the market data is distributed: the positions, then each one's mark (MARK, a single-shard
#: statement per security, all sent in one round trip).
POSITIONS = _POSITIONS.format(marked="", join="")
MARK = _LATEST_PRICE.format(id="%(security_id)s")
PNL_LIMITS = """
SELECT * FROM risk_management.risk_limits
WHERE account_id = %s AND security_id IS NULL AND limit_type IN ('max_daily_loss', 'max_drawdown') AND is_active
ORDER BY limit_id
"""
#: The breaches that already have an open event (one event per breach: per limit, and per session for daily loss).
OPEN_BREACHES = """
SELECT data->>'breach' AS breach FROM risk_management.risk_events
WHERE account_id = %s AND event_type = 'limit_breach' AND resolved_at IS NULL
"""
SAVE_STATE = """
INSERT INTO risk_management.account_risk (account_id, session_date, session_start_pnl, high_water_pnl, pnl,
    checked_at)
VALUES (%(account)s, %(session_date)s, %(start)s, %(high)s, %(pnl)s, now())
ON CONFLICT (account_id) DO UPDATE SET session_date = EXCLUDED.session_date,
    session_start_pnl = EXCLUDED.session_start_pnl, high_water_pnl = EXCLUDED.high_water_pnl, pnl = EXCLUDED.pnl,
    checked_at = EXCLUDED.checked_at
RETURNING *
"""
HALT = """
UPDATE risk_management.account_risk SET halted_at = now(), halt_reason = %(reason)s, halted_by = %(by)s
WHERE account_id = %(account)s AND halted_at IS NULL
RETURNING *
"""
RESUME = """
UPDATE risk_management.account_risk SET halted_at = NULL, halt_reason = NULL, halted_by = NULL
WHERE account_id = %s AND halted_at IS NOT NULL
RETURNING *
"""
INSERT_EVENT = """
INSERT INTO risk_management.risk_events (account_id, security_id, event_type, severity, message, data)
VALUES (%(account)s, %(security)s, %(type)s, %(severity)s, %(message)s, %(data)s)
RETURNING *
"""
EVENTS = """
SELECT * FROM risk_management.risk_events
WHERE (%(account)s::text IS NULL OR account_id = %(account)s) AND (NOT %(open)s OR resolved_at IS NULL)
  AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
ORDER BY ts DESC, event_id DESC LIMIT %(limit)s
"""
EVENT_FOR_UPDATE = "SELECT * FROM risk_management.risk_events WHERE event_id = %s FOR UPDATE"
ACKNOWLEDGE = """
UPDATE risk_management.risk_events SET acknowledged_at = now(), acknowledged_by = %(by)s,
    note = coalesce(%(note)s, note)
WHERE event_id = %(event)s RETURNING *
"""
RESOLVE = """
UPDATE risk_management.risk_events SET resolved_at = greatest(now(), ts), resolved_by = %(by)s,
    acknowledged_at = coalesce(acknowledged_at, greatest(now(), ts)),
    acknowledged_by = coalesce(acknowledged_by, %(by)s),
    note = coalesce(%(note)s, note)
WHERE event_id = %(event)s RETURNING *
"""
LIMITS = """
SELECT * FROM risk_management.risk_limits
WHERE (%(account)s::text IS NULL OR account_id = %(account)s) AND (%(all)s OR is_active)
ORDER BY account_id, security_id NULLS FIRST, limit_type
"""
SET_LIMIT = """
INSERT INTO risk_management.risk_limits (account_id, security_id, limit_type, limit_value, halt_on_breach,
    updated_at)
VALUES (%(account_id)s, %(security_id)s, %(limit_type)s, %(limit_value)s, %(halt_on_breach)s, now())
ON CONFLICT (account_id, security_id, limit_type) DO UPDATE SET limit_value = EXCLUDED.limit_value,
    halt_on_breach = EXCLUDED.halt_on_breach, is_active = true, updated_at = EXCLUDED.updated_at
RETURNING *
"""
REMOVE_LIMIT = "DELETE FROM risk_management.risk_limits WHERE limit_id = %s RETURNING *"
#: Accounts a mark-to-market checks: those with positions or PnL limits.
ACCOUNTS_TO_MARK = """
SELECT account_id FROM execution.positions UNION
SELECT account_id FROM risk_management.risk_limits WHERE limit_type IN ('max_daily_loss', 'max_drawdown') AND is_active
ORDER BY 1
"""
#: Whether fills of an account are followed by a check (it has an active PnL limit).
PNL_LIMITED = """
SELECT DISTINCT account_id FROM risk_management.risk_limits
WHERE account_id = ANY(%s::text[]) AND limit_type IN ('max_daily_loss', 'max_drawdown') AND is_active
"""
