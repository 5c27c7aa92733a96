"""The statements behind ``tradedb top`` and the metrics: PostgreSQL's statistics views, read-only."""

from __future__ import annotations

ACTIVITY = """
SELECT pid, usename AS "user", application_name AS application, client_addr::text AS client, state,
       wait_event_type, wait_event, backend_type,
       EXTRACT(EPOCH FROM now() - query_start)::float8 AS running_s,
       EXTRACT(EPOCH FROM now() - xact_start)::float8 AS transaction_s,
       query_start, pg_blocking_pids(pid) AS blocked_by, datname AS database, left(query, %(width)s) AS query
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' AND backend_type = 'client backend'
ORDER BY query_start NULLS LAST
"""

CONNECTIONS = """
SELECT coalesce(state, 'unknown') AS state, count(*)::int AS n
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 1
"""

REPLICATION = """
SELECT application_name AS name, client_addr::text AS client, state,
       EXTRACT(EPOCH FROM replay_lag)::float8 AS lag_s,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes
FROM pg_stat_replication ORDER BY 1
"""

# Sizes per table, partitions summed into their parent; bloat estimated from dead tuples (no extension needed:
# an estimate, not pgstattuple's measure).
TABLES = """
WITH leaf AS (
    SELECT coalesce(pg_partition_root(s.relid), s.relid) AS root, s.relid, s.n_live_tup, s.n_dead_tup
    FROM pg_stat_user_tables s
)
SELECT r.oid::regclass::text AS "table",
       sum(pg_table_size(l.relid))::bigint AS table_bytes,
       sum(pg_indexes_size(l.relid))::bigint AS index_bytes,
       sum(l.n_live_tup)::bigint AS live_rows,
       sum(l.n_dead_tup)::bigint AS dead_rows,
       (sum(pg_table_size(l.relid)) * sum(l.n_dead_tup) / nullif(sum(l.n_live_tup + l.n_dead_tup), 0))::bigint
           AS bloat_bytes_estimate,
       count(*) FILTER (WHERE l.relid <> l.root)::int AS partitions
FROM leaf l JOIN pg_class r ON r.oid = l.root
GROUP BY r.oid
ORDER BY sum(pg_table_size(l.relid)) + sum(pg_indexes_size(l.relid)) DESC
LIMIT %(limit)s
"""

# Partitioned tables with their partitions' bounds (the default partition has none).
PARTITIONS = r"""
SELECT p.oid::regclass::text AS "table", c.oid::regclass::text AS partition,
       cn.nspname AS partition_schema, c.relname AS partition_name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS lo,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS hi,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
FROM pg_partitioned_table pt
JOIN pg_class p ON p.oid = pt.partrelid
JOIN pg_namespace n ON n.oid = p.relnamespace
JOIN pg_inherits i ON i.inhparent = p.oid
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT p.relispartition
ORDER BY 1, lo NULLS FIRST
"""

DATABASE_SIZES = (
    "SELECT datname AS database, pg_database_size(datname)::bigint AS bytes FROM pg_database WHERE datname = ANY(%s)"
)

FRESHNESS = """
SELECT table_name AS "table", source, EXTRACT(EPOCH FROM now() - max(last_ts))::float8 AS seconds
FROM data_ingestion.coverage GROUP BY table_name, source ORDER BY 1, 2
"""

QUALITY = """
SELECT coalesce(table_name, '') AS "table", check_type AS "check", status, count(*)::bigint AS n
FROM data_ingestion.data_quality_logs WHERE checked_at > now() - interval '1 day'
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

EVENTS = """
SELECT count(*)::bigint AS undelivered, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest_s
FROM shared.event_outbox WHERE delivered_at IS NULL
"""

HAS_EXTENSION = "SELECT 1 FROM pg_extension WHERE extname = %s"

STATEMENTS = """
SELECT queryid::text AS queryid, calls, total_exec_time::float8 AS total_ms, mean_exec_time::float8 AS mean_ms,
       rows, left(regexp_replace(query, '\\s+', ' ', 'g'), %(width)s) AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT %(limit)s
"""
