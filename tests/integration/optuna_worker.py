"""A search run as its own process by test_optimizations: an Optuna study over the moving-average crossover,
recorded in tradedb; with ``--kill-at N`` the process kills itself (SIGKILL) right after trial N finished in
Optuna's storage and before tradedb recorded it."""

from __future__ import annotations

import argparse
import os
import signal

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend

import tradedb
from tradedb.strategies.examples import ma_crossover
from tradedb.strategies.optuna_study import StudyRecorder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--security", type=int, required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--kill-at", type=int, default=-1)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(args.journal))
    study = optuna.create_study(
        study_name=args.study,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=len(study_trials(storage, args.study))),
    )
    rng = np.random.default_rng(5)
    ts = (np.datetime64("2024-01-02T00:00", "us") + np.arange(600) * np.timedelta64(1, "D")).astype("datetime64[us]")
    close = 100 * np.cumprod(1 + rng.normal(0.0003, 0.01, 600))
    with tradedb.connect() as db:

        def objective(trial: optuna.Trial) -> float:
            fast = trial.suggest_int("fast", 2, 20)
            slow = trial.suggest_int("slow", 21, 80)
            sim = ma_crossover(ts, close, args.security, fast=fast, slow=slow)
            run = db.backtests.record(
                "ma_crossover", parameters={"fast": fast, "slow": slow}, equity=sim.equity, trades=sim.trades
            )
            trial.set_user_attr("run_id", run.run_id)
            trial.set_user_attr("metrics", {"cagr": run.metrics["cagr"]})
            return float(run.metrics["sharpe_ratio"] or 0.0)

        def crash(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.number == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        recorder = StudyRecorder(db, "ma_crossover", study, objective="sharpe_ratio")
        print(f"synced {recorder.recorded}", flush=True)
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        study.optimize(objective, n_trials=max(0, args.trials - done), callbacks=[crash, recorder])
        recorder.finish()


def study_trials(storage: optuna.storages.BaseStorage, name: str) -> list[object]:
    try:
        return list(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        return []


if __name__ == "__main__":
    main()
