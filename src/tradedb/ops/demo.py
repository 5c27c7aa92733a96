"""``tradedb demo``: a local database with a small, deterministic sample market, in one command.

The sample is generated (a seeded random walk), never copied from third-party data.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.rows import TupleRow

from tradedb.database import Database
from tradedb.db import direct as _connect
from tradedb.db.embedded import EmbeddedServer
from tradedb.events import Event
from tradedb.masking import mask_url
from tradedb.notify import Retry
from tradedb.ops import setup as provision
from tradedb.schema import SERVICE_SCHEMAS, metadata
from tradedb.schema.partitions import MONTH, create_partition_sql, floor_time, spec_at
from tradedb.settings import Settings, load_settings, with_dbname
from tradedb.strategies.examples import MA_CROSSOVER_PARAMS, ma_crossover

SOURCE = "demo"
SEED = 20240102
DAYS = (date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4))
SESSION_OPEN_UTC = timedelta(hours=14, minutes=30)  # 09:30 New York (EST)
MINUTES_PER_SESSION = 390

EXCHANGES = (
    ("XNAS", "XNAS", "NASDAQ - ALL MARKETS", "US", "NEW YORK", "America/New_York", "USD"),
    ("XNYS", "XNYS", "NEW YORK STOCK EXCHANGE, INC.", "US", "NEW YORK", "America/New_York", "USD"),
    ("ARCX", "XNYS", "NYSE ARCA", "US", "NEW YORK", "America/New_York", "USD"),
    ("BATS", "XCBO", "CBOE BZX U.S. EQUITIES EXCHANGE", "US", "CHICAGO", "America/Chicago", "USD"),
    ("XCME", "XCME", "CHICAGO MERCANTILE EXCHANGE", "US", "CHICAGO", "America/Chicago", "USD"),
    ("XLON", "XLON", "LONDON STOCK EXCHANGE", "GB", "LONDON", "Europe/London", "GBP"),
)

# (symbol, mic, asset type, sector, starting price)
SECURITIES = (
    ("AAPL", "XNAS", "equity", "Information Technology", 185.0),
    ("MSFT", "XNAS", "equity", "Information Technology", 370.0),
    ("NVDA", "XNAS", "equity", "Information Technology", 480.0),
    ("AMZN", "XNAS", "equity", "Consumer Discretionary", 150.0),
    ("GOOGL", "XNAS", "equity", "Communication Services", 139.0),
    ("META", "XNAS", "equity", "Communication Services", 345.0),
    ("TSLA", "XNAS", "equity", "Consumer Discretionary", 248.0),
    ("AVGO", "XNAS", "equity", "Information Technology", 1110.0),
    ("COST", "XNAS", "equity", "Consumer Staples", 660.0),
    ("PEP", "XNAS", "equity", "Consumer Staples", 170.0),
    ("ADBE", "XNAS", "equity", "Information Technology", 595.0),
    ("CSCO", "XNAS", "equity", "Information Technology", 50.0),
    ("JPM", "XNYS", "equity", "Financials", 170.0),
    ("V", "XNYS", "equity", "Financials", 260.0),
    ("JNJ", "XNYS", "equity", "Health Care", 157.0),
    ("WMT", "XNYS", "equity", "Consumer Staples", 158.0),
    ("PG", "XNYS", "equity", "Consumer Staples", 146.0),
    ("XOM", "XNYS", "equity", "Energy", 100.0),
    ("KO", "XNYS", "equity", "Consumer Staples", 59.0),
    ("BAC", "XNYS", "equity", "Financials", 33.0),
    ("BRK.B", "XNYS", "equity", "Financials", 357.0),
    ("BF.B", "XNYS", "equity", "Consumer Staples", 57.0),
    ("DIS", "XNYS", "equity", "Communication Services", 90.0),
    ("IBM", "XNYS", "equity", "Information Technology", 163.0),
    ("GE", "XNYS", "equity", "Industrials", 127.0),
    ("CAT", "XNYS", "equity", "Industrials", 295.0),
    ("MCD", "XNYS", "equity", "Consumer Discretionary", 296.0),
    ("NKE", "XNYS", "equity", "Consumer Discretionary", 108.0),
    ("SPY", "ARCX", "etf", None, 475.0),
    ("QQQ", "XNAS", "etf", None, 409.0),
    ("IWM", "ARCX", "etf", None, 200.0),
    ("GLD", "ARCX", "etf", None, 190.0),
    ("TLT", "XNAS", "etf", None, 98.0),
    ("XLF", "ARCX", "etf", None, 37.0),
    ("ABR$D", "XNYS", "equity", "Real Estate", 17.0),
    ("VOD", "XLON", "equity", "Communication Services", 0.69),
)


@dataclass
class DemoReport:
    """What the demo did: where, how long each step took, and what the database now holds."""

    url: str
    server_version: str
    timings: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    tables_per_schema: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    bars_loaded: int = 0
    positions: list[dict[str, Any]] = field(default_factory=list)
    quotes: dict[str, Any] = field(default_factory=dict)
    backtest: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)


class BarRow(NamedTuple):
    """One row of data_ingestion.bars, in COPY column order."""

    security_id: int
    timeframe: str
    source: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: int
    vwap: float


def _minute_bars(rng: random.Random, security_id: int, start_price: float) -> Iterator[BarRow]:
    """Yield one session of 1-minute bars per demo day: a geometric random walk, OHLC always consistent."""
    price = start_price
    for day in DAYS:
        session_start = datetime(day.year, day.month, day.day, tzinfo=UTC) + SESSION_OPEN_UTC
        for minute in range(MINUTES_PER_SESSION):
            path = [price]
            for _ in range(4):
                path.append(path[-1] * math.exp(rng.gauss(0.0, 0.0006)))
            close = path[-1]
            high = max(path) * (1 + abs(rng.gauss(0.0, 0.0002)))
            low = min(path) * (1 - abs(rng.gauss(0.0, 0.0002)))
            volume = float(int(rng.lognormvariate(8.0, 0.8)))
            yield BarRow(
                security_id,
                "1m",
                SOURCE,
                session_start + timedelta(minutes=minute),
                round(price, 4),
                round(high, 4),
                round(low, 4),
                round(close, 4),
                volume,
                max(1, int(volume / 90)),
                round((high + low + close) / 3, 4),
            )
            price = close


def _daily_from_minutes(rows: list[BarRow]) -> list[BarRow]:
    """Aggregate one security's minute bars into daily bars (bucket start = midnight UTC)."""
    by_day: dict[date, list[BarRow]] = {}
    for row in rows:
        by_day.setdefault(row.ts.date(), []).append(row)
    daily = []
    for day, bars in sorted(by_day.items()):
        volume = sum(b.volume for b in bars)
        daily.append(
            BarRow(
                bars[0].security_id,
                "1d",
                SOURCE,
                datetime(day.year, day.month, day.day, tzinfo=UTC),
                bars[0].open,
                max(b.high for b in bars),
                min(b.low for b in bars),
                bars[-1].close,
                volume,
                sum(b.trade_count for b in bars),
                round(sum(b.vwap * b.volume for b in bars) / volume, 4),
            )
        )
    return daily


def load_sample(url: str, settings: Settings) -> int:
    """Load exchanges, securities and bars of the sample market (replacing an earlier demo load)."""
    rng = random.Random(SEED)
    with _connect.connect(url, settings) as conn:
        conn.cursor().executemany(
            "INSERT INTO shared.exchanges (mic, operating_mic, name, country, city, timezone, currency)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (mic) DO NOTHING",
            EXCHANGES,
        )
        conn.cursor().executemany(
            "INSERT INTO shared.securities (symbol, exchange_mic, asset_type, currency, sector, name)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (symbol, exchange_mic) WHERE status <> 'delisted' DO NOTHING",
            [
                (s, mic, kind, "GBP" if mic == "XLON" else "USD", sector, f"{s} (demo)")
                for s, mic, kind, sector, _ in SECURITIES
            ],
        )
        ids = {
            (r[0], r[1]): r[2] for r in conn.execute("SELECT symbol, exchange_mic, security_id FROM shared.securities")
        }
        # Monthly partitions for the demo's days, so the rows do not land in the default partition.
        start = floor_time(datetime(DAYS[0].year, DAYS[0].month, 1, tzinfo=UTC), MONTH)
        conn.execute(create_partition_sql(spec_at(metadata.tables["data_ingestion.bars"], start, MONTH)))
        conn.execute("DELETE FROM data_ingestion.bars WHERE source = %s", (SOURCE,))
        loaded = 0
        columns = sql.SQL(", ").join(
            sql.Identifier(c)
            for c in (
                "security_id",
                "timeframe",
                "source",
                "ts",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "trade_count",
                "vwap",
            )
        )
        with conn.cursor().copy(sql.SQL("COPY data_ingestion.bars ({}) FROM STDIN").format(columns)) as copy:
            for symbol, mic, _, _, price in SECURITIES:
                minutes = list(_minute_bars(rng, ids[(symbol, mic)], price))
                for row in (*minutes, *_daily_from_minutes(minutes)):
                    copy.write_row(row)
                    loaded += 1
        conn.execute("ANALYZE data_ingestion.bars")
        conn.commit()
    return loaded


#: 36 securities x 3 sessions x 9,300 quotes: just over a million quotes.
QUOTES_PER_SESSION = 9_300
Progress = Callable[[str, int, int], None]


def sample_quotes(ids: dict[str, int]) -> pa.Table:
    """A deterministic top-of-book stream: per security and session, a random walk of mid prices around the
    security's starting price, a spread of about 2 bp (at least a cent), and sizes in round lots."""
    rng = np.random.default_rng(SEED)
    session_us = MINUTES_PER_SESSION * 60 * 1_000_000
    columns: dict[str, list[Any]] = {k: [] for k in ("ts", "security_id", "bid", "ask", "bid_size", "ask_size")}
    for symbol, _, _, _, price in SECURITIES:
        mid = price
        for day in DAYS:
            opened = np.datetime64(datetime.combine(day, datetime.min.time()) + SESSION_OPEN_UTC, "us")
            offsets = np.unique(rng.integers(0, session_us, QUOTES_PER_SESSION))
            n = len(offsets)
            path = mid * np.exp(np.cumsum(rng.normal(0.0, 0.0004, n)))
            spread = np.maximum(np.round(path * 0.0002, 2), 0.01)
            bid = np.round(path - spread / 2, 2)
            columns["ts"].append(opened + offsets.astype("timedelta64[us]"))
            columns["security_id"].append(np.full(n, ids[symbol]))
            columns["bid"].append(bid)
            columns["ask"].append(np.round(bid + spread, 2))
            columns["bid_size"].append(rng.integers(1, 50, n) * 100.0)
            columns["ask_size"].append(rng.integers(1, 50, n) * 100.0)
            mid = float(path[-1])
    ts = pa.array(np.concatenate(columns.pop("ts")), pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({"ts": ts, **{k: np.concatenate(v) for k, v in columns.items()}})


def load_quotes(url: str, settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Write the sample quotes through ``db.market_data`` (append the first time, replace afterwards: a re-run
    leaves the same data); return the write's figures and the quotes coverage."""
    with Database(url, settings=settings, min_size=0, max_size=2, name="tradedb-demo") as db:
        ids = {r["symbol"]: r["security_id"] for r in db.fetch_all("SELECT symbol, security_id FROM shared.securities")}
        table = sample_quotes(ids)
        loaded = db.market_data.coverage(table="quotes", source=SOURCE)
        total = table.num_rows

        def report(done: int) -> None:
            if progress is not None:
                progress("quotes", done, total)

        result = db.market_data.write_quotes(
            table, source=SOURCE, on_conflict="replace" if loaded else "append", progress=report
        )
        coverage = db.market_data.coverage(table="quotes", source=SOURCE)
    return {
        "rows": result.rows,
        "written": result.written,
        "mode": "replace" if loaded else "append",
        "seconds": result.seconds,
        "rows_per_second": result.rows_per_second,
        "series": len(coverage),
        "first": min(c["first_ts"] for c in coverage),
        "last": max(c["last_ts"] for c in coverage),
        "stored": sum(c["row_count"] for c in coverage),
    }


DEMO_ACCOUNT = "DEMO-1"
#: (symbol, quantity bought on day 1, quantity sold on day 3): a few round trips with realized PnL.
DEMO_TRADES = (("AAPL", 100, 60), ("MSFT", 50, 50), ("NVDA", 30, 10), ("SPY", 200, 250), ("KO", 300, 100))
_DEMO_NAMESPACE = uuid.UUID("7a1d3c52-6b0e-4f7e-9a51-2f5d0c9e8b11")


def trade_sample(url: str, settings: Settings) -> list[dict[str, Any]]:
    """Submit and fill the demo's orders (idempotent: fixed client order and execution ids); return positions."""
    with Database(url, settings=settings, min_size=0, max_size=2, name="tradedb-demo") as db:
        _ensure_account(db, DEMO_ACCOUNT, "Demo account")
        for symbol, bought, sold in DEMO_TRADES:
            security = db.fetch_value(
                "SELECT security_id FROM shared.securities WHERE symbol = %s", (symbol,), readonly=False
            )
            closes = db.fetch_all(
                "SELECT ts, close FROM data_ingestion.bars WHERE security_id = %s AND timeframe = '1d'"
                " AND source = %s ORDER BY ts",
                (security, SOURCE),
                readonly=False,
            )
            for step, (side, quantity, bar) in enumerate((("buy", bought, closes[0]), ("sell", sold, closes[-1]))):
                key = f"{symbol}-{step}"
                price = Decimal(str(bar["close"])).quantize(Decimal("0.01"))
                placed = db.execution.submit_order(
                    account_id=DEMO_ACCOUNT,
                    security_id=security,
                    side=side,
                    quantity=quantity,
                    order_type="limit",
                    limit_price=price,
                    client_order_id=uuid.uuid5(_DEMO_NAMESPACE, key),
                )
                if placed["status"] == "pending":
                    db.execution.transition(placed["order_id"], "submitted", reason="demo")
                db.execution.record_fill(
                    f"DEMO-{key}",
                    placed["order_id"],
                    quantity,
                    price,
                    commission="1.00",
                    executed_at=bar["ts"] + SESSION_OPEN_UTC + timedelta(hours=6),
                )
        rows = db.fetch_all(
            "SELECT s.symbol, p.quantity, p.avg_price, p.realized_pnl, p.total_commission"
            " FROM execution.positions p JOIN shared.securities s USING (security_id)"
            " WHERE p.account_id = %s ORDER BY s.symbol",
            (DEMO_ACCOUNT,),
            readonly=False,
        )
        assert db.execution.reconcile(DEMO_ACCOUNT) == []
    return rows


def _ensure_account(db: Database, account_id: str, name: str) -> None:
    if not any(a["account_id"] == account_id for a in db.accounts.list()):
        db.accounts.create(account_id, name, capital=100_000)
    db.risk.set_limit(account_id, "max_position_notional", 1_000_000)  # the default 10,000 is a newcomer's guard


class _Receiver:
    """A webhook receiver on a free local port (the demo's notification channel), recording what it gets."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/risk"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


DEMO_RISK_ACCOUNT = "DEMO-RISK"
DEMO_CHANNEL_OWNER = "tradedb-demo"


def risk_sample(url: str, settings: Settings) -> dict[str, Any]:
    """A risk drill: an account buys AAPL at its last close under a max_drawdown limit that halts, the market is
    marked 15 % lower, the breach becomes a risk event and halts the account, and the dispatcher sends the event
    to a webhook (a local receiver). Each run resolves the previous drill's breach and resumes the account first."""
    receiver = _Receiver()
    try:
        with Database(url, settings=settings, min_size=0, max_size=2, name="tradedb-demo") as db:
            _ensure_account(db, DEMO_RISK_ACCOUNT, "Demo risk drill")
            db.risk.set_limit(DEMO_RISK_ACCOUNT, "max_drawdown", 1_000, halt_on_breach=True)
            for event in db.risk.events(DEMO_RISK_ACCOUNT, open_only=True):
                db.risk.resolve(event["event_id"], by="tradedb demo", note="the next drill")
            state = db.risk.state(DEMO_RISK_ACCOUNT)
            if state is not None and state["halted_at"] is not None:
                db.risk.resume(DEMO_RISK_ACCOUNT, by="tradedb demo", note="the next drill")
            security = db.fetch_value("SELECT security_id FROM shared.securities WHERE symbol = 'AAPL'", readonly=False)
            close = Decimal(
                str(
                    db.fetch_value(
                        "SELECT close FROM data_ingestion.bars WHERE security_id = %s AND timeframe = '1d'"
                        " AND source = %s ORDER BY ts DESC LIMIT 1",
                        (security, SOURCE),
                        readonly=False,
                    )
                )
            ).quantize(Decimal("0.01"))
            placed = db.execution.submit_order(
                account_id=DEMO_RISK_ACCOUNT,
                security_id=security,
                side="buy",
                quantity=100,
                order_type="limit",
                limit_price=close,
                client_order_id=uuid.uuid5(_DEMO_NAMESPACE, "risk-drill"),
            )
            db.execution.record_fill("DEMO-RISK-drill", placed["order_id"], 100, close)
            for old in db.notifications.channels(DEMO_CHANNEL_OWNER):
                db.notifications.disable_channel(old["config_id"])
            channel = db.notifications.add_channel(
                DEMO_CHANNEL_OWNER, f"webhook-{uuid.uuid4().hex[:8]}", "webhook", settings={"url": receiver.url}
            )
            check = db.risk.check(DEMO_RISK_ACCOUNT, marks={security: close * Decimal("0.85")})
            db.notifications.dispatch(retry=Retry(max_attempts=3, base_delay=0.2), wait=True)
            attempts = db.notifications.attempts(config_id=channel["config_id"])
            events = db.risk.events(DEMO_RISK_ACCOUNT, open_only=True)
    finally:
        receiver.stop()
    breach = check.breaches[0] if check.breaches else None
    return {
        "account": DEMO_RISK_ACCOUNT,
        "breach": None if breach is None else breach.message(DEMO_RISK_ACCOUNT, check.currency),
        "halted": check.halted,
        "risk_event": next((e["event_id"] for e in events if e["event_type"] == "limit_breach"), None),
        "notifications": [(a["status"], a["attempts"], a["subject"]) for a in attempts],
        "received": len(receiver.received),
    }


DEMO_BACKTEST = ("AAPL", 10, 30)  # symbol, fast and slow averages (minutes)


def backtest_sample(url: str, settings: Settings) -> dict[str, Any]:
    """Backtest a moving-average crossover on the sample's AAPL minute bars, record it (recording it again is a
    no-op) and write its tear sheet next to the embedded server's data; return the run, its metrics and the path."""
    with Database(url, settings=settings, min_size=0, max_size=2, name="tradedb-demo") as db:
        strategy = db.strategies.register(
            "ma_crossover",
            MA_CROSSOVER_PARAMS,
            description="Moving-average crossover, long or flat (tradedb.strategies.examples)",
            code_reference="tradedb.strategies.examples:ma_crossover",
        )
        symbol, fast, slow = DEMO_BACKTEST
        bars = db.market_data.bars(symbol, DAYS[0], DAYS[-1] + timedelta(days=1), timeframe="1m", as_="arrow")
        security = db.market_data.security_ids([symbol])[symbol]
        ts = bars["ts"].cast(pa.int64()).to_numpy().astype("datetime64[us]")
        run = ma_crossover(ts, bars["close"].to_numpy(), security, fast=fast, slow=slow)
        recorded = db.backtests.record(
            strategy.strategy_id,
            parameters={"fast": fast, "slow": slow},
            equity=run.equity,
            trades=run.trades,
            positions=run.positions,
            initial_capital=100_000,
            periods_per_year=252 * MINUTES_PER_SESSION,
            code_version="tradedb.strategies.examples 1",
        )
        folder = EmbeddedServer(settings).home / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = db.backtests.report(recorded.run_id, folder / "demo-backtest.html")
    return {"run_id": recorded.run_id, "created": recorded.created, "metrics": recorded.metrics, "path": path}


DEMO_GROUP = "tradedb-demo"


def events_sample(url: str, settings: Settings) -> dict[str, Any]:
    """What reached the demo's consumer group since the last demo: the events the steps above wrote in their
    transactions, relayed to Redis when one is configured, else read from the PostgreSQL streams."""
    with Database(url, settings=settings, min_size=0, max_size=2, name="tradedb-demo") as db:
        if db.events.backend == "redis":
            db.events.relay().run(until_idle=True)
        by_type: dict[str, int] = {}
        recent: list[dict[str, Any]] = []

        def handler(event: Event, conn: Any) -> None:
            by_type[event.type] = by_type.get(event.type, 0) + 1
            recent.append(event.as_dict())
            del recent[:-3]

        db.events.consume(DEMO_GROUP, handler, until_idle=True, block=0.2, inbox=False)
        return {"backend": db.events.backend, "by_type": by_type, "recent": recent}


def _scalar(conn: psycopg.Connection[TupleRow], query: sql.Composable | str) -> Any:
    row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def run_demo(
    *, settings: Settings | None = None, url: str | None = None, progress: Progress | None = None
) -> DemoReport:
    """Start the embedded server (unless ``url`` is given), set up, load the sample, and report."""
    settings = settings or load_settings()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if url is None:
        url = EmbeddedServer(settings).ensure_running()
    timings["start server"] = time.perf_counter() - started

    step = time.perf_counter()
    provision.setup(settings=settings, url=url)
    timings["setup"] = time.perf_counter() - step

    trading_url = with_dbname(url, settings.trading_db_name)
    step = time.perf_counter()
    bars = load_sample(trading_url, settings)
    timings["load sample"] = time.perf_counter() - step

    step = time.perf_counter()
    quotes = load_quotes(trading_url, settings, progress)
    timings["quotes"] = time.perf_counter() - step

    step = time.perf_counter()
    positions = trade_sample(trading_url, settings)
    timings["orders and fills"] = time.perf_counter() - step

    step = time.perf_counter()
    backtest = backtest_sample(trading_url, settings)
    timings["backtest"] = time.perf_counter() - step

    step = time.perf_counter()
    risk = risk_sample(trading_url, settings)
    timings["risk drill"] = time.perf_counter() - step

    step = time.perf_counter()
    events = events_sample(trading_url, settings)
    timings["events"] = time.perf_counter() - step

    with _connect.connect(trading_url, settings, autocommit=True) as conn:
        version = str(_scalar(conn, "SHOW server_version"))
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s) ORDER BY 1, 2",
            (list(SERVICE_SCHEMAS),),
        ).fetchall()
        per_schema: dict[str, int] = dict.fromkeys(SERVICE_SCHEMAS, 0)
        rows: dict[str, int] = {}
        for schema, table in tables:
            per_schema[schema] += 1
            count = _scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
            if count:
                rows[f"{schema}.{table}"] = int(count)
        partitions = _scalar(conn, "SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r'")
    timings["total"] = time.perf_counter() - started
    return DemoReport(
        url=mask_url(trading_url),
        server_version=version,
        timings=timings,
        rows=rows,
        tables_per_schema=per_schema,
        partitions=int(partitions),
        bars_loaded=bars,
        positions=positions,
        quotes=quotes,
        backtest=backtest,
        risk=risk,
        events=events,
    )
