"""The declared privilege matrix follows SCHEMA.md."""

from __future__ import annotations

from tradedb.schema import SERVICE_SCHEMAS
from tradedb.schema import privileges as roles


def test_each_service_writes_only_its_own_schema() -> None:
    for role in roles.SERVICE_ROLES:
        if role.service in ("readonly", "backoffice"):
            assert role.writes == ()
        else:
            assert role.writes == (role.service,)


def test_readonly_and_analytics_read_everything() -> None:
    matrix = roles.expected_privileges("x_")
    for schema in SERVICE_SCHEMAS:
        assert matrix[("x_readonly", schema)] == {"SELECT"}
        assert "SELECT" in matrix[("x_analytics", schema)]


def test_data_ingestion_cannot_touch_execution() -> None:
    matrix = roles.expected_privileges("x_")
    assert ("x_data_ingestion", "execution") not in matrix
    assert matrix[("x_execution", "execution")] == {"SELECT", "INSERT", "UPDATE", "DELETE"}


def test_grants_quote_identifiers() -> None:
    statements = roles.grant_statements("x_")
    assert 'GRANT USAGE ON SCHEMA "execution" TO "x_execution"' in statements
    assert all("x_" in s for s in statements)
