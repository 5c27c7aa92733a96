"""One error root, every error class in ``tradedb.errors`` and in ``tradedb.__all__``, exit codes by kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import tradedb
from tradedb import errors

EXIT_CODES = {
    "TradeDBError": 1,
    "ConfigError": 2,
    "ConnectionError": 3,
    "EmbeddedServerError": 4,
    "MigrationError": 5,
    "VerificationError": 6,
    "BackupError": 7,
    "ValidationError": 8,
}


def every_module() -> list[str]:
    names = ["tradedb"]
    for info in pkgutil.walk_packages(tradedb.__path__, "tradedb."):
        if info.name.startswith(("tradedb.migrations", "tradedb.ops.flows")):
            continue  # revisions run under Alembic; the flows need the prefect extra
        names.append(info.name)
    return names


def test_every_error_class_lives_in_errors_and_is_public() -> None:
    found = set()
    for name in every_module():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Exception) and value.__module__.startswith("tradedb"):
                found.add(value)
                assert value.__module__ == "tradedb.errors", f"{value.__name__} is defined in {value.__module__}"
    defined = {v for _, v in inspect.getmembers(errors, inspect.isclass) if v.__module__ == "tradedb.errors"}
    assert found <= defined
    assert {"Overfill", "OrderConflict", "InvalidTransition", "RiskLimitExceeded", "StaleVersion"} <= {
        c.__name__ for c in defined
    }
    for kind in defined:
        assert issubclass(kind, errors.TradeDBError)
        assert kind.__name__ in tradedb.__all__, f"{kind.__name__} is not exported by tradedb"
        assert getattr(tradedb, kind.__name__) is kind


def test_docstring_is_the_default_message() -> None:
    assert errors.NotFoundError().message == "A referenced row does not exist."


def test_exit_codes_differ_by_kind() -> None:
    for name, code in EXIT_CODES.items():
        assert getattr(errors, name).exit_code == code, name
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    # Subclasses share their family's code: a bad fill is bad input, a lock timeout a migration failure.
    assert errors.Overfill.exit_code == 8
    assert errors.MigrationLockTimeout.exit_code == 5
