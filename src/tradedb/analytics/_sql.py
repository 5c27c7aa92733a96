"""Named SQL of the analytics API."""

#: The positions a mark-to-market did not value any more (closed, or gone) leave the snapshot.
DROP_STALE = """
DELETE FROM analytics.portfolio_summary WHERE account_id = %s AND NOT (security_id = ANY(%s::bigint[]))
"""
SNAPSHOT = """
INSERT INTO analytics.portfolio_summary (account_id, security_id, quantity, market_value, unrealized_pnl,
    realized_pnl, as_of)
SELECT %(account)s, * FROM unnest(%(security)s::bigint[], %(quantity)s::numeric[], %(value)s::numeric[],
    %(unrealized)s::numeric[], %(realized)s::numeric[], %(as_of)s::timestamptz[])
ON CONFLICT (account_id, security_id) DO UPDATE SET quantity = EXCLUDED.quantity,
    market_value = EXCLUDED.market_value, unrealized_pnl = EXCLUDED.unrealized_pnl,
    realized_pnl = EXCLUDED.realized_pnl, as_of = EXCLUDED.as_of
"""
PORTFOLIO = """
SELECT p.*, s.symbol, s.currency FROM analytics.portfolio_summary p JOIN shared.securities s USING (security_id)
WHERE (%(account)s::text IS NULL OR p.account_id = %(account)s)
ORDER BY p.account_id, p.security_id
"""
ACCOUNT = "SELECT account_id, base_currency, capital, now() AS tx_now FROM execution.accounts WHERE account_id = %s"
FILLS = """
SELECT security_id, side, quantity, price, commission, (executed_at AT TIME ZONE 'UTC')::date AS day
FROM execution.fills WHERE account_id = %s AND executed_at < (%s::date + 1)::timestamp AT TIME ZONE 'UTC'
ORDER BY fill_id
"""
#: A security's close of each day: the newest bar close or trade at or before the day's end (UTC). One statement
#: per security (sent together): filtered by one security, it goes whole to one shard on Citus.
CLOSES = """
SELECT %(security_id)s::bigint AS security_id, d.day::date AS day, c.price
FROM generate_series(%(first)s::timestamp, %(last)s::timestamp, interval '1 day') d(day)
CROSS JOIN LATERAL (SELECT (d.day + interval '1 day') AT TIME ZONE 'UTC' AS day_end) e
LEFT JOIN LATERAL (
    SELECT price FROM (
        (SELECT b.close AS price, b.ts FROM data_ingestion.bars b
         WHERE b.security_id = %(security_id)s AND b.ts < e.day_end ORDER BY b.ts DESC LIMIT 1)
        UNION ALL
        (SELECT t.price, t.ts FROM data_ingestion.market_trades t
         WHERE t.security_id = %(security_id)s AND t.ts < e.day_end ORDER BY t.ts DESC LIMIT 1)
    ) latest ORDER BY ts DESC LIMIT 1
) c ON true
"""
SAVE_PERFORMANCE = """
INSERT INTO analytics.performance_metrics (account_id, date, total_return, daily_return, sharpe_ratio,
    sortino_ratio, max_drawdown, volatility, win_rate, trade_count, pnl, equity, turnover)
SELECT %(account)s, * FROM unnest(%(date)s::date[], %(total_return)s::numeric[], %(daily_return)s::numeric[],
    %(sharpe_ratio)s::float8[], %(sortino_ratio)s::float8[], %(max_drawdown)s::float8[], %(volatility)s::float8[],
    %(win_rate)s::float8[], %(trade_count)s::int[], %(pnl)s::numeric[], %(equity)s::numeric[],
    %(turnover)s::numeric[])
ON CONFLICT (account_id, instance_id, date) DO UPDATE SET total_return = EXCLUDED.total_return,
    daily_return = EXCLUDED.daily_return, sharpe_ratio = EXCLUDED.sharpe_ratio,
    sortino_ratio = EXCLUDED.sortino_ratio, max_drawdown = EXCLUDED.max_drawdown, volatility = EXCLUDED.volatility,
    win_rate = EXCLUDED.win_rate, trade_count = EXCLUDED.trade_count, pnl = EXCLUDED.pnl, equity = EXCLUDED.equity,
    turnover = EXCLUDED.turnover
"""
PERFORMANCE = """
SELECT * FROM analytics.performance_metrics
WHERE account_id = %(account)s AND (%(start)s::date IS NULL OR date >= %(start)s)
  AND (%(end)s::date IS NULL OR date <= %(end)s)
ORDER BY date
"""
#: Accounts whose daily performance the scheduled flow computes: those with capital and fills.
ACCOUNTS_WITH_CAPITAL = """
SELECT a.account_id FROM execution.accounts a
WHERE a.capital IS NOT NULL AND EXISTS (SELECT 1 FROM execution.fills f WHERE f.account_id = a.account_id)
ORDER BY 1
"""
