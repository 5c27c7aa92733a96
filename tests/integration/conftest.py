"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import TestDatabase
from tests.integration.facade import Feature
from tests.integration.market import Market


@pytest.fixture(params=["sync", "async"])
def md(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Feature]:
    market = Market(request.param, db)
    yield market
    market.close()
