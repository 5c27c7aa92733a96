"""What a read returns: rows (dicts), an Arrow table, or a pandas or polars DataFrame."""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from tradedb.errors import ConfigError, ValidationError

ReadFormat = Literal["rows", "arrow", "pandas", "polars"]
FORMATS: tuple[str, ...] = ("rows", "arrow", "pandas", "polars")


def check_format(as_: Any) -> str:
    if as_ not in FORMATS:
        raise ValidationError(f"as_ must be one of {', '.join(FORMATS)}; got {as_!r}")
    return str(as_)


def convert(table: pa.Table, as_: str) -> Any:
    """Return an Arrow table as ``as_``: "arrow", "pandas", "polars" or "rows" (dicts)."""
    if as_ == "arrow":
        return table
    if as_ == "rows":
        return table.to_pylist()
    try:
        if as_ == "pandas":
            return table.to_pandas()
        import polars

        return polars.from_arrow(table)
    except ImportError as exc:
        raise ConfigError(f"as_={as_!r} needs {as_}: pip install 'tradedb[dataframes]'") from exc
