"""MkDocs hooks: the CLI reference is generated from the typer app at build time, so it cannot drift.

A page that holds the marker ``<!-- cli-reference -->`` gets, in its place, one section per command of
``tradedb``: its help text, its usage line and a table of its arguments and options.
"""

from __future__ import annotations

from typing import Any

import typer

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the marker with the generated reference (the other pages pass through)."""
    if MARKER not in markdown:
        return markdown
    from tradedb.cli import app

    root = typer.main.get_command(app)
    return markdown.replace(MARKER, "\n".join(_command_sections(root, "tradedb")))


# Typer 0.29 carries its own copy of click, so commands and parameters are told apart by what they have, not
# by click's classes.
def _command_sections(command: Any, path: str) -> list[str]:
    """Markdown for ``command`` and, for a group, each of its subcommands in name order."""
    context = command.context_class(command, info_name=path)
    sections: list[str] = []
    if path != "tradedb":
        sections += [f"### `{path}`", "", _help_text(command), "", "```text", command.get_usage(context), "```", ""]
        rows = [_param_row(param) for param in command.params if not getattr(param, "hidden", False)]
        if rows := [row for row in rows if row]:
            sections += ["| argument or option | meaning |", "|---|---|", *rows, ""]
    if hasattr(command, "list_commands"):
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                sections += _command_sections(sub, f"{path} {name}")
    return sections


def _help_text(command: Any) -> str:
    text = (command.help or command.short_help or "").strip()
    return " ".join(text.split("\b")).strip() or "(no help text)"


def _param_row(param: Any) -> str:
    if param.param_type_name == "option":
        if param.name == "help":
            return ""
        names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        meaning = param.help or ""
        shown = param.default not in (None, False, (), []) and param.show_default is not False
        if shown and not callable(param.default):
            meaning += f" (default: `{param.default}`)"
    else:
        names = f"`{(param.name or '').upper()}`"
        meaning = getattr(param, "help", None) or ""
    return f"| {names} | {_cell(meaning)} |"


def _cell(text: str) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
