"""What every command module shares: the app, the consoles, settings and the CLI's Database."""

from __future__ import annotations

import json
import logging
import sys
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console

from tradedb._version import __version__
from tradedb.database import Database, connect
from tradedb.masking import mask_secrets
from tradedb.settings import Settings, load_settings

ENV_HELP = (
    "Configuration comes from the environment or a .env file: DATABASE_URL (or TRADEDB_DATABASE_URL), else "
    "POSTGRES_HOST/PORT/USER/PASSWORD with TRADING_DB_NAME; with neither, tradedb uses its embedded server "
    "(TRADEDB_HOME, TRADEDB_PG_BINDIR, TRADEDB_EMBEDDED_USER). Every variable: docs/configuration.md."
)

app = typer.Typer(
    help=f"tradedb: the PostgreSQL foundation of a trading platform. {ENV_HELP}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="Manage the embedded PostgreSQL server (used when no DATABASE_URL is set).", no_args_is_help=True
)
migrate_app = typer.Typer(help="Schema migrations (Alembic, shipped inside tradedb).", no_args_is_help=True)
secrets_app = typer.Typer(
    help="Secrets encrypted in the application (AES-GCM) with TRADEDB_ENCRYPTION_KEYS (id:base64key, newest first).",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")
app.add_typer(db_app, name="db")
app.add_typer(migrate_app, name="migrate")

# Piped output is not cut to 80 columns: names in tables must stay whole for grep and logs.
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)
_state: dict[str, Any] = {"verbose": False}


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _MaskingFormatter("tradedb: %(message)s" if not verbose else "%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tradedb").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)


def _settings() -> Settings:
    return load_settings()


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs and tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Global options."""
    _state["verbose"] = verbose
    _configure_logging(verbose)
    if version:
        out.print(f"tradedb {__version__}")
        raise typer.Exit(0)


def _database() -> Database:
    return connect(settings=_settings(), min_size=0, max_size=2, name="tradedb-cli")


def _cell(value: Any) -> str:
    """A table cell: money and quantities without trailing zeros (numeric(20, 10) holds 10 decimals)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    return str(value)
