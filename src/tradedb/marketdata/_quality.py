"""Quality checks of market data batches, vectorised: what is wrong with which rows, and how to say so."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.columnar.binary_encode import mask
from tradedb.marketdata._datasets import BARS, QUOTES, Dataset

#: Findings that describe a row the table cannot hold: never written, whatever the policy.
FAIL = "fail"
#: Findings a row may be written with (under the ``log`` policy).
WARNING = "warning"


@dataclass
class Findings:
    """What the checks found in one batch: per check type, a row mask and its status."""

    n: int
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    def add(self, check_type: str, mask: np.ndarray, status: str = FAIL) -> None:
        if not mask.any():
            return
        if check_type in self.masks:
            self.masks[check_type] = self.masks[check_type] | mask
        else:
            self.masks[check_type] = mask
            self.status[check_type] = status

    def bad(self, statuses: tuple[str, ...] = (FAIL, WARNING)) -> np.ndarray:
        """Rows with at least one finding of the given statuses."""
        mask = np.zeros(self.n, dtype=bool)
        for check_type, m in self.masks.items():
            if self.status[check_type] in statuses:
                mask |= m
        return mask

    def reasons(self, index: int) -> list[str]:
        return [t for t, m in self.masks.items() if m[index]]

    def counts(self) -> dict[str, int]:
        return {t: int(m.sum()) for t, m in self.masks.items()}


def check(table: pa.Table, dataset: Dataset, unknown: np.ndarray | None = None) -> Findings:
    """Run the vectorised quality checks of ``dataset`` on a normalised table (security_id resolved; ``unknown``
    marks rows whose symbol or id is not in the security master)."""
    findings = Findings(table.num_rows)
    if unknown is not None:
        findings.add("unknown_security", unknown)
    missing = mask(table["ts"].is_null()) | mask(table["security_id"].is_null())
    if unknown is not None:
        missing &= ~unknown
    for f in dataset.fields:
        if f.required:
            missing |= mask(table[f.name].is_null())
    if dataset is QUOTES:
        missing |= mask(pc.and_(table["bid"].is_null(), table["ask"].is_null()))
    findings.add("missing_value", missing)
    non_finite = np.zeros(table.num_rows, dtype=bool)
    for f in dataset.fields:
        if f.kind == "float":
            non_finite |= mask(pc.invert(pc.is_finite(table[f.name])))
    findings.add("non_finite", non_finite)
    non_positive = np.zeros(table.num_rows, dtype=bool)
    for name in dataset.prices:
        non_positive |= mask(pc.less_equal(table[name], 0))
    findings.add("non_positive_price", non_positive)
    negative = np.zeros(table.num_rows, dtype=bool)
    for name in dataset.sizes:
        negative |= mask(pc.less(table[name], 0))
    for name in dataset.positive_sizes:
        negative |= mask(pc.less_equal(table[name], 0))
    findings.add("negative_size", negative)
    for f in dataset.fields:
        if f.choices:
            outside = pc.and_(table[f.name].is_valid(), pc.invert(pc.is_in(table[f.name], pa.array(f.choices))))
            findings.add("invalid_value", mask(outside))
        if f.max_length is not None:
            findings.add("invalid_value", mask(pc.greater(pc.utf8_length(table[f.name]), f.max_length)))
    if dataset is QUOTES:
        findings.add("crossed_quote", mask(pc.greater(table["bid"], table["ask"])))
    if dataset is BARS:
        high, low, open_, close = table["high"], table["low"], table["open"], table["close"]
        bad = pc.or_(
            pc.or_(
                pc.less(high, pc.max_element_wise(open_, close)), pc.greater(low, pc.min_element_wise(open_, close))
            ),
            pc.less(high, low),
        )
        # A bar missing any of its four prices cannot be consistent either (so both findings name such rows).
        incomplete = pc.or_(pc.or_(open_.is_null(), high.is_null()), pc.or_(low.is_null(), close.is_null()))
        findings.add("ohlc_violation", mask(bad) | mask(incomplete))
    _check_duplicates(table, dataset, findings)
    return findings


def _check_duplicates(table: pa.Table, dataset: Dataset, findings: Findings) -> None:
    """Flag every repeat of a row already in the batch: exact repeats, or key repeats on keyed tables.

    The common case (no repeated security_id and time) costs one sort of an int64 key; only candidate rows are
    compared in full.
    """
    n = table.num_rows
    if n < 2:
        return
    ts = pc.fill_null(table["ts"].cast(pa.int64()), 0).to_numpy()
    sec = pc.fill_null(table["security_id"], 0).to_numpy()
    key = ts * np.int64(1_000_003) + sec  # wraps on overflow: a hash, verified below
    sorted_key = np.sort(key)
    repeated = sorted_key[1:][sorted_key[1:] == sorted_key[:-1]]
    if repeated.size == 0:
        return
    candidates = np.flatnonzero(np.isin(key, repeated))
    columns = ["security_id", "ts", *(dataset.key if dataset.key is not None else dataset.field_names)]
    seen: dict[tuple[Any, ...], int] = {}
    mask = np.zeros(n, dtype=bool)
    values = table.select(columns).take(pa.array(candidates)).to_pylist()
    for index, row in zip(candidates.tolist(), values, strict=True):
        identity = tuple(_hashable(row[c]) for c in columns)
        if identity in seen:
            mask[index] = True
        else:
            seen[identity] = index
    findings.add("duplicate", mask, FAIL if dataset.key is not None else WARNING)


def _hashable(value: Any) -> Any:
    # NaN != NaN: make two NaNs compare equal so that repeated rows with NaN are still repeats.
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def describe(
    table: pa.Table, findings: Findings, rows: np.ndarray, offset: int, first_line: int | None = None
) -> list[dict[str, Any]]:
    """Return, for each row index in ``rows``, its reasons and values (JSON-ready), numbered from ``offset`` (and,
    for rows of a file, its line: ``first_line`` is the line of the input's first row)."""
    out = []
    values = table.take(pa.array(rows, pa.int64())).to_pylist() if rows.size else []
    for index, row in zip(rows.tolist(), values, strict=True):
        described = {"row": offset + index, "reasons": findings.reasons(index), "values": _json_row(row)}
        if first_line is not None:
            described["line"] = first_line + offset + index
        out.append(described)
    return out


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.astimezone(UTC).isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def reject_message(dataset: Dataset, described: list[dict[str, Any]], total: int) -> str:
    """The error of the ``reject`` policy: how many rows failed, and the first few with their reasons."""
    shown = "; ".join(f"{_where(d)} ({', '.join(d['reasons'])}): {_short(d['values'])}" for d in described[:5])
    return f"{total} {dataset.name} row(s) failed quality checks, nothing was written. First: {shown}"


def _where(described: Mapping[str, Any]) -> str:
    return f"line {described['line']}" if "line" in described else f"row {described['row']}"


def _short(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
