"""SQL of the market-data API, written once for the async source and its generated sync twin.

Identifiers go through ``psycopg.sql``; only the dataset definitions (never user input) choose tables and columns.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from tradedb.marketdata._datasets import BARS, Dataset
from tradedb.schema.partitions import PARTITION_BOUNDS_SQL

SCHEMA = "data_ingestion"
STAGE = "tradedb_stage"

RESOLVE_SYMBOLS = """
SELECT symbol, security_id, exchange_mic, status FROM shared.securities
WHERE symbol = ANY(%(symbols)s) AND (%(exchange)s::text IS NULL OR exchange_mic = %(exchange)s)
"""
KNOWN_IDS = "SELECT security_id FROM shared.securities WHERE security_id = ANY(%s)"
#: Add unknown symbols in one statement (DO UPDATE, a no-op, so that RETURNING also names rows a concurrent
#: writer added first).
CREATE_SECURITIES = """
INSERT INTO shared.securities (symbol, exchange_mic, asset_type, currency)
SELECT symbol, %(exchange)s, %(asset_type)s, %(currency)s FROM unnest(%(symbols)s::text[]) AS s(symbol)
ON CONFLICT (symbol, exchange_mic) WHERE status <> 'delisted' DO UPDATE SET symbol = EXCLUDED.symbol
RETURNING symbol, security_id
"""

#: Partitions of a table with their bounds (NULL for MINVALUE/MAXVALUE and for the default partition).
PARTITION_BOUNDS = PARTITION_BOUNDS_SQL
CAN_OWN = "SELECT pg_has_role(current_user, %s, 'USAGE') AND has_database_privilege(current_database(), 'TEMP')"

#: Coverage of a batch appended as is, computed by the client; one JSON parameter (dumping arrays of datetimes
#: element by element costs more than the statement).
COVERAGE_UPSERT = """
INSERT INTO data_ingestion.coverage AS c (security_id, table_name, source, timeframe, first_ts, last_ts, row_count)
SELECT security_id, %(table)s, %(source)s, timeframe, timestamptz 'epoch' + first_us * interval '1 microsecond',
       timestamptz 'epoch' + last_us * interval '1 microsecond', row_count
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS x(security_id bigint, timeframe text, first_us bigint, last_us bigint, row_count bigint)
-- One lock order for every writer: concurrent batches wait for each other instead of deadlocking.
ORDER BY security_id, timeframe
ON CONFLICT (security_id, table_name, source, timeframe) DO UPDATE
SET first_ts = least(c.first_ts, EXCLUDED.first_ts), last_ts = greatest(c.last_ts, EXCLUDED.last_ts),
    row_count = c.row_count + EXCLUDED.row_count, updated_at = EXCLUDED.updated_at
"""


def window_overlap(dataset: Dataset, *, distributed: bool = False) -> sql.Composed:
    """How many of a batch's securities already have rows of this source inside the batch's window for them.

    Zero (new data, the usual case) lets ``skip`` and ``replace`` COPY straight into the table: nothing can be
    skipped or replaced. One index probe per security; the parameters are COVERAGE_UPSERT's. ``distributed``
    (Citus): a join instead, which each shard runs for its securities (Citus plans no ``LATERAL ... LIMIT`` over
    a set-returning function).
    """
    tf = sql.SQL(" AND t.timeframe = w.timeframe") if dataset is BARS else sql.SQL("")
    if distributed:
        return sql.SQL(
            """
SELECT count(DISTINCT w.security_id) FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS w(security_id bigint, timeframe text, first_us bigint, last_us bigint, row_count bigint)
JOIN {target} t ON t.security_id = w.security_id AND t.source = %(source)s{tf}
 AND t.ts BETWEEN timestamptz 'epoch' + w.first_us * interval '1 microsecond'
              AND timestamptz 'epoch' + w.last_us * interval '1 microsecond'
"""
        ).format(target=target(dataset), tf=tf)
    return sql.SQL(
        """
SELECT count(*) FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS w(security_id bigint, timeframe text, first_us bigint, last_us bigint, row_count bigint)
CROSS JOIN LATERAL (
    -- LIMIT keeps this a probe per security (an EXISTS would let the planner hash-join the whole table).
    SELECT 1 FROM {target} t
    WHERE t.security_id = w.security_id AND t.source = %(source)s{tf}
      AND t.ts BETWEEN timestamptz 'epoch' + w.first_us * interval '1 microsecond'
                   AND timestamptz 'epoch' + w.last_us * interval '1 microsecond'
    LIMIT 1
) found
"""
    ).format(target=target(dataset), tf=tf)


QUALITY_INSERT = """
INSERT INTO data_ingestion.data_quality_logs (security_id, table_name, source, check_type, status, row_ts, details)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[])
"""


def target(dataset: Dataset) -> sql.Identifier:
    return sql.Identifier(SCHEMA, dataset.table)


def _columns(dataset: Dataset, prefix: str | None = None) -> sql.Composed:
    if prefix is None:
        return sql.SQL(", ").join(sql.Identifier(c) for c in dataset.copy_columns)
    return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in dataset.copy_columns)


def copy_into(dataset: Dataset, *, stage: bool = False) -> sql.Composed:
    """``COPY <table or stage> (columns) FROM STDIN (FORMAT BINARY)``."""
    table = sql.Identifier(STAGE) if stage else target(dataset)
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, _columns(dataset))


def create_stage(dataset: Dataset) -> sql.Composed:
    """A temporary table shaped like the target, dropped at commit (no indexes, no WAL)."""
    return sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
        sql.Identifier(STAGE), target(dataset)
    )


def _timeframe(dataset: Dataset, alias: str) -> sql.Composable:
    return sql.Identifier(alias, "timeframe") if dataset is BARS else sql.Literal("")


def _row_match(dataset: Dataset) -> sql.Composed:
    """The condition that a target row ``t`` is the staged row ``s``: its key (bars) or every column."""
    columns = ("security_id", "ts", "source", "timeframe") if dataset is BARS else dataset.copy_columns
    parts = []
    for c in columns:
        left, right = sql.Identifier("t", c), sql.Identifier("s", c)
        exact = c in ("security_id", "ts", "source", "timeframe")
        op = sql.SQL(" = ") if exact else sql.SQL(" IS NOT DISTINCT FROM ")
        parts.append(sql.Composed([left, op, right]))
    return sql.SQL(" AND ").join(parts)


def _windows(parameter: str) -> sql.Composed:
    """The rows ``w`` of a JSON parameter of windows (COVERAGE_UPSERT's row shape), numbered ``i`` from 1, with
    their bounds as times ``lo`` and ``hi`` (computed here, so that no statement compares a row with a STABLE
    expression of the window's columns: Citus refuses that in an UPDATE or DELETE)."""
    return sql.SQL(
        "(SELECT security_id, timeframe, i, timestamptz 'epoch' + first_us * interval '1 microsecond' AS lo,"
        " timestamptz 'epoch' + last_us * interval '1 microsecond' AS hi"
        " FROM ROWS FROM (jsonb_to_recordset({}::jsonb) AS (security_id bigint, timeframe text, first_us bigint,"
        " last_us bigint)) WITH ORDINALITY AS x(security_id, timeframe, first_us, last_us, i)) w"
    ).format(sql.Placeholder(parameter))


def _stored_in_window(dataset: Dataset) -> sql.Composed:
    """The condition that a stored row ``t`` of ``%(source)s`` lies in window ``w``. The span of all windows,
    ``%(lo)s`` to ``%(hi)s``, lets PostgreSQL prune the partitions outside it while planning (the windows' own
    bounds come from the JSON, too late for that: every window would probe every partition)."""
    return sql.SQL("t.source = %(source)s AND t.ts BETWEEN %(lo)s AND %(hi)s AND {}").format(_in_window(dataset, "t"))


def _window_bounds(alias: str) -> sql.Composed:
    return sql.SQL("{ts} BETWEEN w.lo AND w.hi").format(ts=sql.Identifier(alias, "ts"))


def _in_window(dataset: Dataset, alias: str) -> sql.Composed:
    """The condition that row ``alias`` lies in window ``w`` (its security, timeframe and time span)."""
    tf = sql.SQL(" AND {} = w.timeframe").format(sql.Identifier(alias, "timeframe")) if dataset is BARS else sql.SQL("")
    return sql.SQL("{} = w.security_id{} AND {}").format(
        sql.Identifier(alias, "security_id"), tf, _window_bounds(alias)
    )


def unchanged_windows(dataset: Dataset) -> sql.Composed:
    """The windows (of ``delete_window``'s parameters) whose stored rows are the staged rows, as a multiset.

    Compared by count, sum and XOR of a 64-bit hash of each row's written columns (``hash_record_extended``, so
    equal values hash alike whatever their text): a re-ingested window that did not change is then neither deleted
    nor inserted again. Returns one row: the unchanged windows' positions in the parameter (from 1) and the rows
    they hold.
    """

    def sums(alias: str, table: sql.Composable, condition: sql.Composable) -> sql.Composed:
        return sql.SQL(
            "SELECT i, count(*) AS n, sum(h) AS h0, bit_xor(h) AS h1 FROM ("
            "SELECT w.i, hash_record_extended(ROW({columns}), 0) AS h FROM w JOIN {table} {alias} ON {condition}"
            ") x GROUP BY i"
        ).format(columns=_columns(dataset, alias), table=table, alias=sql.Identifier(alias), condition=condition)

    return sql.SQL(
        """
WITH w AS (SELECT * FROM {windows}), stored AS ({stored}), staged AS ({staged})
SELECT coalesce(array_agg(w.i ORDER BY w.i), '{{}}'), coalesce(sum(stored.n), 0)::bigint
FROM w JOIN stored USING (i) JOIN staged USING (i)
WHERE (stored.n, stored.h0, stored.h1) = (staged.n, staged.h0, staged.h1)
"""
    ).format(
        windows=_windows("windows"),
        stored=sums("t", target(dataset), _stored_in_window(dataset)),
        staged=sums("s", sql.Identifier(STAGE), _in_window(dataset, "s")),
    )


def insert_from_stage(
    dataset: Dataset, *, skip_existing: bool, unchanged: bool = False, distributed: bool = False
) -> sql.Composed:
    """One statement: insert the staged rows (less those already stored when skipping, less those in the
    ``unchanged`` windows, a JSON parameter, when given) and update coverage.

    ``distributed`` (Citus, which joins no local table with a distributed one in a write): skipping reads the
    stored rows of the stage's securities, sources and time span first (an intermediate result on the
    coordinator), and anti-joins the stage with them there.

    Returns one row: the number of rows inserted.
    """
    where: sql.Composable = sql.SQL("")
    stored: sql.Composable = sql.SQL("")
    if unchanged:
        where = sql.SQL(" WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {})").format(
            _windows("unchanged"), _in_window(dataset, "s")
        )
    elif skip_existing and dataset.key is not None:
        # A keyed table says itself what exists: its unique index, probed once per row.
        where = sql.SQL(" ON CONFLICT DO NOTHING")
    elif skip_existing and distributed:
        stored = sql.SQL(
            "stored AS MATERIALIZED (SELECT {columns} FROM {target} t"
            " WHERE t.security_id IN (SELECT DISTINCT security_id FROM {stage})"
            " AND t.source IN (SELECT DISTINCT source FROM {stage})"
            " AND t.ts BETWEEN (SELECT min(ts) FROM {stage}) AND (SELECT max(ts) FROM {stage})), "
        ).format(columns=_columns(dataset, "t"), target=target(dataset), stage=sql.Identifier(STAGE))
        where = sql.SQL(" LEFT JOIN stored t ON {} WHERE t.ts IS NULL").format(_row_match(dataset))
    elif skip_existing:
        # The bounds let PostgreSQL prune the partitions outside the batch's time window before it joins.
        where = sql.SQL(
            " WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {} AND t.ts >= (SELECT min(ts) FROM {stage})"
            " AND t.ts <= (SELECT max(ts) FROM {stage}))"
        ).format(target(dataset), _row_match(dataset), stage=sql.Identifier(STAGE))
    return sql.SQL(
        """
WITH {stored}ins AS (
    INSERT INTO {target} ({columns}) SELECT {staged} FROM {stage} s{where}
    RETURNING security_id, source, {tf} AS timeframe, ts
), agg AS (
    SELECT security_id, source, timeframe, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n
    FROM ins GROUP BY security_id, source, timeframe
), cov AS (
    INSERT INTO data_ingestion.coverage AS c
        (security_id, table_name, source, timeframe, first_ts, last_ts, row_count)
    SELECT security_id, {table_name}, source, timeframe, first_ts, last_ts, n FROM agg
    ORDER BY security_id, timeframe
    ON CONFLICT (security_id, table_name, source, timeframe) DO UPDATE
    SET first_ts = least(c.first_ts, EXCLUDED.first_ts), last_ts = greatest(c.last_ts, EXCLUDED.last_ts),
        row_count = c.row_count + EXCLUDED.row_count, updated_at = EXCLUDED.updated_at
)
SELECT coalesce(sum(n), 0)::bigint FROM agg
"""
    ).format(
        target=target(dataset),
        columns=_columns(dataset),
        staged=_columns(dataset, "s"),
        stage=sql.Identifier(STAGE),
        where=where,
        stored=stored,
        tf=sql.Identifier("timeframe") if dataset is BARS else sql.Literal(""),
        table_name=sql.Literal(dataset.table),
    )


def delete_window(dataset: Dataset, *, distributed: bool = False) -> sql.Composed:
    """Delete the stored rows of this source inside the given windows (per security and timeframe, in µs).

    The windows are what the batch's replace may clear (``ClearedWindows.claim``): its own window less what earlier
    batches of the same call cleared. Parameters ``windows`` (JSON, COVERAGE_UPSERT's row shape), ``source``, and
    ``lo`` and ``hi``, the span of the windows (for partition pruning). Returns the rows deleted. ``distributed``
    (Citus): the windows are computed once on the coordinator and sent to the shards as values.
    """
    return sql.SQL(
        """
WITH w AS {materialized}(SELECT * FROM {windows}), d AS (
    DELETE FROM {target} t USING w WHERE {stored_in}
    RETURNING t.security_id, t.source, {tf_deleted} AS timeframe
), agg AS (
    SELECT security_id, source, timeframe, count(*) AS n FROM d GROUP BY 1, 2, 3
), cov AS (
    UPDATE data_ingestion.coverage c SET row_count = c.row_count - agg.n, updated_at = now() FROM agg
    WHERE c.security_id = agg.security_id AND c.table_name = {table_name} AND c.source = agg.source
      AND c.timeframe = agg.timeframe
)
SELECT coalesce(sum(n), 0)::bigint FROM agg
"""
    ).format(
        materialized=sql.SQL("MATERIALIZED " if distributed else ""),
        windows=_windows("windows"),
        target=target(dataset),
        stored_in=_stored_in_window(dataset),
        tf_deleted=_timeframe(dataset, "t"),
        table_name=sql.Literal(dataset.table),
    )


# --- reads ----------------------------------------------------------------------------------------------------

#: The newest quote of each security and source a batch of quotes touched, probed at the batch's last time for it
#: (the row is in the table now: written by the batch, or already there when skipped) and kept where newer. Takes
#: COVERAGE_UPSERT's parameters; runs in the batch's transaction, in one lock order.
LAST_QUOTES_UPSERT = """
INSERT INTO data_ingestion.last_quotes AS l (security_id, source, ts, bid, ask, bid_size, ask_size, contributor)
SELECT q.security_id, q.source, q.ts, q.bid, q.ask, q.bid_size, q.ask_size, q.contributor
FROM jsonb_to_recordset(%(rows)s::jsonb) AS w(security_id bigint, last_us bigint)
CROSS JOIN LATERAL (
    SELECT * FROM data_ingestion.quotes q
    WHERE q.security_id = w.security_id AND q.source = %(source)s
      AND q.ts = timestamptz 'epoch' + w.last_us * interval '1 microsecond'
    LIMIT 1
) q
ORDER BY q.security_id
ON CONFLICT (security_id, source) DO UPDATE
SET ts = EXCLUDED.ts, bid = EXCLUDED.bid, ask = EXCLUDED.ask, bid_size = EXCLUDED.bid_size,
    ask_size = EXCLUDED.ask_size, contributor = EXCLUDED.contributor, updated_at = EXCLUDED.updated_at
WHERE l.ts <= EXCLUDED.ts
"""
#: LAST_QUOTES_UPSERT on Citus (no ``LATERAL ... LIMIT`` over a set-returning function there): a join, which each
#: shard runs for its securities; one row per security either way (DISTINCT ON, as LIMIT 1 picks one).
LAST_QUOTES_UPSERT_DISTRIBUTED = """
INSERT INTO data_ingestion.last_quotes AS l (security_id, source, ts, bid, ask, bid_size, ask_size, contributor)
SELECT DISTINCT ON (q.security_id) q.security_id, q.source, q.ts, q.bid, q.ask, q.bid_size, q.ask_size,
       q.contributor
FROM jsonb_to_recordset(%(rows)s::jsonb) AS w(security_id bigint, last_us bigint)
JOIN data_ingestion.quotes q ON q.security_id = w.security_id AND q.source = %(source)s
 AND q.ts = timestamptz 'epoch' + w.last_us * interval '1 microsecond'
ORDER BY q.security_id
ON CONFLICT (security_id, source) DO UPDATE
SET ts = EXCLUDED.ts, bid = EXCLUDED.bid, ask = EXCLUDED.ask, bid_size = EXCLUDED.bid_size,
    ask_size = EXCLUDED.ask_size, contributor = EXCLUDED.contributor, updated_at = EXCLUDED.updated_at
WHERE l.ts <= EXCLUDED.ts
"""
#: The same from the batch's own last quote per security (sent by the writer): for a batch appended as it is, whose
#: rows are exactly what was stored. No read of the quotes table (on a hypertable, 500 probes took 0.4 s a batch).
LAST_QUOTES_FROM_BATCH = """
INSERT INTO data_ingestion.last_quotes AS l (security_id, source, ts, bid, ask, bid_size, ask_size, contributor)
SELECT security_id, %(source)s, timestamptz 'epoch' + ts_us * interval '1 microsecond', bid, ask, bid_size,
       ask_size, contributor
FROM jsonb_to_recordset(%(last)s::jsonb) AS x(security_id bigint, ts_us bigint, bid float8, ask float8,
                                             bid_size float8, ask_size float8, contributor text)
ORDER BY security_id
ON CONFLICT (security_id, source) DO UPDATE
SET ts = EXCLUDED.ts, bid = EXCLUDED.bid, ask = EXCLUDED.ask, bid_size = EXCLUDED.bid_size,
    ask_size = EXCLUDED.ask_size, contributor = EXCLUDED.contributor, updated_at = EXCLUDED.updated_at
WHERE l.ts <= EXCLUDED.ts
"""

#: Per security and source of the request: coverage's last time and the kept last quote. latest_quotes uses a
#: security's kept quotes only where every source of it agrees with coverage (so writes that bypassed tradedb,
#: once rebuild_coverage has seen them, are never hidden by a stale kept quote).
LAST_QUOTES = """
SELECT c.security_id, l.ts, l.bid, l.ask, l.bid_size, l.ask_size, c.source, l.ts = c.last_ts AS agrees
FROM data_ingestion.coverage c
LEFT JOIN data_ingestion.last_quotes l ON l.security_id = c.security_id AND l.source = c.source
WHERE c.security_id = ANY(%(ids)s::bigint[]) AND c.table_name = 'quotes' AND c.timeframe = ''
  AND (%(source)s::text IS NULL OR c.source = %(source)s)
"""

#: The time span of the requested securities' last quotes, per the coverage table (kept by every tradedb write in
#: the write's transaction). Passed to LATEST_QUOTES as literals, it lets the planner keep only the partitions in
#: that span: a plan over every partition would cost more to plan and lock than the probes themselves.
LATEST_SPAN = """
SELECT min(last_ts), max(last_ts) FROM data_ingestion.coverage
WHERE security_id = ANY(%(ids)s::bigint[]) AND table_name = 'quotes' AND timeframe = ''
  AND (%(source)s::text IS NULL OR source = %(source)s)
"""

#: The newest quote per security: one index probe each, at the last time coverage holds for it (``ts = last``).
#: Securities without coverage go through LATEST_QUOTES_WALK.
LATEST_QUOTES = """
SELECT DISTINCT ON (c.security_id) c.security_id, q.ts, q.bid, q.ask, q.bid_size, q.ask_size, q.source
FROM data_ingestion.coverage c
CROSS JOIN LATERAL (
    SELECT * FROM data_ingestion.quotes q
    WHERE q.security_id = c.security_id AND q.ts = c.last_ts AND q.source = c.source
      AND q.ts BETWEEN %(lo)s AND %(hi)s
    LIMIT 1
) q
WHERE c.security_id = ANY(%(ids)s::bigint[]) AND c.table_name = 'quotes' AND c.timeframe = ''
  AND (%(source)s::text IS NULL OR c.source = %(source)s)
ORDER BY c.security_id, c.last_ts DESC
"""

#: The newest quote per security without coverage: ``ORDER BY ts DESC LIMIT 1`` walks the partitions' indexes.
LATEST_QUOTES_WALK = """
SELECT r.security_id, q.ts, q.bid, q.ask, q.bid_size, q.ask_size, q.source
FROM unnest(%(ids)s::bigint[]) AS r(security_id)
CROSS JOIN LATERAL (
    SELECT * FROM data_ingestion.quotes q
    WHERE q.security_id = r.security_id AND (%(source)s::text IS NULL OR q.source = %(source)s)
    ORDER BY q.ts DESC LIMIT 1
) q
"""

#: LATEST_QUOTES_WALK on Citus (no ``LATERAL ... LIMIT`` over a set-returning function there): each shard reads
#: its securities' rows, newest first. Only for securities without coverage (writes that bypassed tradedb).
LATEST_QUOTES_WALK_DISTRIBUTED = """
SELECT DISTINCT ON (security_id) security_id, ts, bid, ask, bid_size, ask_size, source
FROM data_ingestion.quotes
WHERE security_id = ANY(%(ids)s::bigint[]) AND (%(source)s::text IS NULL OR source = %(source)s)
ORDER BY security_id, ts DESC
"""

#: The same answer the usual way (a scan): kept for the benchmark's baseline.
LATEST_QUOTES_DISTINCT_ON = """
SELECT DISTINCT ON (security_id) security_id, ts, bid, ask, bid_size, ask_size, source
FROM data_ingestion.quotes WHERE security_id = ANY(%(ids)s::bigint[])
ORDER BY security_id, ts DESC
"""

READ_COLUMNS: dict[str, tuple[str, ...]] = {
    "quotes": ("ts", "bid", "ask", "bid_size", "ask_size", "contributor", "source"),
    "market_trades": ("ts", "price", "size", "trade_id", "aggressor_side", "source"),
    "bars": ("ts", "timeframe", "open", "high", "low", "close", "volume", "trade_count", "vwap", "source"),
    "order_book_events": ("ts", "event_type", "order_ref", "side", "price", "size", "sequence", "source"),
}


def range_query(
    table: str,
    security_id: int,
    start: datetime,
    end: datetime,
    *,
    source: str | None,
    timeframe: str | None,
    contributor: str | None = None,
) -> sql.Composed:
    """Rows of one security in [start, end), optionally of one source (timeframe, contributor), in time order.

    Values are inlined as literals (validated by the caller): the same text serves a query and a COPY, which
    takes no parameters.
    """
    filters: list[sql.Composable] = [
        sql.SQL("security_id = {}").format(sql.Literal(security_id)),
        sql.SQL("ts >= {}").format(sql.Literal(start)),
        sql.SQL("ts < {}").format(sql.Literal(end)),
    ]
    if source is not None:
        filters.append(sql.SQL("source = {}").format(sql.Literal(source)))
    if timeframe is not None:
        filters.append(sql.SQL("timeframe = {}").format(sql.Literal(timeframe)))
    if contributor is not None:
        filters.append(sql.SQL("contributor = {}").format(sql.Literal(contributor)))
    # Events at one instant are ordered by the venue's sequence: their order changes the book.
    order = "ts, sequence" if table == "order_book_events" else "ts"
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in READ_COLUMNS[table]),
        sql.Identifier(SCHEMA, table),
        sql.SQL(" AND ").join(filters),
        sql.SQL(order),
    )


# Bars computed in the database. Prices of a quote bar are mid prices; its volume is 0 (quotes carry no volume).
AGGREGATE_TRADES = """
SELECT security_id, date_bin(%(step)s::interval, ts, %(origin)s::timestamptz) AS bucket,
       (array_agg(price ORDER BY ts, trade_id))[1] AS open, max(price) AS high, min(price) AS low,
       (array_agg(price ORDER BY ts DESC, trade_id DESC))[1] AS close, sum(size) AS volume,
       count(*) AS trade_count, sum(price * size) / nullif(sum(size), 0) AS vwap
FROM data_ingestion.market_trades
WHERE ts >= %(start)s AND ts < %(end)s AND security_id = ANY(%(ids)s) AND source = %(source)s
GROUP BY 1, 2
"""
AGGREGATE_QUOTES = """
SELECT security_id, date_bin(%(step)s::interval, ts, %(origin)s::timestamptz) AS bucket,
       (array_agg((bid + ask) / 2 ORDER BY ts))[1] AS open, max((bid + ask) / 2) AS high,
       min((bid + ask) / 2) AS low, (array_agg((bid + ask) / 2 ORDER BY ts DESC))[1] AS close, 0::float8 AS volume,
       NULL::bigint AS trade_count, NULL::float8 AS vwap
FROM data_ingestion.quotes
WHERE ts >= %(start)s AND ts < %(end)s AND security_id = ANY(%(ids)s) AND source = %(source)s
  AND bid IS NOT NULL AND ask IS NOT NULL
GROUP BY 1, 2
"""
#: The columns the computations read, from the table and from archived rows staged beside it.
AGGREGATED_COLUMNS = {
    "market_trades": "ts, security_id, price, size, trade_id, source",
    "quotes": "ts, security_id, bid, ask, source",
}


def with_archived(select: str, table: str) -> str:
    """An aggregation reading ``table`` and the archived rows staged in the temporary table ``archived_rows``."""
    columns = AGGREGATED_COLUMNS[table]
    source = f"FROM {SCHEMA}.{table}\n"
    assert source in select
    both = f"SELECT {columns} FROM {SCHEMA}.{table} UNION ALL SELECT {columns} FROM archived_rows"  # noqa: S608 - constants
    return select.replace(source, f"FROM ({both}) AS {table}\n")


#: Monthly bars cannot use date_bin (months differ in length).
MONTH_BUCKET = "date_trunc('month', ts, 'UTC')"


def _upsert_bars(computed: str) -> sql.Composed:
    """Store the bars of ``computed`` (columns security_id, bucket and the prices), replacing those of the same key."""
    return sql.SQL(
        """
INSERT INTO data_ingestion.bars AS b
    (security_id, timeframe, source, ts, open, high, low, close, volume, trade_count, vwap)
SELECT security_id, %(timeframe)s, %(target_source)s, bucket, open, high, low, close, volume, trade_count, vwap
FROM {computed}
ON CONFLICT (security_id, timeframe, source, ts) DO UPDATE
SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, trade_count = EXCLUDED.trade_count, vwap = EXCLUDED.vwap
"""
    ).format(computed=sql.Identifier(computed))


#: The coverage of the bars counted in ``agg`` (per security: first and last bucket, ``n`` new bars), and the
#: statement's result: how many bars were computed (``m``).
_BARS_COVERAGE = sql.SQL(
    """
cov AS (
    INSERT INTO data_ingestion.coverage AS c
        (security_id, table_name, source, timeframe, first_ts, last_ts, row_count)
    SELECT security_id, 'bars', %(target_source)s, %(timeframe)s, first_ts, last_ts, n FROM agg
    ORDER BY security_id
    ON CONFLICT (security_id, table_name, source, timeframe) DO UPDATE
    SET first_ts = least(c.first_ts, EXCLUDED.first_ts), last_ts = greatest(c.last_ts, EXCLUDED.last_ts),
        row_count = c.row_count + EXCLUDED.row_count, updated_at = EXCLUDED.updated_at
)
SELECT coalesce(sum(m), 0)::bigint FROM agg
"""
)


def store_bars(select: str) -> sql.Composed:
    """Compute bars (``select``: AGGREGATE_TRADES or _QUOTES), store them and their coverage in one statement;
    returns how many were computed."""
    return sql.SQL(
        """
WITH computed AS ({select}),
stored AS ({upsert}), agg AS (
    -- Counted against the snapshot before the insert: which computed bars are new.
    SELECT c.security_id, min(c.bucket) AS first_ts, max(c.bucket) AS last_ts, count(*) AS m,
           count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM data_ingestion.bars b WHERE b.security_id = c.security_id
               AND b.timeframe = %(timeframe)s AND b.source = %(target_source)s AND b.ts = c.bucket)) AS n
    FROM computed c GROUP BY 1
),{coverage}"""
    ).format(select=sql.SQL(select), upsert=_upsert_bars("computed"), coverage=_BARS_COVERAGE)


#: ``aggregate_bars`` on Citus, in three statements: there, the sub-statements of one statement run one after
#: another (a count after the insert would see the bars it wrote), and no write joins a local table with a
#: distributed one. The computed bars are staged on the coordinator (``{select}``: AGGREGATE_TRADES or _QUOTES) ...
STAGE_COMPUTED = "CREATE TEMP TABLE tradedb_computed ON COMMIT DROP AS {select}"
#: ... counted against the bars stored before (those of the computed securities and span, read first) to update
#: coverage, and returns how many were computed ...
COUNT_COMPUTED = sql.SQL(
    """
WITH stored AS MATERIALIZED (
    SELECT security_id, ts FROM data_ingestion.bars
    WHERE timeframe = %(timeframe)s AND source = %(target_source)s
      AND security_id IN (SELECT DISTINCT security_id FROM tradedb_computed)
      AND ts BETWEEN (SELECT min(bucket) FROM tradedb_computed) AND (SELECT max(bucket) FROM tradedb_computed)
), agg AS (
    SELECT c.security_id, min(c.bucket) AS first_ts, max(c.bucket) AS last_ts, count(*) AS m,
           count(*) FILTER (WHERE b.ts IS NULL) AS n
    FROM tradedb_computed c LEFT JOIN stored b ON b.security_id = c.security_id AND b.ts = c.bucket GROUP BY 1
),{coverage}"""
).format(coverage=_BARS_COVERAGE)
#: ... and stored.
STORE_COMPUTED = _upsert_bars("tradedb_computed")

COVERAGE = """
SELECT s.symbol, c.security_id, c.table_name, c.source, c.timeframe, c.first_ts, c.last_ts, c.row_count
FROM data_ingestion.coverage c LEFT JOIN shared.securities s USING (security_id)
WHERE (%(symbol)s::text IS NULL OR s.symbol = %(symbol)s)
  AND (%(table)s::text IS NULL OR c.table_name = %(table)s)
  AND (%(source)s::text IS NULL OR c.source = %(source)s)
  AND c.row_count > 0
ORDER BY s.symbol, c.table_name, c.source, c.timeframe
"""

#: Rebuild coverage from the stored rows of one table (after writes that bypassed tradedb). The sub-statements of
#: one statement do not see each other's changes, so the delete takes only entries without rows and the insert
#: updates the others (a delete-all plus insert-all collides on the key).
REBUILD_COVERAGE = """
WITH cur AS (
    SELECT security_id, source, {tf} AS timeframe, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n
    FROM {table} GROUP BY 1, 2, 3
), del AS (
    DELETE FROM data_ingestion.coverage c WHERE c.table_name = {table_name} AND NOT EXISTS (
        SELECT 1 FROM cur
        WHERE cur.security_id = c.security_id AND cur.source = c.source AND cur.timeframe = c.timeframe
    )
), ins AS (
    INSERT INTO data_ingestion.coverage AS c
        (security_id, table_name, source, timeframe, first_ts, last_ts, row_count)
    SELECT security_id, {table_name}, source, timeframe, first_ts, last_ts, n FROM cur
    ORDER BY security_id, timeframe
    ON CONFLICT (security_id, table_name, source, timeframe) DO UPDATE
    SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts, row_count = EXCLUDED.row_count,
        updated_at = EXCLUDED.updated_at
)
SELECT count(*) FROM cur
"""


def rebuild_coverage(dataset: Dataset) -> sql.Composed:
    return sql.SQL(REBUILD_COVERAGE).format(
        tf=sql.Identifier("timeframe") if dataset is BARS else sql.Literal(""),
        table=target(dataset),
        table_name=sql.Literal(dataset.table),
    )


#: Intervals between consecutive rows longer than the expected step.
GAPS = """
SELECT prev_ts AS gap_start, ts AS gap_end, ts - prev_ts AS length FROM (
    SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev_ts FROM {table}
    WHERE security_id = %(security_id)s AND ts >= %(start)s AND ts < %(end)s
      AND (%(source)s::text IS NULL OR source = %(source)s){tf}
) x
WHERE ts - prev_ts > %(step)s::interval
ORDER BY ts
"""


def gaps_query(dataset: Dataset, *, timeframe: bool) -> sql.Composed:
    return sql.SQL(GAPS).format(
        table=target(dataset), tf=sql.SQL(" AND timeframe = %(timeframe)s") if timeframe else sql.SQL("")
    )


DISTINCT_DAYS = """
SELECT DISTINCT (ts AT TIME ZONE %(tz)s)::date AS day FROM {table}
WHERE security_id = %(security_id)s AND ts >= %(start)s AND ts < %(end)s
  AND (%(source)s::text IS NULL OR source = %(source)s){tf}
ORDER BY 1
"""


def days_query(dataset: Dataset, *, timeframe: bool) -> sql.Composed:
    return sql.SQL(DISTINCT_DAYS).format(
        table=target(dataset), tf=sql.SQL(" AND timeframe = %(timeframe)s") if timeframe else sql.SQL("")
    )


# One action per ex-date and kind (two vendors' records of one split are one split): the bars' own source's record
# when it has one, else the first source by name. With each, the closes a dividend factor needs (the last bar
# before the ex-date, the first on or after it), read whatever window of bars was asked for.
CORPORATE_ACTIONS = """
SELECT DISTINCT ON (ex_date, kind) ex_date, kind, value, source
FROM data_ingestion.corporate_actions
WHERE security_id = %(security_id)s AND kind IN ('dividend', 'special_dividend', 'split', 'reverse_split')
ORDER BY ex_date, kind, (source = %(bar_source)s) DESC NULLS LAST, source
"""
#: The closes around each ex-date (the last before it, the first from it), read wherever they are. A statement of
#: its own, filtered by the security: on Citus it then goes whole to the one shard holding that security's bars.
ACTION_CLOSES = """
SELECT d.ex_date,
  (SELECT b.close FROM data_ingestion.bars b
   WHERE b.security_id = %(security_id)s AND b.timeframe = %(timeframe)s
     AND (%(bar_source)s::text IS NULL OR b.source = %(bar_source)s)
     AND b.ts < (d.ex_date::timestamp AT TIME ZONE 'UTC')
   ORDER BY b.ts DESC, b.source LIMIT 1) AS close_before,
  (SELECT b.close FROM data_ingestion.bars b
   WHERE b.security_id = %(security_id)s AND b.timeframe = %(timeframe)s
     AND (%(bar_source)s::text IS NULL OR b.source = %(bar_source)s)
     AND b.ts >= (d.ex_date::timestamp AT TIME ZONE 'UTC')
   ORDER BY b.ts, b.source LIMIT 1) AS close_from
FROM unnest(%(dates)s::date[]) AS d(ex_date)
"""
INSERT_ACTION = """
INSERT INTO data_ingestion.corporate_actions (security_id, ex_date, kind, value, currency, source)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (security_id, ex_date, kind, source) DO UPDATE SET value = EXCLUDED.value, currency = EXCLUDED.currency
"""

QUALITY = """
SELECT q.checked_at, s.symbol, q.security_id, q.table_name, q.source, q.check_type, q.status, q.row_ts, q.details
FROM data_ingestion.data_quality_logs q LEFT JOIN shared.securities s USING (security_id)
WHERE (%(table)s::text IS NULL OR q.table_name = %(table)s)
  AND (%(source)s::text IS NULL OR q.source = %(source)s)
  AND (%(check_type)s::text IS NULL OR q.check_type = %(check_type)s)
  AND q.checked_at >= %(since)s
ORDER BY q.checked_at DESC, q.check_id DESC
LIMIT %(limit)s
"""
QUALITY_SUMMARY = """
SELECT table_name, source, check_type, status, count(*) AS rows, max(checked_at) AS last_seen
FROM data_ingestion.data_quality_logs
WHERE checked_at >= %(since)s AND (%(table)s::text IS NULL OR table_name = %(table)s)
  AND (%(source)s::text IS NULL OR source = %(source)s)
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
