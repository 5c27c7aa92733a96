"""The coverage table's bookkeeping when partitions leave (retention): SQL only, no pyarrow, for maintenance."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

#: The tables whose rows ``data_ingestion.coverage`` counts.
COVERED_TABLES = ("quotes", "market_trades", "bars", "order_book_events")


def subtract_partition_sql(table_name: str, partition: sql.Identifier) -> sql.Composed:
    tf = sql.Identifier("timeframe") if table_name == "bars" else sql.Literal("")
    return sql.SQL(
        "UPDATE data_ingestion.coverage c SET row_count = greatest(c.row_count - x.n, 0), updated_at = now() "
        "FROM (SELECT security_id, source, {} AS timeframe, count(*) AS n FROM {} GROUP BY 1, 2, 3) x "
        "WHERE c.table_name = {} AND c.security_id = x.security_id AND c.source = x.source "
        "AND c.timeframe = x.timeframe"
    ).format(tf, partition, sql.Literal(table_name))


def refresh_after_drop_sql(table_name: str, lo: datetime | None, hi: datetime) -> sql.Composed:
    """After a partition left: entries whose first time fell in it start at the oldest row still stored."""
    tf = sql.SQL(" AND t.timeframe = c.timeframe") if table_name == "bars" else sql.SQL("")
    return sql.SQL(
        "WITH gone AS (DELETE FROM data_ingestion.coverage c WHERE c.table_name = {name} AND c.row_count = 0) "
        "UPDATE data_ingestion.coverage c SET first_ts = coalesce((SELECT min(t.ts) FROM {table} t "
        "WHERE t.security_id = c.security_id AND t.source = c.source{tf}), c.first_ts), updated_at = now() "
        "WHERE c.table_name = {name} AND c.first_ts < {hi} AND c.row_count > 0"
    ).format(
        name=sql.Literal(table_name),
        table=sql.Identifier("data_ingestion", table_name),
        tf=tf,
        hi=sql.Literal(hi),
    )
