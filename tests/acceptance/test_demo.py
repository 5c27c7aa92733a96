"""`tradedb demo` on a fresh embedded server: the newcomer's first command."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli, shared_tmpdir

pytestmark = pytest.mark.embedded


@pytest.fixture
def home() -> Iterator[Path]:
    path = shared_tmpdir("tradedb-demo-")
    yield path
    run_cli("db", "stop", env=cli_env(TRADEDB_HOME=str(path)))
    shutil.rmtree(path, ignore_errors=True)


def test_demo_on_a_fresh_embedded_server_then_again(home: Path) -> None:
    env = cli_env(TRADEDB_HOME=str(home))
    first = run_cli("demo", env=env)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    version = re.search(r"tradedb demo on (\d+)\.", out)
    assert version is not None and int(version.group(1)) >= 15, out
    assert re.search(r"data_ingestion\.bars\s+│\s+42,228", out), out
    assert re.search(r"shared\.securities\s+│\s+36", out)
    assert re.search(r"data_ingestion\.quotes\s+│\s+1,004,400", out), out
    assert re.search(r"1,004,400 quotes written \(append\) .* rows/s; coverage: 36 series", out), out
    for schema in (
        "shared",
        "data_ingestion",
        "execution",
        "strategy_engine",
        "risk_management",
        "analytics",
        "notification",
        "logging",
    ):
        assert schema in out
    assert "bars loaded" in out and "rows/s" in out
    assert "positions of DEMO-1" in out
    assert re.search(r"SPY\s+│\s+-50\s", out), out  # a flip through zero, short after the round trip
    assert "realized PnL, net of commissions: 7.5" in out
    recorded = re.search(r"backtest recorded as run (\d+); tear sheet: (\S+\.html)", out)
    assert recorded is not None, out
    sheet = Path(recorded.group(2))
    assert sheet.is_relative_to(home) and "<svg" in sheet.read_text(), sheet
    assert re.search(r"trades\s+│\s+\d+", out), out
    # Without Redis the demo's consumer group reads the PostgreSQL streams: every order, fill and position change.
    flowed = re.search(r"events to consumer group tradedb-demo \(postgres streams\): (.*) \(", out)
    assert flowed is not None, out
    # Ten fills of the demo's book and one of the risk drill.
    assert "11 fill.recorded" in flowed.group(1) and "11 position.changed" in flowed.group(1), flowed.group(1)
    assert "1 risk.limit_breach" in flowed.group(1), flowed.group(1)
    # The risk drill: a breach that halts, a risk event, a webhook notification sent to the local receiver.
    drill = r"risk drill on DEMO-RISK: max_drawdown of account DEMO-RISK is 1000 USD; the drawdown from the high is "
    drill += (
        r"\d+(\.\d+)? USD: trading halted \(risk event \d+\), account halted; webhook notification: sent on attempt 1"
    )
    assert re.search(drill, out), out
    assert "1 backtest.finished" in flowed.group(1) and "market_data.batch_committed" in flowed.group(1)
    password = (home / "password").read_text().strip()
    assert password not in out + first.stderr

    verify = run_cli("verify", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    again = run_cli("demo", env=env)
    assert again.returncode == 0, again.stderr
    assert re.search(r"data_ingestion\.bars\s+│\s+42,228", again.stdout)
    assert re.search(r"data_ingestion\.quotes\s+│\s+1,004,400", again.stdout), again.stdout
    assert "quotes written (replace)" in again.stdout
    # A second demo's group sees only what the second run wrote: the replaced quote batches, and the risk drill's
    # resume and new breach (its order and fill are the first run's, recorded once).
    assert re.search(
        r"events to consumer group tradedb-demo \(postgres streams\): \d+ market_data.batch_committed, "
        r"1 risk.limit_breach, 1 risk.resume \(",
        again.stdout,
    ), again.stdout
    assert re.search(drill, again.stdout), again.stdout
    # the same backtest recorded again is the same run
    assert f"backtest recorded as run {recorded.group(1)} (recorded by an earlier demo: the same run)" in again.stdout
