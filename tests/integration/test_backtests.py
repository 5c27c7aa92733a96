"""Strategies and backtests against a real PostgreSQL, through both APIs."""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import tradedb
from tests.conftest import TestDatabase, docs_example, run_cli
from tests.integration.facade import Api, Feature
from tests.unit.test_strategy_metrics import reference_metrics
from tradedb.errors import (
    BacktestConflict,
    InvalidTransition,
    NotFoundError,
    ParameterError,
    StrategyConflict,
    ValidationError,
)
from tradedb.marketdata.securities import upsert
from tradedb.strategies import Param

T0 = datetime(2024, 1, 2, tzinfo=UTC)
SERIES_TABLES = ("backtest_equity_curve", "backtest_trades", "backtest_positions", "backtest_orders")
SPECS = [
    Param("fast", "int", required=True, min=2, max=50, optimizable=True),
    Param("slow", "int", default=30, min=5, max=200, step=5, optimizable=True),
    Param("mode", "enum", choices=["long", "both"], default="long"),
]


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Api]:
    handle = Api(request.param, db.url, db.settings)
    yield handle
    handle.close()


def features(api: Api) -> tuple[Feature, Feature]:
    return api.feature("strategies"), api.feature("backtests")


@pytest.fixture(scope="module")
def ids(db: TestDatabase) -> dict[str, int]:
    """Securities AAA and BBB in the security master."""
    with tradedb.connect(db.url, settings=db.settings) as handle:
        upsert(handle, [{"symbol": "AAA", "exchange_mic": "XNAS"}, {"symbol": "BBB", "exchange_mic": "XNAS"}])
        return handle.market_data.security_ids(["AAA", "BBB"])


def curve(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    equity = 1e6 * np.cumprod(np.concatenate([[1.0], 1 + rng.normal(0.0004, 0.01, n - 1)]))
    ts = pd.date_range(T0, periods=n, freq="D")
    return pd.DataFrame({"ts": ts, "equity": equity, "cash": equity * 0.5})


def trades(n: int) -> pd.DataFrame:
    pnl = np.where(np.arange(n) % 2 == 1, np.linspace(-50, 80, n), np.nan)
    return pd.DataFrame(
        {
            "symbol": ["AAA", "BBB"] * (n // 2),
            "side": ["buy", "sell"] * (n // 2),
            "quantity": np.full(n, 10.0),
            "price": np.linspace(100, 120, n),
            "executed_at": pd.date_range(T0, periods=n, freq="h"),
            "pnl": pnl,
            "order_id": np.arange(n),
        }
    )


def count(api: Api, table: str, run_id: int | None = None) -> int:
    where = "" if run_id is None else f" WHERE run_id = {int(run_id)}"
    return int(api.fetch_value(f"SELECT count(*) FROM strategy_engine.{table}{where}", readonly=False))


def test_register_is_idempotent_and_a_changed_definition_is_a_conflict(api: Api) -> None:
    strategies, _ = features(api)
    name = f"reg_{api.kind}"
    first = strategies.register(name, SPECS, description="moving averages")
    again = strategies.register(name, SPECS, description="moving averages")
    assert again.strategy_id == first.strategy_id
    assert [p.name for p in first.params] == ["fast", "slow", "mode"]
    with pytest.raises(StrategyConflict, match="register it as a new version"):
        strategies.register(name, [*SPECS[:2]], description="moving averages")
    v2 = strategies.register(name, SPECS[:2], version="2")
    assert v2.strategy_id != first.strategy_id
    assert strategies.get(name).version == "2"  # the newest version by default
    assert strategies.get(name, version="1").strategy_id == first.strategy_id
    with pytest.raises(NotFoundError):
        strategies.get("no_such_strategy")


def test_search_matches_percent_and_underscore_literally(api: Api) -> None:
    strategies, _ = features(api)
    strategies.register(f"a_b_{api.kind}", description="100% invested")
    strategies.register(f"axb_{api.kind}", description="100 percent")
    names = {r["name"] for r in strategies.list(search=f"a_b_{api.kind}")}
    assert names == {f"a_b_{api.kind}"}
    assert {r["name"] for r in strategies.list(search="100%")} >= {f"a_b_{api.kind}"}
    assert f"axb_{api.kind}" not in {r["name"] for r in strategies.list(search="100%")}


def test_instances_are_created_from_valid_parameters_only_and_follow_their_lifecycle(api: Api) -> None:
    strategies, _ = features(api)
    name = f"inst_{api.kind}"
    strategies.register(name, SPECS)
    with pytest.raises(ParameterError) as caught:
        strategies.create_instance(name, "bad", {"fast": 1, "slow": 33, "extra": 1})
    assert {"fast", "slow", "extra"} <= set(caught.value.checks)
    assert all(part in caught.value.message for part in ("fast:", "slow:", "extra:"))
    assert api.fetch_value("SELECT count(*) FROM strategy_engine.strategy_instances WHERE name = 'bad'") == 0
    instance = strategies.create_instance(name, "live", {"fast": "10"})
    assert instance["parameters"] == {"fast": 10, "slow": 30, "mode": "long"}
    assert instance["status"] == "created"
    running = strategies.set_status(instance["instance_id"], "running")
    assert running["status"] == "running" and running["started_at"] is not None
    strategies.set_status(instance["instance_id"], "paused")
    strategies.set_status(instance["instance_id"], "running")
    stopped = strategies.set_status(instance["instance_id"], "stopped")
    assert stopped["stopped_at"] is not None
    with pytest.raises(InvalidTransition, match="it can move to nothing"):
        strategies.set_status(instance["instance_id"], "running")


def test_a_recorded_run_reads_back_in_every_format_with_metrics_equal_to_empyrical(
    api: Api, ids: dict[str, int]
) -> None:
    strategies, backtests = features(api)
    name = f"rec_{api.kind}"
    strategies.register(name, SPECS)
    eq = curve(500)
    positions = pd.DataFrame(
        {"security_id": [ids["AAA"], ids["AAA"]], "ts": [eq.ts[10], eq.ts[100]], "quantity": [10.0, 0.0]}
    )
    orders = pd.DataFrame(
        {
            "order_id": [1, 2],
            "ts": [eq.ts[10], eq.ts[100]],
            "symbol": ["AAA", "AAA"],
            "side": ["buy", "sell"],
            "quantity": [10.0, 10.0],
            "limit_price": [101.0, None],
        }
    )
    run = backtests.record(
        name,
        parameters={"fast": 10, "slow": 40},
        equity=eq,
        trades=trades(40),
        positions=positions,
        orders=orders,
        commission_model={"type": "per_share", "rate": 0.005},
        random_seed=7,
        code_version="abc123",
    )
    assert run.created
    stored = backtests.run(run.run_id)
    assert stored["status"] == "completed"
    assert stored["parameters"] == {"fast": 10, "slow": 40, "mode": "long"}
    assert stored["period_start"] == T0 and stored["period_end"] == T0 + timedelta(days=499)
    assert stored["trade_count"] == 40 and stored["random_seed"] == 7
    r = eq.equity.to_numpy()[1:] / eq.equity.to_numpy()[:-1] - 1
    want = reference_metrics(r, ppy=252.0, risk_free=0.0, bench=None)
    for metric, value in want.items():
        assert stored["metrics"][metric] == pytest.approx(float(value), rel=1e-9), metric
    assert stored["metrics"]["exposure"] == pytest.approx(90 / 500)  # held from point 10 to point 99
    assert float(stored["sharpe_ratio"]) == pytest.approx(float(want["sharpe_ratio"]), rel=1e-9)

    table = backtests.equity(run.run_id)
    assert isinstance(table, pa.Table) and table.num_rows == 500
    np.testing.assert_array_equal(table["equity"].to_numpy(), eq.equity.to_numpy())
    frame = backtests.equity(run.run_id, as_="pandas")
    assert (frame.ts.to_numpy() == eq.ts.to_numpy()).all()
    assert isinstance(backtests.trades(run.run_id, as_="polars"), pl.DataFrame)
    rows = backtests.trades(run.run_id, as_="rows")
    assert [row["order_id"] for row in rows] == list(range(40))
    assert rows[0]["security_id"] == ids["AAA"] and rows[0]["commission"] == 0.0
    assert backtests.orders(run.run_id, as_="rows")[0]["limit_price"] == 101.0
    assert len(backtests.positions(run.run_id, as_="rows")) == 2
    pieces = backtests.stream(run.run_id, "equity", piece_bytes=4096)
    assert len(pieces) > 1 and sum(p.num_rows for p in pieces) == 500
    # simulated orders and fills stay out of execution
    assert api.fetch_value("SELECT count(*) FROM execution.orders WHERE security_id = %s", (ids["AAA"],)) == 0

    backtests.delete(run.run_id)
    assert [count(api, t, run.run_id) for t in SERIES_TABLES] == [0, 0, 0, 0]
    with pytest.raises(NotFoundError):
        backtests.run(run.run_id)


def test_recording_the_same_run_again_is_a_no_op_and_different_results_are_a_conflict(
    api: Api, ids: dict[str, int]
) -> None:
    strategies, backtests = features(api)
    name = f"idem_{api.kind}"
    strategies.register(name, SPECS)
    eq = curve(300)
    first = backtests.record(name, parameters={"fast": 5}, equity=eq, trades=trades(10), random_seed=1)
    # the same run streamed in chunks of other sizes: same content
    chunks = (pa.Table.from_pandas(eq).slice(i, 70) for i in range(0, 300, 70))
    again = backtests.record(name, parameters={"fast": "5"}, equity=chunks, trades=trades(10), random_seed=1)
    assert (again.run_id, again.created) == (first.run_id, False)
    assert count(api, "backtest_equity_curve", first.run_id) == 300
    changed = eq.assign(equity=eq.equity * 1.01)
    with pytest.raises(BacktestConflict, match="different results"):
        backtests.record(name, parameters={"fast": 5}, equity=changed, trades=trades(10), random_seed=1)
    other_seed = backtests.record(name, parameters={"fast": 5}, equity=changed, trades=trades(10), random_seed=2)
    assert other_seed.created
    assert (
        api.fetch_value(
            "SELECT count(*) FROM strategy_engine.backtest_runs WHERE strategy_id = %s",
            (strategies.get(name).strategy_id,),
            readonly=False,
        )
        == 2
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda eq: eq.assign(equity=eq.equity.where(eq.index != 5, np.nan)), "'equity' is missing .* at row 5"),
        (lambda eq: eq.assign(equity=eq.equity.where(eq.index != 5, np.inf)), "NaN or infinite at row 5"),
        (lambda eq: eq.iloc[[0, 2, 1, 3]], "row 2 is out of order"),
        (lambda eq: pd.concat([eq.iloc[:3], eq.iloc[2:4]]), "row 3 is repeated"),
        (lambda eq: eq.iloc[:1], "a run needs at least 2"),
        (lambda eq: eq.assign(ts=eq.ts.dt.tz_localize(None)), "without a time zone"),
        (lambda eq: eq.drop(columns="equity"), "column 'equity' is missing"),
    ],
)
def test_bad_equity_is_a_typed_error_and_writes_nothing(api: Api, change: Any, message: str) -> None:
    strategies, backtests = features(api)
    name = f"bad_{api.kind}"
    strategies.register(name, SPECS)
    before = count(api, "backtest_runs"), count(api, "backtest_equity_curve")
    with pytest.raises(ValidationError, match=message):
        backtests.record(name, parameters={"fast": 5}, equity=change(curve(10)))
    assert (count(api, "backtest_runs"), count(api, "backtest_equity_curve")) == before


def test_bad_parameters_and_unknown_securities_write_nothing(api: Api, ids: dict[str, int]) -> None:
    strategies, backtests = features(api)
    name = f"badp_{api.kind}"
    strategies.register(name, SPECS)
    before = count(api, "backtest_runs")
    other = strategies.register(f"other_{api.kind}", SPECS)
    instance = strategies.create_instance(other.strategy_id, "elsewhere", {"fast": 5})["instance_id"]
    with pytest.raises(ValidationError, match="is not an instance of"):
        backtests.record(name, parameters={"fast": 5}, equity=curve(10), instance_id=instance)
    with pytest.raises(NotFoundError):
        backtests.record(name, parameters={"fast": 5}, equity=curve(10), instance_id=987654)
    with pytest.raises(ParameterError, match="fast: is required"):
        backtests.record(name, parameters={}, equity=curve(10))
    unknown = trades(2).assign(symbol=["ZZZ_NOPE", "ZZZ_NOPE"])
    with pytest.raises((ValidationError, NotFoundError), match="ZZZ_NOPE"):
        backtests.record(name, parameters={"fast": 5}, equity=curve(10), trades=unknown)
    by_id = trades(2).drop(columns="symbol").assign(security_id=987654321)
    with pytest.raises(ValidationError, match=r"unknown securities .*\[987654321\]"):
        backtests.record(name, parameters={"fast": 5}, equity=curve(10), trades=by_id)
    assert count(api, "backtest_runs") == before  # checked before the transaction: nothing written


def test_a_bad_chunk_in_a_stream_leaves_a_failed_run_and_none_of_its_rows(api: Api) -> None:
    strategies, backtests = features(api)
    name = f"stream_{api.kind}"
    strategies.register(name, SPECS)
    good = pa.Table.from_pandas(curve(100))
    bad = pa.Table.from_pandas(curve(100).iloc[50:60].assign(equity=-1.0))

    def chunks() -> Iterator[pa.Table]:
        yield good.slice(0, 50)
        yield bad

    with pytest.raises(ValidationError, match="equity must be positive"):
        backtests.record(name, parameters={"fast": 5}, equity=chunks())
    run = backtests.runs(name, status="failed")[0]
    assert "equity must be positive" in run["error"]
    assert count(api, "backtest_equity_curve", run["run_id"]) == 0
    assert backtests.runs(name) == []  # nothing of it is visible as completed


def test_best_sensitivity_and_compare(api: Api) -> None:
    strategies, backtests = features(api)
    name = f"cmp_{api.kind}"
    strategies.register(name, SPECS)
    runs = {}
    for fast in (5, 10, 20):
        for seed in (1, 2):
            runs[(fast, seed)] = backtests.record(
                name, parameters={"fast": fast}, equity=curve(200, seed=fast * 10 + seed), random_seed=seed
            )
    best = backtests.best(name, "sharpe_ratio", n=2)
    sharpes = sorted((r.metrics["sharpe_ratio"] for r in runs.values()), reverse=True)
    assert [b["metrics"]["sharpe_ratio"] for b in best] == sharpes[:2]
    worst = backtests.best(name, "max_drawdown", n=1, lowest=True)[0]
    assert worst["metrics"]["max_drawdown"] == min(r.metrics["max_drawdown"] for r in runs.values())
    table = backtests.sensitivity(name, "fast", "cagr")
    assert [row["value"] for row in table] == [5, 10, 20]
    for row in table:
        values = [runs[(row["value"], s)].metrics["cagr"] for s in (1, 2)]
        assert row["runs"] == 2
        assert row["mean"] == pytest.approx(sum(values) / 2, rel=1e-12)
    compared = backtests.compare([runs[(5, 1)].run_id, runs[(20, 2)].run_id])
    assert [c["parameters"]["fast"] for c in compared] == [5, 20]
    assert compared[0]["cagr"] == runs[(5, 1)].metrics["cagr"]
    with pytest.raises(ValidationError, match="not a parameter"):
        backtests.sensitivity(name, "nope")


def test_a_benchmark_gives_alpha_and_beta_and_must_overlap(api: Api) -> None:
    strategies, backtests = features(api)
    name = f"bench_{api.kind}"
    strategies.register(name, SPECS)
    eq = curve(250)
    bench = pd.Series(eq.equity.to_numpy() ** 0.5, index=eq.ts)
    run = backtests.record(name, parameters={"fast": 9}, equity=eq, benchmark=bench)
    r = eq.equity.to_numpy()[1:] / eq.equity.to_numpy()[:-1] - 1
    want = reference_metrics(r, ppy=252.0, risk_free=0.0, bench=bench.to_numpy())
    assert run.metrics["beta"] == pytest.approx(float(want["beta"]), rel=1e-9)
    assert run.metrics["alpha"] == pytest.approx(float(want["alpha"]), rel=1e-9, abs=1e-12)
    later = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2031-01-01", periods=3, tz="UTC"))
    with pytest.raises(ValidationError, match="does not overlap the run"):
        backtests.record(name, parameters={"fast": 8}, equity=eq, benchmark=later)


def test_the_docs_example_writes_a_whole_tear_sheet(
    db: TestDatabase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    """The first Python example of the docs' "Strategies and backtests" page, run as written in the test's folder:
    its tear sheet has every plot (tests/docs compares what it prints)."""
    code = docs_example("strategies.md")
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/strategies.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "message='33 is not on the step grid (step 5)', value=None, suggested=35)" in printed
    assert (tmp_path / "ma_cross.html").read_text().count("<svg") == 4


def test_two_identical_recordings_at_once_store_one_run(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        handle.strategies.register("race", SPECS)
        eq = curve(2000, seed=9)

        def record() -> tuple[int, bool]:
            run = handle.backtests.record("race", parameters={"fast": 4}, equity=eq)
            return run.run_id, run.created

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda _: record(), range(4)))
        assert len({run_id for run_id, _ in outcomes}) == 1
        assert sorted(created for _, created in outcomes) == [False, False, False, True]
        runs = handle.backtests.runs("race", status=None)
        assert [r["status"] for r in runs] == ["completed"]


def test_the_cli_lists_shows_validates_and_compares(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        handle.strategies.register("cli_ma", SPECS, description="for the CLI")
        first = handle.backtests.record("cli_ma", parameters={"fast": 5}, equity=curve(100, seed=3)).run_id
        second = handle.backtests.record("cli_ma", parameters={"fast": 6}, equity=curve(100, seed=4)).run_id
    env = db.env()
    listed = run_cli("strategies", "list", "--search", "cli_", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(r["name"], r["runs"]) for r in json.loads(listed.stdout)] == [("cli_ma", 2)]
    shown = run_cli("strategies", "show", "cli_ma", env=env)
    assert re.search(r"slow\s+│\s+int\s+│\s+│\s+30\s+│\s+5\s+│\s+200\s+│\s+5", shown.stdout), shown.stdout
    good = run_cli("strategies", "validate", "cli_ma", "fast=7", "mode=both", "--json", env=env)
    assert good.returncode == 0 and json.loads(good.stdout)["valid"] is True
    bad = run_cli("strategies", "validate", "cli_ma", "fast=70", "slow=33", env=env)
    assert bad.returncode == 8
    assert "above the maximum 50" in bad.stdout and "invalid: fast, slow" in bad.stderr
    malformed = run_cli("strategies", "validate", "cli_ma", "fast", env=env)
    assert malformed.returncode == 8 and "NAME=VALUE" in malformed.stderr and "Traceback" not in malformed.stderr
    runs = run_cli("backtests", "list", "--strategy", "cli_ma", "--order-by", "sharpe_ratio", "--json", env=env)
    rows = json.loads(runs.stdout)
    sharpes = [r["metrics"]["sharpe_ratio"] for r in rows]
    assert {r["run_id"] for r in rows} == {first, second} and sharpes == sorted(sharpes, reverse=True)
    show = run_cli("backtests", "show", str(first), env=env)
    assert f"run {first}: cli_ma v1 (completed)" in show.stdout and "sharpe_ratio" in show.stdout
    compared = run_cli("backtests", "compare", str(first), str(second), "--json", env=env)
    assert [r["parameters"]["fast"] for r in json.loads(compared.stdout)] == [5, 6]
    missing = run_cli("backtests", "show", "999999", env=env)
    assert missing.returncode != 0 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    wrong = run_cli("backtests", "report", str(first), "--html", "/tmp/sheet.pdf", env=env)
    assert wrong.returncode == 8 and "ending in .html" in wrong.stderr


def test_a_streamed_run_holds_a_chunk_at_a_time(db: TestDatabase) -> None:
    """A run streamed in chunks: Arrow memory stays near one chunk whatever the run's length, and NumPy memory is
    the metrics' arrays only (17 bytes a point kept, about 55 at the metrics' peak; measured 54.5)."""
    points, step = 1_000_000, 50_000
    rng = np.random.default_rng(2)
    peaks: list[int] = []

    def chunks() -> Iterator[pa.Table]:
        level = 1e6
        for start in range(0, points, step):
            equity = level * np.cumprod(1 + rng.normal(0, 0.0005, step))
            level = float(equity[-1])
            ts = pa.array(
                np.datetime64("2020-01-01", "us") + (start + np.arange(step)) * np.timedelta64(1, "s"),
                pa.timestamp("us", tz="UTC"),
            )
            peaks.append(pa.total_allocated_bytes())
            yield pa.table({"ts": ts, "equity": equity})

    with tradedb.connect(db.url, settings=db.settings) as handle:
        handle.strategies.register("streamed", SPECS)
        tracemalloc.start()
        run = handle.backtests.record("streamed", parameters={"fast": 5}, equity=chunks(), periods_per_year=252 * 23400)
        _, python_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert run.created and handle.backtests.run(run.run_id)["metrics"]["periods"] == points - 1
        pieces = handle.backtests.stream(run.run_id, "equity", piece_bytes=1 << 20)
        assert sum(p.num_rows for p in pieces) == points
    whole_curve_in_arrow = points * 24
    assert max(peaks) - min(peaks) < whole_curve_in_arrow / 4, peaks  # never the whole run in Arrow at once
    assert python_peak < points * 64, python_peak  # the metrics' arrays, nothing per row
