"""Optuna studies recorded as optimizations (``pip install 'tradedb[optuna]'``).

``StudyRecorder(db, strategy, study)`` is an Optuna callback: every finished trial becomes an iteration of the
optimization named after the study (number, parameters, value, state, duration; ``trial.user_attrs["metrics"]``
and ``["run_id"]`` when the objective set them). Built on a resumed study, it first records the finished trials
the database does not have yet, so a search that crashed between a trial's end and its recording loses nothing:

    study = optuna.create_study(study_name="ma-2024", storage=storage, load_if_exists=True, direction="maximize")
    recorder = StudyRecorder(db, "ma_crossover", study, objective="sharpe_ratio")
    study.optimize(objective, n_trials=100, callbacks=[recorder])
    recorder.finish()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from tradedb.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from tradedb.strategies.optimizations import Optimizations


class _Database(Protocol):
    """What the recorder needs of a (sync) Database: its optimizations (the layers keep ``Database`` above)."""

    @property
    def optimizations(self) -> Optimizations: ...


_STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}


class StudyRecorder:
    """Records an Optuna study's finished trials in ``db.optimizations`` (see the module docstring)."""

    def __init__(
        self, db: _Database, strategy: int | str, study: optuna.Study, *, objective: str = "objective"
    ) -> None:
        try:
            import optuna
        except ImportError as exc:  # pragma: no cover - the extra is installed in development
            raise ConfigError("Optuna studies need optuna: pip install 'tradedb[optuna]'") from exc
        self._db = db
        self._optuna = optuna
        direction = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"
        self.optimization = db.optimizations.start(
            strategy, study.study_name, objective=objective, direction=direction, method="bayesian"
        )
        self.optimization_id: int = self.optimization["optimization_id"]
        self.recorded = self.sync(study)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._record(trial)

    def sync(self, study: optuna.Study) -> int:
        """Record every finished trial of ``study`` not recorded yet; return how many were new."""
        return sum(self._record(trial) for trial in study.get_trials(deepcopy=False))

    def finish(self, status: str = "completed") -> dict[str, Any]:
        """Close the optimization with its best iteration."""
        return self._db.optimizations.finish(self.optimization_id, status)

    def _record(self, trial: optuna.trial.FrozenTrial) -> bool:
        status = _STATES.get(trial.state.name)
        if status is None:  # running or waiting: not finished
            return False
        value = trial.value if status == "completed" else None
        return self._db.optimizations.record_iteration(
            self.optimization_id,
            trial.number,
            trial.params,
            score=value,
            metrics=trial.user_attrs.get("metrics"),
            status=status,
            duration_seconds=None if trial.duration is None else trial.duration.total_seconds(),
            run_id=trial.user_attrs.get("run_id"),
        )
