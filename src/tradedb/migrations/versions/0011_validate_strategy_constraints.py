"""validate the constraints 0010 added NOT VALID (parameter types, run strategy, directions, iteration status)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 02:46:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINTS = (
    ("strategy_parameters", "ck_strategy_parameters_param_type"),
    ("backtest_runs", "fk_backtest_runs_strategy_id_strategies"),
    ("optimization_runs", "ck_optimization_runs_direction"),
    ("optimization_iterations", "ck_optimization_iterations_status"),
)


def upgrade() -> None:
    for table, name in CONSTRAINTS:
        op.execute(f"ALTER TABLE strategy_engine.{table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    """Nothing to undo: 0010's downgrade drops or replaces the constraints."""
