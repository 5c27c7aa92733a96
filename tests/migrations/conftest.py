"""Fixtures of pytest-alembic: our shipped Alembic config, and an engine on an empty database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.config import Config

from tests.conftest import TestDatabase
from tradedb.db import direct as _connect
from tradedb.ops import migrate


@pytest.fixture
def alembic_config(empty_db: TestDatabase) -> Config:
    return migrate.alembic_config(empty_db.settings)


@pytest.fixture
def alembic_engine(empty_db: TestDatabase) -> sa.Engine:
    return _connect.engine(empty_db.url, empty_db.settings)
