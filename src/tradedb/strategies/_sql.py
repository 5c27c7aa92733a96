"""The SQL of strategies and backtests."""

from __future__ import annotations

from psycopg import sql

S = "strategy_engine"

STRATEGY_BY_ID = "SELECT * FROM strategy_engine.strategies WHERE strategy_id = %s"
STRATEGY_BY_NAME = """
SELECT * FROM strategy_engine.strategies WHERE name = %s AND (%s::text IS NULL OR version = %s)
ORDER BY strategy_id DESC LIMIT 1
"""
STRATEGIES = """
SELECT s.*, (SELECT count(*) FROM strategy_engine.backtest_runs r
             WHERE r.strategy_id = s.strategy_id AND r.status = 'completed') AS runs
FROM strategy_engine.strategies s
WHERE (%(search)s::text IS NULL OR s.name ILIKE %(search)s ESCAPE '\\' OR s.description ILIKE %(search)s ESCAPE '\\')
  AND (%(active)s::boolean IS NULL OR s.is_active = %(active)s)
ORDER BY s.name, s.strategy_id
"""
INSERT_STRATEGY = """
INSERT INTO strategy_engine.strategies (name, version, strategy_type, description, code_reference, base_configuration)
VALUES (%(name)s, %(version)s, %(strategy_type)s, %(description)s, %(code_reference)s, %(base_configuration)s)
ON CONFLICT (name, version) DO NOTHING
RETURNING *
"""
PARAMETERS = """
SELECT * FROM strategy_engine.strategy_parameters WHERE strategy_id = %s ORDER BY display_order, name
"""
INSERT_PARAMETER = """
INSERT INTO strategy_engine.strategy_parameters
    (strategy_id, name, param_type, is_required, default_value, min_value, max_value, step, allowed_values,
     is_optimizable, display_order, description)
VALUES (%(strategy_id)s, %(name)s, %(param_type)s, %(is_required)s, %(default_value)s, %(min_value)s,
        %(max_value)s, %(step)s, %(allowed_values)s, %(is_optimizable)s, %(display_order)s, %(description)s)
"""
SET_ACTIVE = "UPDATE strategy_engine.strategies SET is_active = %s, updated_at = now() WHERE strategy_id = %s"

INSERT_INSTANCE = """
INSERT INTO strategy_engine.strategy_instances (strategy_id, name, account_id, parameters)
VALUES (%s, %s, %s, %s)
RETURNING *
"""
INSTANCE = "SELECT * FROM strategy_engine.strategy_instances WHERE instance_id = %s"
INSTANCE_FOR_UPDATE = "SELECT * FROM strategy_engine.strategy_instances WHERE instance_id = %s FOR UPDATE"
INSTANCES = """
SELECT * FROM strategy_engine.strategy_instances
WHERE (%(strategy_id)s::bigint IS NULL OR strategy_id = %(strategy_id)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY instance_id
"""
UPDATE_INSTANCE_STATUS = """
UPDATE strategy_engine.strategy_instances
SET status = %(status)s, updated_at = now(),
    started_at = CASE WHEN %(status)s = 'running' AND started_at IS NULL THEN now() ELSE started_at END,
    stopped_at = CASE WHEN %(status)s IN ('stopped', 'failed') THEN now() ELSE stopped_at END
WHERE instance_id = %(instance_id)s
RETURNING *
"""

# --- backtests ------------------------------------------------------------------------------------------------

INSERT_RUN = """
INSERT INTO strategy_engine.backtest_runs
    (strategy_id, instance_id, parameters, period_start, period_end, initial_capital, commission_model,
     slippage_model, random_seed, code_version, status, started_at)
VALUES (%(strategy_id)s, %(instance_id)s, %(parameters)s, %(period_start)s, %(period_end)s, %(initial_capital)s,
        %(commission_model)s, %(slippage_model)s, %(random_seed)s, %(code_version)s, %(status)s, now())
RETURNING run_id
"""
INSERT_FAILED_RUN = """
INSERT INTO strategy_engine.backtest_runs
    (strategy_id, instance_id, parameters, period_start, period_end, initial_capital, commission_model,
     slippage_model, random_seed, code_version, status, started_at, finished_at, error)
VALUES (%(strategy_id)s, %(instance_id)s, %(parameters)s, %(period_start)s, %(period_end)s, %(initial_capital)s,
        %(commission_model)s, %(slippage_model)s, %(random_seed)s, %(code_version)s, 'failed', now(), now(),
        %(error)s)
RETURNING run_id
"""
RUN_BY_KEY = "SELECT run_id, content_hash FROM strategy_engine.backtest_runs WHERE run_key = %s"
LOCK_KEY = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 12))"
FINISH_RUN = """
UPDATE strategy_engine.backtest_runs
SET status = 'completed', finished_at = now(), run_key = %(run_key)s, content_hash = %(content_hash)s,
    period_start = %(period_start)s, period_end = %(period_end)s, initial_capital = %(initial_capital)s,
    metrics = %(metrics)s, total_return = %(total_return)s, sharpe_ratio = %(sharpe_ratio)s,
    max_drawdown = %(max_drawdown)s, win_rate = %(win_rate)s, trade_count = %(trade_count)s
WHERE run_id = %(run_id)s
"""
RUN = """
SELECT r.*, s.name AS strategy, s.version AS strategy_version
FROM strategy_engine.backtest_runs r LEFT JOIN strategy_engine.strategies s USING (strategy_id)
WHERE r.run_id = %s
"""
RUNS = """
SELECT r.*, s.name AS strategy, s.version AS strategy_version
FROM strategy_engine.backtest_runs r LEFT JOIN strategy_engine.strategies s USING (strategy_id)
WHERE (%(strategy_id)s::bigint IS NULL OR r.strategy_id = %(strategy_id)s)
  AND (%(status)s::text IS NULL OR r.status = %(status)s)
ORDER BY {order} NULLS LAST, r.run_id
LIMIT %(limit)s
"""
SENSITIVITY = """
SELECT r.parameters -> %(parameter)s AS value, count(*) AS runs,
       avg((r.metrics ->> %(metric)s)::float8) AS mean, min((r.metrics ->> %(metric)s)::float8) AS min,
       max((r.metrics ->> %(metric)s)::float8) AS max
FROM strategy_engine.backtest_runs r
WHERE r.strategy_id = %(strategy_id)s AND r.status = 'completed' AND r.parameters ? %(parameter)s
GROUP BY 1
ORDER BY 1
"""
#: A run and its rows (the result series have no foreign keys, so no cascade: the order is the writer's).
DELETE_RUN = (
    "DELETE FROM strategy_engine.backtest_equity_curve WHERE run_id = %(run_id)s",
    "DELETE FROM strategy_engine.backtest_trades WHERE run_id = %(run_id)s",
    "DELETE FROM strategy_engine.backtest_positions WHERE run_id = %(run_id)s",
    "DELETE FROM strategy_engine.backtest_orders WHERE run_id = %(run_id)s",
    "UPDATE strategy_engine.optimization_iterations SET backtest_run_id = NULL WHERE backtest_run_id = %(run_id)s",
    "DELETE FROM strategy_engine.backtest_runs WHERE run_id = %(run_id)s",
)
KNOWN_SECURITIES = "SELECT security_id FROM shared.securities WHERE security_id = ANY(%s)"

# --- optimizations --------------------------------------------------------------------------------------------

OPTIMIZATION_BY_NAME = """
SELECT * FROM strategy_engine.optimization_runs WHERE strategy_id = %s AND name = %s
"""
INSERT_OPTIMIZATION = """
INSERT INTO strategy_engine.optimization_runs
    (strategy_id, name, method, objective, direction, parameter_space, status, started_at)
VALUES (%(strategy_id)s, %(name)s, %(method)s, %(objective)s, %(direction)s, %(parameter_space)s, 'running', now())
ON CONFLICT (strategy_id, name) DO NOTHING
RETURNING *
"""
OPTIMIZATION = "SELECT * FROM strategy_engine.optimization_runs WHERE optimization_id = %s"
UPSERT_ITERATION = """
INSERT INTO strategy_engine.optimization_iterations
    (optimization_id, iteration, parameters, score, metrics, status, duration_seconds, backtest_run_id)
VALUES (%(optimization_id)s, %(iteration)s, %(parameters)s, %(score)s, %(metrics)s, %(status)s,
        %(duration_seconds)s, %(backtest_run_id)s)
ON CONFLICT (optimization_id, iteration) DO NOTHING
"""
ITERATIONS = """
SELECT * FROM strategy_engine.optimization_iterations WHERE optimization_id = %(optimization_id)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY {order} NULLS LAST, iteration
LIMIT %(limit)s
"""
FINISH_OPTIMIZATION = """
UPDATE strategy_engine.optimization_runs o
SET status = %(status)s, finished_at = now(),
    best_score = b.score, best_parameters = b.parameters
FROM (SELECT score, parameters FROM strategy_engine.optimization_iterations
      WHERE optimization_id = %(optimization_id)s AND status = 'completed' AND score IS NOT NULL
      ORDER BY {order} LIMIT 1) b
WHERE o.optimization_id = %(optimization_id)s
RETURNING o.*
"""
SET_OPTIMIZATION_STATUS = """
UPDATE strategy_engine.optimization_runs SET status = %(status)s, finished_at = now()
WHERE optimization_id = %(optimization_id)s RETURNING *
"""


def copy_into(table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(S, table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def select_series(table: str, columns: list[str], order: str, run_id: int) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} WHERE run_id = {} ORDER BY {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Identifier(S, table),
        sql.Literal(run_id),
        sql.SQL(order),
    )


def metric_order(metric: str, descending: bool, prefix: str = "r.") -> sql.Composed:
    """ORDER BY a metric of the metrics jsonb (``metric`` is bound as a literal, never spliced)."""
    return sql.SQL("({}metrics ->> {})::float8 {}").format(
        sql.SQL(prefix), sql.Literal(metric), sql.SQL("DESC" if descending else "ASC")
    )


# --- signals --------------------------------------------------------------------------------------------------

KNOWN_INSTANCES = "SELECT instance_id FROM strategy_engine.strategy_instances WHERE instance_id = ANY(%s)"
#: Signals are COPYed into a session table of floats, then moved with one INSERT that casts to the numeric columns.
SIGNAL_STAGE_TABLE = "tradedb_signal_stage"
SIGNAL_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS tradedb_signal_stage (
    ts timestamptz, instance_id bigint, security_id bigint, signal text, strength float8, confidence float8,
    price float8, quantity float8
) ON COMMIT DELETE ROWS
"""
MOVE_SIGNALS = """
INSERT INTO strategy_engine.strategy_signals
    (ts, instance_id, security_id, signal, strength, confidence, price, quantity)
SELECT ts, instance_id, security_id, signal, strength, confidence, price::numeric, quantity::numeric
FROM tradedb_signal_stage
"""
SIGNAL_FINDINGS = """
INSERT INTO data_ingestion.data_quality_logs (security_id, table_name, source, check_type, status, row_ts, details)
SELECT security_id, 'strategy_engine.strategy_signals', 'signals', check_type, 'fail', row_ts, details
FROM jsonb_to_recordset(%s::jsonb) AS f(security_id bigint, check_type text, row_ts timestamptz, details jsonb)
"""
