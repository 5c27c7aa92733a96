"""The ``tradedb`` command: one module per capability, each a thin layer over the library's public functions.

Importing a module registers its commands on the app of ``_common``.
"""

from __future__ import annotations

import sys

from tradedb.cli import (  # noqa: F401 - registers commands
    analytics,
    archive,
    books,
    cluster,
    config,
    events,
    execution,
    marketdata,
    migrations,
    notify,
    observe,
    ops,
    pitr,
    reference,
    risk,
    security,
    server,
    strategies,
)
from tradedb.cli._common import _state, app, err
from tradedb.errors import TradeDBError

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI: user errors print one line (no traceback unless --verbose) and exit non-zero."""
    try:
        app()  # standalone: typer handles --help, usage errors and typer.Exit itself
    except TradeDBError as exc:
        if _state["verbose"]:
            err.print_exception()
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
