"""Optimizations and iterations, and an Optuna study that survives being killed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

import tradedb
from tests.conftest import REPO, TestDatabase
from tests.integration.facade import Api, Feature
from tradedb.errors import NotFoundError, ParameterError, ValidationError
from tradedb.marketdata.securities import upsert
from tradedb.strategies.examples import MA_CROSSOVER_PARAMS


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Api]:
    handle = Api(request.param, db.url, db.settings)
    handle.feature("strategies").register("ma_crossover", MA_CROSSOVER_PARAMS)
    yield handle
    handle.close()


def optimizations(api: Api) -> Feature:
    return api.feature("optimizations")


def test_iterations_are_recorded_once_and_the_best_follow_the_direction(api: Api) -> None:
    opt = optimizations(api)
    up = opt.start("ma_crossover", f"up-{api.kind}", objective="sharpe_ratio", space={"fast": [2, 20]})
    assert (
        opt.start("ma_crossover", f"up-{api.kind}", objective="sharpe_ratio")["optimization_id"]
        == up["optimization_id"]
    )  # a resumed search finds its optimization
    oid = up["optimization_id"]
    scores = {0: 0.5, 1: 1.5, 2: -0.2, 3: 1.1}
    for i, score in scores.items():
        assert opt.record_iteration(oid, i, {"fast": 2 + i, "slow": 30}, score=score, duration_seconds=0.1)
    assert not opt.record_iteration(oid, 1, {"fast": 9, "slow": 30}, score=99.0)  # the first recording stays
    assert opt.record_iteration(oid, 4, {"fast": 7, "slow": 30}, status="pruned")
    assert [r["iteration"] for r in opt.best(oid, 2)] == [1, 3]
    assert [r["iteration"] for r in opt.iterations(oid)] == [0, 1, 2, 3, 4]
    finished = opt.finish(oid)
    assert finished["status"] == "completed" and finished["best_score"] == 1.5
    assert finished["best_parameters"] == {"fast": 3, "slow": 30, "commission_per_share": 0.005}

    down = opt.start("ma_crossover", f"down-{api.kind}", objective="max_drawdown", direction="minimize")
    for i, score in scores.items():
        opt.record_iteration(down["optimization_id"], i, {"fast": 2 + i, "slow": 30}, score=score)
    assert [r["iteration"] for r in opt.best(down["optimization_id"], 1)] == [2]


def test_bad_iterations_are_typed_errors(api: Api) -> None:
    opt = optimizations(api)
    oid = opt.start("ma_crossover", f"bad-{api.kind}")["optimization_id"]
    with pytest.raises(ParameterError, match="fast: 1 is below the minimum 2"):
        opt.record_iteration(oid, 0, {"fast": 1, "slow": 30}, score=1.0)
    with pytest.raises(ValidationError, match="needs its score"):
        opt.record_iteration(oid, 0, {"fast": 3, "slow": 30})
    with pytest.raises(ValidationError, match="finite number"):
        opt.record_iteration(oid, 0, {"fast": 3, "slow": 30}, score=float("nan"))
    with pytest.raises(ValidationError, match="direction"):
        opt.start("ma_crossover", "x", direction="up")
    with pytest.raises(ValidationError, match="exists with objective"):
        opt.start("ma_crossover", f"bad-{api.kind}", objective="cagr")
    with pytest.raises(NotFoundError):
        opt.get(987654)
    assert opt.iterations(oid) == []


def test_a_killed_optuna_search_resumes_and_loses_no_finished_trial(db: TestDatabase, tmp_path: Path) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        handle.strategies.register("ma_crossover", MA_CROSSOVER_PARAMS)
        upsert(handle, [{"symbol": "OPT", "exchange_mic": "XNAS"}])
        security = handle.market_data.security_ids(["OPT"])["OPT"]
    journal = tmp_path / "study.log"
    command = [
        sys.executable,
        str(REPO / "tests" / "integration" / "optuna_worker.py"),
        f"--journal={journal}",
        "--study=resume-me",
        f"--security={security}",
        "--trials=10",
    ]
    killed = subprocess.run([*command, "--kill-at=4"], capture_output=True, text=True, env=db.env(), check=False)
    assert killed.returncode == -9, killed.stderr  # SIGKILL, right after trial 4 finished in Optuna's storage
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="resume-me", storage=storage).trials
    assert [t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE] == [0, 1, 2, 3, 4]

    with tradedb.connect(db.url, settings=db.settings) as handle:
        oid = handle.optimizations.start("ma_crossover", "resume-me", objective="sharpe_ratio")["optimization_id"]
        before = [r["iteration"] for r in handle.optimizations.iterations(oid)]
    assert before == [0, 1, 2, 3]  # trial 4 finished but was never recorded: the process died first

    resumed = subprocess.run(command, capture_output=True, text=True, env=db.env(), check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "synced 1" in resumed.stdout  # the resumed recorder found trial 4 and recorded it
    study = optuna.load_study(study_name="resume-me", storage=storage)
    complete = {t.number: t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    with tradedb.connect(db.url, settings=db.settings) as handle:
        rows = handle.optimizations.iterations(oid)
        run = handle.optimizations.get(oid)
        for row in rows:
            trial = complete[row["iteration"]]
            assert row["score"] == trial.value and row["parameters"]["fast"] == trial.params["fast"]
            assert row["backtest_run_id"] == trial.user_attrs["run_id"]
            assert handle.backtests.run(row["backtest_run_id"])["parameters"]["slow"] == trial.params["slow"]
    assert sorted(r["iteration"] for r in rows) == sorted(complete) == list(range(10))
    assert run["status"] == "completed"
    assert run["best_score"] == max(t.value for t in complete.values() if t.value is not None)
