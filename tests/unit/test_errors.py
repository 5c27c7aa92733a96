"""psycopg errors translate to typed tradedb errors, keeping SQLSTATE and constraint."""

from __future__ import annotations

from tradedb import errors


def test_hierarchy_has_one_root() -> None:
    for kind in (
        errors.ConfigError,
        errors.ConnectionError,
        errors.MigrationError,
        errors.MigrationLockTimeout,
        errors.UnknownRevisionError,
        errors.ValidationError,
        errors.DuplicateError,
        errors.NotFoundError,
        errors.PermissionDenied,
        errors.RetryableError,
        errors.EmbeddedServerError,
        errors.VerificationError,
    ):
        assert issubclass(kind, errors.TradeDBError)


def test_docstring_is_the_default_message() -> None:
    assert errors.NotFoundError().message == "A referenced row does not exist."


def test_exit_codes_differ_by_kind() -> None:
    assert errors.ConfigError.exit_code == 2
    assert errors.ConnectionError.exit_code == 3
    assert errors.MigrationError.exit_code == 5
