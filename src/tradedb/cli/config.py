"""``tradedb config ...``: platform settings (``shared.system_config``), typed and audited."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _settings, app, out
from tradedb.config import KNOWN
from tradedb.database import connect

config_app = typer.Typer(
    help=f"Platform settings in shared.system_config (typed: {', '.join(sorted(KNOWN))}; audited).",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool | list | dict) or value is None else _cell(value)


@config_app.command("list")
def config_list() -> None:
    """List the settings (secrets without their values)."""
    with connect(settings=_settings(), min_size=0, max_size=1, name="tradedb-cli") as db:
        rows = db.config.all()
    table = Table("key", "value", "description", "updated", title=f"{len(rows)} setting(s)")
    for r in rows:
        table.add_row(r["key"], "(secret)" if r["is_secret"] else _shown(r["value"]), r["description"] or "",
                      _cell(r["updated_at"]))  # fmt: skip
    out.print(table)


@config_app.command("get")
def config_get(key: str) -> None:
    """Print a setting's value."""
    with connect(settings=_settings(), min_size=0, max_size=1, name="tradedb-cli") as db:
        out.print(_shown(db.config.get(key)), highlight=False)


@config_app.command("set")
def config_set(
    key: str,
    value: Annotated[str, typer.Argument(help="The value: true/false, a number, text, or JSON for other keys.")],
    by: Annotated[str | None, typer.Option("--by", help="Who changes it (recorded in the audit log).")] = None,
    create: Annotated[bool, typer.Option("--create", help="Add a key tradedb does not know.")] = False,
) -> None:
    """Change a setting (audited)."""
    parsed: Any = value
    if key not in KNOWN:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value  # plain text
    with connect(settings=_settings(), min_size=0, max_size=1, name="tradedb-cli", app_user=by) as db:
        typed = db.config.set(key, parsed, create=create)
    out.print(f"{key} = {_shown(typed)}", highlight=False)
