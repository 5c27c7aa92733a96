"""Symbology without I/O: identifier schemes and checks, validity ranges, and the statement that resolves symbols.

A security goes by many names: a venue's ticker, the NASDAQ, CQS and ACT spellings of one US listing (``ABR-D``,
``ABRpD``, ``ABR$D``), ISINs, vendor symbols. Each assignment carries the days it held (``valid_from`` inclusive,
``valid_to`` exclusive, either open), so a renamed or reused ticker resolves by date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from tradedb.db.inputs import check_day
from tradedb.errors import AmbiguousSymbol, IdentifierConflict, ValidationError
from tradedb.schema.shared import IDENTIFIER_SCHEMES, SHARED_SCHEMES

#: Longest identifier the column holds (``security_identifiers.value``).
MAX_IDENTIFIER = 64
MAX_SCOPE = 32
#: Longest source name the ``source`` columns hold (market data, reference data, load runs).
MAX_SOURCE_LENGTH = 32
_VALUE = re.compile(r"[^\s]+")
_SYMBOL = re.compile(r"[^\s]{1,32}")
_MIC = re.compile(r"[A-Z0-9]{4}")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")

#: Resolve (value, day) pairs to the securities whose identifiers held the value that day, in one statement.
#: A listing without identifiers of its own is found by its symbol while it was listed. ``schemes`` and
#: ``exchange`` narrow the search; each pair's ordinal comes back so the caller can name the row.
LOOKUP = """
WITH wanted AS (
    SELECT w.value, coalesce(w.day::date, %(day)s::date) AS day, w.n
    FROM unnest(string_to_array(%(values)s::text, E'\n'), string_to_array(%(days)s::text, E'\n'))
         WITH ORDINALITY AS w(value, day, n)
), hits AS (
    SELECT w.n, w.value, w.day, i.security_id, i.scheme
    FROM wanted w JOIN shared.security_identifiers i ON i.value = w.value
    WHERE (%(schemes)s::text[] IS NULL OR i.scheme = ANY(%(schemes)s))
      AND (i.valid_from IS NULL OR i.valid_from <= w.day) AND (i.valid_to IS NULL OR w.day < i.valid_to)
    UNION ALL
    SELECT w.n, w.value, w.day, s.security_id, 'symbol'
    FROM wanted w JOIN shared.securities s ON s.symbol = w.value
    WHERE (%(schemes)s::text[] IS NULL OR 'ticker' = ANY(%(schemes)s))
      AND (s.listed_on IS NULL OR s.listed_on <= w.day) AND (s.delisted_on IS NULL OR w.day < s.delisted_on)
      AND NOT EXISTS (SELECT 1 FROM shared.security_identifiers t WHERE t.security_id = s.security_id)
)
SELECT h.n, h.value, h.day, s.security_id, s.symbol, s.exchange_mic, min(h.scheme) AS scheme
FROM hits h JOIN shared.securities s ON s.security_id = h.security_id
WHERE (%(exchange)s::text IS NULL OR s.exchange_mic = %(exchange)s)
GROUP BY h.n, h.value, h.day, s.security_id, s.symbol, s.exchange_mic
ORDER BY h.n, s.security_id
"""


def lookup_params(
    values: Sequence[str],
    days: Sequence[date] | None,
    *,
    day: date | None = None,
    schemes: Sequence[str] | None = None,
    exchange: str | None = None,
) -> dict[str, Any]:
    """LOOKUP's parameters: the values (and one day each, or ``day`` for all) as newline-joined text.

    One text parameter is dumped in microseconds where a 10,000-element array took milliseconds of Python; values
    hold no whitespace (``check_value``), so the newline cannot appear in one.
    """
    return {
        "values": "\n".join(values),
        "days": None if days is None else "\n".join(d.isoformat() for d in days),
        "day": day,
        "schemes": None if schemes is None else list(schemes),
        "exchange": exchange,
    }


def check_scheme(scheme: Any) -> str:
    if scheme not in IDENTIFIER_SCHEMES:
        raise ValidationError(f"unknown identifier scheme {scheme!r}: one of {', '.join(IDENTIFIER_SCHEMES)}")
    return str(scheme)


def check_symbol(symbol: Any, what: str = "symbol") -> str:
    """Return a symbol as the security master holds it: 1 to 32 characters without spaces."""
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise ValidationError(f"invalid {what} {symbol!r}: 1-32 characters without spaces")
    return symbol


def check_source(source: Any, what: str = "source") -> str:
    """Return the name of a data source (vendor, feed, file family): non-empty, at most 32 characters."""
    if not isinstance(source, str) or not source.strip() or len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError(f"{what} must be a non-empty string of at most {MAX_SOURCE_LENGTH} characters")
    return source


def check_value(value: Any, what: str = "identifier") -> str:
    """Return an identifier value: 1 to 64 characters without spaces."""
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise ValidationError(f"invalid {what} {value!r}: 1-{MAX_IDENTIFIER} characters without spaces")
    if len(value) > MAX_IDENTIFIER:
        raise ValidationError(f"{what} {value[:20]!r}... is {len(value)} characters; the column holds {MAX_IDENTIFIER}")
    return value


def check_mic(mic: Any) -> str:
    """Return a MIC of the right form (whether ISO 10383 lists it is the database's to say)."""
    if not isinstance(mic, str) or not _MIC.fullmatch(mic):
        raise ValidationError(f"exchange must be a 4-character ISO 10383 MIC (e.g. XNYS), got {mic!r}")
    return mic


def check_isin(isin: str) -> str:
    """Return an ISIN whose form and check digit (ISO 6166, Luhn over the letters as numbers) are right."""
    if not _ISIN.fullmatch(isin):
        raise ValidationError(f"invalid ISIN {isin!r}: 2 letters, 9 letters or digits, 1 check digit")
    digits = "".join(str(int(c, 36)) for c in isin[:-1])
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    if (10 - total % 10) % 10 != int(isin[-1]):
        raise ValidationError(f"invalid ISIN {isin!r}: the check digit is wrong")
    return isin


@dataclass(frozen=True)
class Assignment:
    """One identifier held by one security over [valid_from, valid_to) (None: open)."""

    security_id: int
    scheme: str
    value: str
    scope: str = ""
    valid_from: date | None = None
    valid_to: date | None = None

    def overlaps(self, other: Assignment) -> bool:
        lo = max(self.valid_from or date.min, other.valid_from or date.min)
        hi = min(self.valid_to or date.max, other.valid_to or date.max)
        return lo < hi

    def describe(self) -> str:
        scope = f" on {self.scope}" if self.scope else ""
        return f"{self.scheme} {self.value!r}{scope} [{self.valid_from or '…'}, {self.valid_to or '…'})"


def check_assignment(row: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Check one identifier row (security_id or symbol, scheme, value, scope, valid_from, valid_to, source)."""
    where = f"identifier {index}"
    scheme = check_scheme(row.get("scheme"))
    value = check_value(row.get("value"), f"{where}: value")
    if scheme == "isin":
        check_isin(value)
    scope = row.get("scope") or ""
    if not isinstance(scope, str) or len(scope) > MAX_SCOPE:
        raise ValidationError(f"{where}: scope must be text of at most {MAX_SCOPE} characters")
    valid_from = check_day(row.get("valid_from"), f"{where}: valid_from")
    valid_to = check_day(row.get("valid_to"), f"{where}: valid_to")
    if valid_from and valid_to and valid_from >= valid_to:
        raise ValidationError(f"{where} ({value}): valid_from {valid_from} is not before valid_to {valid_to}")
    return {**row, "scheme": scheme, "value": value, "scope": scope, "valid_from": valid_from, "valid_to": valid_to}


def refuse_overlaps(assignments: Iterable[Assignment], existing: Iterable[Assignment] = ()) -> None:
    """Raise IdentifierConflict for the first identifier held by two securities (or twice by one) at once."""
    held: dict[tuple[str, str, str], list[Assignment]] = {}
    for a in existing:
        held.setdefault((a.scheme, a.scope, a.value), []).append(a)
    for a in assignments:
        for b in held.get((a.scheme, a.scope, a.value), []):
            if not a.overlaps(b):
                continue
            if a.security_id == b.security_id:
                raise IdentifierConflict(f"{a.describe()} overlaps its own assignment {b.describe()}")
            if a.scheme not in SHARED_SCHEMES:
                raise IdentifierConflict(
                    f"{a.describe()} for security {a.security_id} overlaps {b.describe()} held by security "
                    f"{b.security_id}"
                )
        held.setdefault((a.scheme, a.scope, a.value), []).append(a)


def resolved(rows: list[dict[str, Any]], count: int, labels: list[str]) -> list[dict[str, Any] | None]:
    """Turn LOOKUP's rows into one match per asked pair (None: unknown); two securities raise AmbiguousSymbol."""
    out: list[dict[str, Any] | None] = [None] * count
    for row in rows:
        i = int(row["n"]) - 1
        first = out[i]
        if first is not None and first["security_id"] != row["security_id"]:
            raise AmbiguousSymbol(
                f"{labels[i]}: {row['value']!r} names securities {first['security_id']} ({first['symbol']} on "
                f"{first['exchange_mic']}) and {row['security_id']} ({row['symbol']} on {row['exchange_mic']}) "
                f"on {row['day']}; pass exchange= or scheme="
            )
        out[i] = row
    return out
