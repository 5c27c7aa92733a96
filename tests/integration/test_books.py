"""Order books and replays against a real PostgreSQL, with the real Databento and LOBSTER files.

The Databento ESM4 market-by-order file is loaded through ``tradedb ingest mbo``; every level after every event
must equal the plain-Python reference book fed from the CSV itself (read by pandas, not by tradedb). LOBSTER's
AMZN day must agree with LOBSTER's own order book file at level 1 wherever the messages determine it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql as psycopg_sql

import tradedb
from tests.conftest import SHARED_DATA, TestDatabase, run_cli
from tests.integration.facade import Api, Feature
from tests.reference_book import ReferenceBook
from tradedb.columnar import reader
from tradedb.errors import BookIntegrityError, NotFoundError, ValidationError
from tradedb.marketdata import files as ingest_files

MBO = SHARED_DATA / "02_tick_quotes_trades" / "databento_glbx_esm4_mbo_2024-05-08T00-00-00.csv"
LOBSTER = SHARED_DATA / "01_lobster_amzn_2012-06-21_L1" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
MBO_ACTIONS = {"A": "new", "M": "modify", "C": "cancel", "R": "clear"}  # T, F: prints, no book change
ES_START, ES_END = datetime(2024, 5, 8, tzinfo=UTC), datetime(2024, 5, 8, 0, 0, 3, tzinfo=UTC)
DEPTH = 10
SYNTH_START = datetime(2024, 5, 9, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def loaded(db: TestDatabase, shared_data: Any) -> TestDatabase:
    """The module's database with ESM4 (through the CLI), AMZN (LOBSTER) and two synthetic symbols loaded."""
    done = run_cli("ingest", "mbo", str(MBO), "--create-securities", "--json", env=db.env())
    assert done.returncode == 0, done.stderr
    with tradedb.connect(db.url, settings=db.settings) as conn:
        day = ingest_files.read_lobster(LOBSTER)
        written = conn.market_data.write_order_book_events(
            day.events, source="lobster", symbol="AMZN", tz="America/New_York", create_securities=True
        )
        assert written.written == 57_515
        conn.market_data.write_order_book_events(synthetic(), source="synth", create_securities=True, batch_rows=1_000)
    return db


def synthetic() -> pa.Table:
    """Two symbols over an hour, 3,000 events each, many sharing a timestamp (ties are ordered by sequence)."""
    rng = np.random.default_rng(11)
    tables = []
    for symbol in ("RPLA", "RPLB"):
        micros = np.sort(rng.integers(0, 3_600_000_000, 3_000) // 1000 * 1000)  # millisecond ties
        tables.append(
            pa.table(
                {
                    "ts": pa.array(np.datetime64("2024-05-09T10:00:00", "us") + micros.astype("timedelta64[us]")).cast(
                        pa.timestamp("us", tz="UTC")
                    ),
                    "symbol": [symbol] * 3_000,
                    "event_type": ["new"] * 3_000,
                    "order_ref": [f"{symbol}-{i}" for i in range(3_000)],
                    "side": rng.choice(["buy", "sell"], 3_000).tolist(),
                    "price": np.where(rng.random(3_000) < 0.5, 99.0, 101.0) - rng.integers(0, 5, 3_000) * 0.5,
                    "size": rng.integers(1, 10, 3_000).astype(float),
                    "sequence": np.arange(3_000, dtype=np.int64),
                }
            )
        )
    return pa.concat_tables(tables)


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, loaded: TestDatabase) -> Iterator[Api]:
    handle = Api(request.param, loaded.url, loaded.settings)
    yield handle
    handle.close()


def mbo_rows() -> list[dict[str, Any]]:
    """The ESM4 events read straight from the CSV by pandas, in file order, as the reference book takes them."""
    raw = pd.read_csv(MBO, dtype={"order_id": str})
    raw = raw[raw["action"] != "N"]
    return [
        {
            "event_type": MBO_ACTIONS.get(action, "print"),
            "order_ref": None if order_id == "0" else order_id,
            "side": {"B": "buy", "A": "sell"}.get(side),
            "price": None if math.isnan(price) else float(price),
            "size": float(size),
            "line": line,
        }
        for line, action, order_id, side, price, size in zip(
            raw.index + 2, raw["action"], raw["order_id"], raw["side"], raw["price"], raw["size"], strict=True
        )
    ]


def test_databento_book_equals_the_reference_after_every_event(api: Api) -> None:
    books = api.feature("books")
    batches = books.book_stream("ESM4", ES_START, ES_END, depth=DEPTH, policy="reject")
    stream = pa.Table.from_batches(batches)
    rows = mbo_rows()
    assert stream.num_rows == len(rows) == 13_796
    assert stream["sequence"].to_pylist() == [r["line"] for r in rows]
    reference = ReferenceBook("quarantine")
    columns = {name: stream[name].to_numpy(zero_copy_only=False) for name in stream.column_names[3:]}
    for i, row in enumerate(rows):
        reference.apply(row["event_type"], row["order_ref"], row["side"], row["price"], row["size"])
        for side, name in (("buy", "bid"), ("sell", "ask")):
            expected = reference.levels(side, DEPTH)
            got = [
                (
                    float(columns[f"{name}_price_{d}"][i]),
                    float(columns[f"{name}_size_{d}"][i]),
                    int(columns[f"{name}_orders_{d}"][i]),
                )
                for d in range(1, DEPTH + 1)
                if not np.isnan(columns[f"{name}_price_{d}"][i])
            ]
            assert got == expected, f"line {row['line']}, {name} side"
    assert reference.findings == []  # the vendor's data makes sense event by event


def test_databento_full_book_with_queues_at_instants(api: Api) -> None:
    """Every level and every queue (time priority) at instants across the file, from book_at."""
    books = api.feature("books")
    rows = mbo_rows()
    raw = pd.read_csv(MBO, usecols=["ts_recv", "action"])
    raw = raw[raw["action"] != "N"]
    times = pd.to_datetime(raw["ts_recv"]).dt.floor("us").tolist()
    reference = ReferenceBook("quarantine")
    checked = 0
    for i, row in enumerate(rows):
        reference.apply(row["event_type"], row["order_ref"], row["side"], row["price"], row["size"])
        last_of_instant = i + 1 == len(rows) or times[i + 1] != times[i]
        if last_of_instant and (i % 7 == 0 or i + 1 == len(rows)):
            book = books.book_at("ESM4", times[i].to_pydatetime(), depth=None, orders=True)
            for side, levels in (("buy", book.bids), ("sell", book.asks)):
                assert [(lv.price, lv.size, lv.orders) for lv in levels] == reference.levels(side)
                for lv in levels[:5]:
                    assert [(o.order_ref, o.size) for o in lv.queue] == reference.queue(side, lv.price)
            checked += 1
    assert checked >= 15


def test_snapshots_change_the_cost_not_the_book(api: Api, loaded: TestDatabase) -> None:
    books = api.feature("books")
    api.execute("DELETE FROM data_ingestion.order_book_snapshots")  # the other API's run wrote some
    at = datetime(2024, 5, 8, 0, 0, 1, 500_000, tzinfo=UTC)
    before = books.book_at("ESM4", at, depth=None, orders=True)
    written = books.write_snapshots("ESM4", ES_START, ES_END, every="250ms")
    assert written == 13  # at the start and every 250 ms up to the end, both included
    after = books.book_at("ESM4", at, depth=None, orders=True)
    assert (after.bids, after.asks) == (before.bids, before.asks)
    assert after.snapshot == at and after.events == 0 and before.events > 13_600
    later = books.book_at("ESM4", at + timedelta(milliseconds=100), depth=5)
    assert later.snapshot == at and 0 < later.events < 100
    listed = books.snapshots("ESM4")
    assert [r["ts"] for r in listed][:2] == [ES_START, ES_START + timedelta(milliseconds=250)]
    assert listed[0]["order_count"] == 13_600  # the vendor's snapshot of the resting orders


def test_lobster_level_one_agrees_where_the_messages_determine_it(loaded: TestDatabase) -> None:
    """LOBSTER's level-1 message file holds only the messages that touch level 1, and starts at 09:30 with a book
    full of orders placed before. So an order added behind the best never shows, an order deleted while behind
    leaves unseen, and pre-open orders appear only when they are cancelled or executed.

    A side's level 1 at price P is determined by the messages when P is better than that side's opening best (no
    pre-open order rests there) and no order of the side was ever added at a better price than P since the open
    (the first such add would be at level 1, so in the file): then the best was never better than P, every order
    at P was added, changed and deleted at level 1, in the file. There the rebuilt book must equal LOBSTER's own
    book file, price and size; everywhere it must equal the plain-Python reference book fed the same messages
    (read by pandas)."""
    with tradedb.connect(loaded.url, settings=loaded.settings) as conn:
        start = datetime(2012, 6, 21, 13, 30, tzinfo=UTC)
        findings: list[Any] = []
        stream = pa.Table.from_batches(
            list(conn.books.book_stream("AMZN", start, start + timedelta(hours=7), depth=1, findings=findings))
        )
    messages = pd.read_csv(LOBSTER)
    messages.columns = ["time", "type", "order_id", "size", "price", "direction"]
    book = pd.read_csv(LOBSTER.with_name(LOBSTER.name.replace("_message_", "_orderbook_")))
    assert stream.num_rows == len(book) == len(messages) == 57_515
    ours = {
        name: stream[f"{name}_1"].to_numpy(zero_copy_only=False)
        for name in ("bid_price", "bid_size", "ask_price", "ask_size")
    }
    theirs = {
        "ask_price": book.iloc[:, 0].to_numpy() / 10_000,
        "ask_size": book.iloc[:, 1].to_numpy().astype(float),
        "bid_price": book.iloc[:, 2].to_numpy() / 10_000,
        "bid_size": book.iloc[:, 3].to_numpy().astype(float),
    }
    opening = {"buy": theirs["bid_price"][0], "sell": theirs["ask_price"][0]}
    kinds = {1: "new", 2: "cancel", 3: "cancel", 4: "execute"}
    reference = ReferenceBook("log")
    extreme = {"buy": -math.inf, "sell": math.inf}  # the best price any order of the side was added at so far
    compared = {"buy": 0, "sell": 0}
    rows = zip(
        messages["type"], messages["order_id"], messages["size"], messages["price"], messages["direction"], strict=True
    )
    for i, (kind, order_id, size, price, direction) in enumerate(rows):
        side, ref, px = ("buy" if direction == 1 else "sell"), str(order_id), price / 10_000
        if kind == 1:
            extreme[side] = max(extreme[side], px) if side == "buy" else min(extreme[side], px)
        reference.apply(kinds.get(kind, "print"), ref, side, px, float(size))
        for side_name, name in (("buy", "bid"), ("sell", "ask")):
            level = reference.levels(side_name, 1) if i % 500 == 0 else None
            best = ours[f"{name}_price"][i]
            queue = reference.queue(side_name, best) if not np.isnan(best) else []
            # The rebuilt book equals the reference: the best level's size, and now and then the best price.
            assert sum(q for _r, q in queue) == (0 if np.isnan(best) else ours[f"{name}_size"][i]), f"row {i}"
            if level is not None:
                assert level == ([] if np.isnan(best) else [(best, ours[f"{name}_size"][i], len(queue))]), f"row {i}"
            if side_name == "buy":
                determined = best > opening["buy"] and best >= extreme["buy"]
            else:
                determined = best < opening["sell"] and best <= extreme["sell"]
            if queue and determined:
                compared[side_name] += 1
                assert (best, ours[f"{name}_size"][i]) == (theirs[f"{name}_price"][i], theirs[f"{name}_size"][i]), (
                    f"row {i}: {name} level 1"
                )
    total = compared["buy"] + compared["sell"]
    print(
        f"LOBSTER level 1: {compared['buy']:,} bid rows and {compared['sell']:,} ask rows compared, all equal; "
        f"{2 * len(book) - total:,} side-rows not determined by the messages; findings: "
        + ", ".join(f"{c} {n}" for c, n in pd.Series([f.check for f in findings]).value_counts().items())
    )
    assert total > 1_000  # 1,373 on this day: the rule is strict, and every row it lets through is equal
    # Messages about orders the file never added (pre-open, or added behind the best) are findings, never absorbed.
    never_added = ~messages["order_id"].isin(messages.loc[messages["type"] == 1, "order_id"])
    unknown = int((messages["type"].isin([2, 3, 4]) & never_added).sum())
    assert sum(f.check == "unknown_order" for f in findings) == unknown == 7_467


def test_events_that_make_no_sense_follow_the_policy(api: Api, loaded: TestDatabase) -> None:
    md, books = api.feature("market_data"), api.feature("books")
    symbol = f"BAD{api.kind[0].upper()}"
    t = datetime(2024, 5, 10, 9, tzinfo=UTC)
    events = [
        (t, symbol, "new", "a", "buy", 10.0, 5.0, 1),
        (t, symbol, "new", "b", "sell", 11.0, 5.0, 2),
        (t, symbol, "cancel", "zz", "buy", 10.0, 1.0, 3),  # an order not in the book
        (t, symbol, "cancel", "a", "buy", 10.0, 9.0, 4),  # more than it has
        (t, symbol, "new", "c", "buy", 12.0, 1.0, 5),  # crosses the ask
        (t, symbol, "new", "d", "buy", 9.5, 2.0, 6),
    ]
    rows = [
        dict(zip(("ts", "symbol", "event_type", "order_ref", "side", "price", "size", "sequence"), e, strict=True))
        for e in events
    ]
    md.write_order_book_events(rows, source="test", create_securities=True)
    with pytest.raises(BookIntegrityError, match=r"sequence 3\): cancel order zz refers to an order that is not in"):
        books.book_at(symbol, t, policy="reject")
    kept = books.book_at(symbol, t, policy="quarantine")
    assert [(lv.price, lv.size) for lv in kept.bids] == [(10.0, 5.0), (9.5, 2.0)]
    assert [f.check for f in kept.findings] == ["unknown_order", "negative_size", "crossed_book"]
    logged = books.book_at(symbol, t, policy="log")
    assert [(lv.price, lv.size) for lv in logged.bids] == [(12.0, 1.0), (9.5, 2.0)]
    assert [f.action for f in logged.findings] == ["applied as it could be"] * 3
    books.write_snapshots(symbol, t - timedelta(minutes=1), t + timedelta(minutes=1), every="1min", policy="quarantine")
    stored = api.fetch_all(
        "SELECT q.check_type, q.status, q.details->>'sequence' AS seq FROM data_ingestion.data_quality_logs q "
        "JOIN shared.securities s USING (security_id) WHERE s.symbol = %s AND q.table_name = 'order_book_events' "
        "ORDER BY seq",
        (symbol,),
    )
    assert [(r["check_type"], r["status"], r["seq"]) for r in stored] == [
        ("unknown_order", "warning", "3"),
        ("negative_size", "warning", "4"),
        ("crossed_book", "warning", "5"),
    ]


def test_bad_book_and_replay_arguments_are_named(api: Api) -> None:
    books, replay = api.feature("books"), api.feature("replay")
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: books.book_at("NOSUCH", ES_END), NotFoundError, "unknown symbol"),
        (lambda: books.book_at("ESM4", ES_END, depth=0), ValidationError, "depth 0"),
        (lambda: books.book_at("ESM4", ES_END, source="lobster"), NotFoundError, "no order book events for ESM4 from"),
        (lambda: books.book_at("ESM4", "yesterday"), ValidationError, "'yesterday' is not a time"),
        (lambda: books.book_at("ESM4", ES_END, policy="drop"), ValidationError, "policy 'drop'"),
        (lambda: books.book_stream("ESM4", ES_END, ES_END + timedelta(hours=1)), NotFoundError, "no order book events"),
        (lambda: books.book_stream("ESM4", ES_END, ES_START), ValidationError, "is not after start"),
        (
            lambda: replay.chronological(["ESM4"], ES_END, ES_END + timedelta(hours=1)),
            NotFoundError,
            "no order book events",
        ),
        (lambda: replay.randomized(["ESM4"], ES_START, ES_END, window="5 parsecs", seed=1), ValidationError, "window"),
        (lambda: replay.randomized(["ESM4"], ES_START, ES_END, seed="x"), ValidationError, "seed 'x'"),
        (
            lambda: replay.bootstrap(["ESM4"], ES_START, ES_END, block="1h", seed=1),
            ValidationError,
            "longer than the series",
        ),
        (lambda: replay.bootstrap(["ESM4"], ES_START, ES_END, method="jackknife", seed=1), ValidationError, "method"),
        (lambda: replay.chronological("ESM4", ES_START, ES_END), ValidationError, "list of symbols"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def ipc(batches: list[pa.RecordBatch]) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


SYMBOLS = ["RPLA", "RPLB"]
HOUR = (SYNTH_START, SYNTH_START + timedelta(hours=1))


def test_chronological_replay_has_every_event_once_in_order(api: Api) -> None:
    table = pa.Table.from_batches(api.feature("replay").chronological(SYMBOLS, *HOUR))
    assert table.num_rows == 6_000
    frame = table.to_pandas()
    assert frame["ts"].is_monotonic_increasing
    keys = list(zip(frame["ts"], frame["symbol"].astype(str), frame["sequence"], strict=True))
    assert keys == sorted(keys)  # ties in time: by security (RPLA was created first), then sequence
    assert set(zip(frame["symbol"].astype(str), frame["sequence"], strict=True)) == {
        (s, i) for s in SYMBOLS for i in range(3_000)
    }
    # Reads of events keep the venue's order at one instant too, whatever order they were written in.
    md = api.feature("market_data")
    t = SYNTH_START + timedelta(hours=2)
    symbol = f"TIE{api.kind[0].upper()}"
    md.write_order_book_events(
        [{"ts": t, "symbol": symbol, "event_type": "new", "order_ref": f"o{i}", "side": "buy", "price": 1.0,
          "size": 1.0, "sequence": i} for i in (3, 2, 1)],
        source="tie", create_securities=True,
    )  # fmt: skip
    read = md.read("order_book_events", symbol, t, t + timedelta(seconds=1), as_="arrow")
    assert read["sequence"].to_pylist() == [1, 2, 3]


def test_randomized_replay_is_seeded_and_keeps_events_in_their_window(api: Api) -> None:
    replay = api.feature("replay")
    first = replay.randomized(SYMBOLS, *HOUR, window="5min", seed=7)
    again = replay.randomized(SYMBOLS, *HOUR, window="5min", seed=7)
    other = replay.randomized(SYMBOLS, *HOUR, window="5min", seed=8)
    assert ipc(first) == ipc(again)
    assert ipc(first) != ipc(other)
    table = pa.Table.from_batches(first).to_pandas()
    chronological = pa.Table.from_batches(replay.chronological(SYMBOLS, *HOUR)).to_pandas()
    assert len(table) == len(chronological) == 6_000
    ident = ["symbol", "sequence"]
    pd.testing.assert_frame_equal(
        table.drop(columns="replay_ts").astype({"symbol": str}).sort_values(ident).reset_index(drop=True),
        chronological.astype({"symbol": str}).sort_values(ident).reset_index(drop=True),
    )
    window = pd.Timedelta(minutes=5)
    assert (table["ts"].dt.floor(window) == table["replay_ts"].dt.floor(window)).all()  # never leaves its window
    assert table["replay_ts"].is_monotonic_increasing
    assert not table["ts"].is_monotonic_increasing  # and it did shuffle


def test_block_bootstrap_draws_whole_blocks_with_replacement(api: Api) -> None:
    replay = api.feature("replay")
    start, end = SYNTH_START, SYNTH_START + timedelta(minutes=55)  # 55 min in 10 min blocks: the last is 5 min
    samples = replay.bootstrap(SYMBOLS, start, end, method="block", block="10min", samples=3, seed=5)
    assert ipc(samples) == ipc(replay.bootstrap(SYMBOLS, start, end, method="block", block="10min", samples=3, seed=5))
    series = pa.Table.from_batches(replay.chronological(SYMBOLS, start, end)).to_pandas()
    series["block"] = (series["ts"] - start) // pd.Timedelta(minutes=10)
    sizes = series.groupby("block").size()
    assert len(samples) == 3
    drawn_blocks = set()
    for sample in samples:
        frame = sample.to_pandas()
        frame["block"] = (frame["ts"] - start) // pd.Timedelta(minutes=10)
        for slot, rows in frame.groupby("slot"):
            assert rows["block"].nunique() == 1  # a slot holds one source block ...
            block = int(rows["block"].iloc[0])
            assert len(rows) == sizes[block]  # ... whole
            offset = rows["replay_ts"] - (start + int(slot) * pd.Timedelta(minutes=10))
            assert (offset == rows["ts"] - (start + block * pd.Timedelta(minutes=10))).all()
            drawn_blocks.add(block)
        assert frame["slot"].max() < 6
    assert len(drawn_blocks) > 1
    iid = replay.bootstrap(SYMBOLS, start, end, method="iid", samples=2, seed=5)
    assert [b.num_rows for b in iid] == [len(series), len(series)]
    assert ipc(iid[:1]) != ipc(iid[1:])


def test_cli_book_and_replay(loaded: TestDatabase, tmp_path: Any) -> None:
    shown = run_cli("book", "ESM4", "--at", "2024-05-08T00:00:01+00:00", "--depth", "3", env=loaded.env())
    assert shown.returncode == 0, shown.stderr
    assert "5214.25" in shown.stdout and "5214" in shown.stdout and "events applied" in shown.stderr
    out = tmp_path / "replay.parquet"
    done = run_cli(
        "replay", "randomized", "RPLA", "RPLB", "--start", HOUR[0].isoformat(), "--end", HOUR[1].isoformat(),
        "--out", str(out), "--seed", "3", "--window", "1min", env=loaded.env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert pq.read_table(out).num_rows == 6_000 and "6,000 events written" in done.stdout
    missing_seed = run_cli(
        "replay", "bootstrap", "RPLA", "--start", HOUR[0].isoformat(), "--end", HOUR[1].isoformat(), "--out", str(out),
        env=loaded.env(),
    )  # fmt: skip
    assert missing_seed.returncode == 2 and "needs --seed" in missing_seed.stderr
    bad_depth = run_cli("book", "ESM4", "--at", "2024-05-08T00:00:01+00:00", "--depth", "0", env=loaded.env())
    assert bad_depth.returncode == 8 and "depth 0" in bad_depth.stderr and "Traceback" not in bad_depth.stderr
    snapped = run_cli(
        "book-snapshots", "RPLA", "--start", HOUR[0].isoformat(), "--end", HOUR[1].isoformat(), "--every", "30min",
        env=loaded.env(),
    )  # fmt: skip
    assert snapped.returncode == 0 and "3 snapshot(s) of RPLA written" in snapped.stdout


def test_sync_and_async_books_agree(loaded: TestDatabase) -> None:
    at = datetime(2024, 5, 8, 0, 0, 0, 700_000, tzinfo=UTC)
    sync_api, async_api = Api("sync", loaded.url, loaded.settings), Api("async", loaded.url, loaded.settings)
    try:
        one: Feature = sync_api.feature("books")
        two: Feature = async_api.feature("books")
        a, b = one.book_at("ESM4", at, depth=20, orders=True), two.book_at("ESM4", at, depth=20, orders=True)
        assert (a.bids, a.asks) == (b.bids, b.asks) and len(a.bids) == 20
        table = a.table()
        assert table.num_rows == 40 and table.slice(0, 1).to_pylist()[0] == {
            "side": "bid", "level": 1, "price": a.bids[0].price, "size": a.bids[0].size, "orders": a.bids[0].orders
        }  # fmt: skip
    finally:
        sync_api.close()
        async_api.close()


def test_binary_decoding_equals_the_csv_read(api: Api) -> None:
    """Replays decode binary COPY; the same rows read as CSV by market_data.read must come out equal: NULLs,
    empty and non-ASCII text, times before 2000 (PostgreSQL's epoch) and at microsecond precision."""
    md, replay = api.feature("market_data"), api.feature("replay")
    symbol = f"BIN{api.kind[0].upper()}"
    t = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    rows = [
        {"ts": t, "symbol": symbol, "event_type": "clear", "order_ref": None, "side": None, "price": None,
         "size": None, "sequence": None},
        {"ts": t, "symbol": symbol, "event_type": "new", "order_ref": "", "side": "buy", "price": 0.1,
         "size": 1e-9, "sequence": -5},
        {"ts": t + timedelta(microseconds=2), "symbol": symbol, "event_type": "new", "order_ref": "ordre-été-✓",
         "side": "sell", "price": 123456789.125, "size": 3.0, "sequence": 2**62},
    ]  # fmt: skip
    md.write_order_book_events(rows, source="bin", create_securities=True)
    start, end = t - timedelta(seconds=1), t + timedelta(seconds=1)
    replayed = pa.Table.from_batches(replay.chronological([symbol], start, end))
    read = md.read("order_book_events", symbol, start, end, as_="arrow")
    columns = ["ts", "event_type", "order_ref", "side", "price", "size", "sequence"]
    assert replayed.select(columns).to_pylist() == read.select(columns).to_pylist()
    assert replayed["order_ref"].to_pylist() == ["", None, "ordre-été-✓"]  # a NULL sequence sorts last
    assert replayed["ts"][0].as_py() == t


def test_maintenance_writes_the_due_snapshots(loaded: TestDatabase) -> None:
    """`tradedb maintain --book-snapshots` stores books on the grid up to each book's last event, once."""
    first = run_cli("maintain", "--book-snapshots", "10min", "--json", env=loaded.env())
    assert first.returncode == 0, first.stderr
    written = json.loads(first.stdout)["book_snapshots"]
    # RPLB's events run from just after 10:00 to just before 11:00: the grid points 10:10 ... 10:50.
    assert written["RPLB/synth"] == 5
    again = run_cli("maintain", "--book-snapshots", "10min", "--json", env=loaded.env())
    assert json.loads(again.stdout)["book_snapshots"].get("RPLB/synth") is None  # nothing due any more
    with tradedb.connect(loaded.url, settings=loaded.settings) as conn:
        book = conn.books.book_at("RPLB", SYNTH_START + timedelta(minutes=20, seconds=1))
        assert book.snapshot == SYNTH_START + timedelta(minutes=20)


def test_a_query_failing_in_the_middle_of_its_copy_raises_its_own_error(loaded: TestDatabase) -> None:
    """Rows are read from libpq directly: an error the server sends after some rows (here a division by zero at
    row 60,000) surfaces as that error, typed, and the pooled connection stays usable."""
    query = psycopg_sql.SQL(
        "SELECT (CASE WHEN g = 60000 THEN g / (g - g) ELSE g END)::bigint AS x FROM generate_series(1, 100000) g"
    )
    with tradedb.connect(loaded.url, settings=loaded.settings, max_size=1) as conn:
        with pytest.raises(tradedb.TradeDBError, match="division by zero"):
            reader.copy_table(conn, query, pa.schema([("x", pa.int64())]))
        assert reader.copy_table(conn, psycopg_sql.SQL("SELECT 7::bigint AS x"), pa.schema([("x", pa.int64())]))[
            "x"
        ].to_pylist() == [7]
