"""pytest-alembic's built-in tests: single head, upgrade from empty, models match DDL, every step up-down-up."""

from pytest_alembic.tests import (  # noqa: F401 - collected as tests of this module
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
