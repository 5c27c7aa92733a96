"""Fundamentals: ``db.fundamentals`` of the async Database.

Company information (one row per security, replaced by newer data), key statistics (one row per security, date
and source: history kept) and institutional holders (one row per holder and report: history kept, the newest
report per security, holder and source flagged ``is_latest`` by the writer in the same transaction). Rows name
their security by symbol (with ``exchange``) or ``security_id``. Nothing is ever deleted by a cascade.
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradedb.db.inputs import check_day
from tradedb.errors import ValidationError
from tradedb.reference import symbology as sym

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections
    from tradedb.reference.securities_async import AsyncSecurities

COMPANY_FIELDS = ("description", "website", "employees", "country", "city")
STATISTIC_FIELDS = (
    "market_cap",
    "pe_ratio",
    "forward_pe",
    "eps",
    "dividend_yield",
    "beta",
    "shares_outstanding",
    "float_shares",
    "high_52w",
    "low_52w",
)
_INTEGER = ("employees", "shares_outstanding", "float_shares")
_MONEY = ("market_cap", "eps", "high_52w", "low_52w")

UPSERT_COMPANY = """
INSERT INTO data_ingestion.company_info AS c (security_id, description, website, employees, country, city, source)
SELECT * FROM unnest(%(ids)s::bigint[], %(description)s::text[], %(website)s::text[], %(employees)s::int[],
                     %(country)s::text[], %(city)s::text[], %(sources)s::text[])
ON CONFLICT (security_id) DO UPDATE
SET description = coalesce(EXCLUDED.description, c.description), website = coalesce(EXCLUDED.website, c.website),
    employees = coalesce(EXCLUDED.employees, c.employees), country = coalesce(EXCLUDED.country, c.country),
    city = coalesce(EXCLUDED.city, c.city), source = EXCLUDED.source, updated_at = now()
"""
COMPANY = """
SELECT s.symbol, s.exchange_mic, s.name, s.sector, s.industry, c.*
FROM data_ingestion.company_info c JOIN shared.securities s USING (security_id) WHERE c.security_id = %s
"""
UPSERT_STATISTICS = """
INSERT INTO data_ingestion.key_statistics AS k (security_id, as_of, source, market_cap, pe_ratio, forward_pe, eps,
    dividend_yield, beta, shares_outstanding, float_shares, high_52w, low_52w, data)
SELECT * FROM unnest(%(ids)s::bigint[], %(as_of)s::date[], %(sources)s::text[], %(market_cap)s::numeric[],
    %(pe_ratio)s::float8[], %(forward_pe)s::float8[], %(eps)s::numeric[], %(dividend_yield)s::float8[],
    %(beta)s::float8[], %(shares_outstanding)s::bigint[], %(float_shares)s::bigint[], %(high_52w)s::numeric[],
    %(low_52w)s::numeric[], %(data)s::jsonb[])
ON CONFLICT (security_id, as_of, source) DO UPDATE
SET market_cap = EXCLUDED.market_cap, pe_ratio = EXCLUDED.pe_ratio, forward_pe = EXCLUDED.forward_pe,
    eps = EXCLUDED.eps, dividend_yield = EXCLUDED.dividend_yield, beta = EXCLUDED.beta,
    shares_outstanding = EXCLUDED.shares_outstanding, float_shares = EXCLUDED.float_shares,
    high_52w = EXCLUDED.high_52w, low_52w = EXCLUDED.low_52w, data = EXCLUDED.data
"""
STATISTICS = """
SELECT * FROM data_ingestion.key_statistics
WHERE security_id = %(security_id)s AND as_of <= %(day)s AND (%(source)s::text IS NULL OR source = %(source)s)
ORDER BY as_of DESC, source LIMIT 1
"""
STATISTICS_HISTORY = """
SELECT * FROM data_ingestion.key_statistics
WHERE security_id = %(security_id)s AND (%(source)s::text IS NULL OR source = %(source)s) ORDER BY as_of, source
"""
INSERT_HOLDERS = """
INSERT INTO data_ingestion.institutional_holders AS h (security_id, holder, shares, value, pct_held, reported_on,
                                                       source)
SELECT * FROM unnest(%(ids)s::bigint[], %(holders)s::text[], %(shares)s::bigint[], %(values)s::numeric[],
                     %(pcts)s::float8[], %(reported_on)s::date[], %(sources)s::text[])
ON CONFLICT (security_id, holder, reported_on, source) DO UPDATE
SET shares = EXCLUDED.shares, value = EXCLUDED.value, pct_held = EXCLUDED.pct_held
"""
#: Re-flag the newest report per security, holder and source among the securities just written.
FLAG_LATEST = """
UPDATE data_ingestion.institutional_holders h
SET is_latest = (h.reported_on = newest.reported_on)
FROM (
    SELECT security_id, holder, source, max(reported_on) AS reported_on FROM data_ingestion.institutional_holders
    WHERE security_id = ANY(%(ids)s) GROUP BY 1, 2, 3
) newest
WHERE h.security_id = newest.security_id AND h.holder = newest.holder AND h.source = newest.source
  AND h.is_latest IS DISTINCT FROM (h.reported_on = newest.reported_on)
"""
HOLDERS = """
SELECT holder, shares, value, pct_held, reported_on, source, is_latest FROM data_ingestion.institutional_holders
WHERE security_id = %(security_id)s AND (NOT %(latest)s OR is_latest)
ORDER BY reported_on DESC, shares DESC NULLS LAST, holder
"""


class AsyncFundamentals:
    """Company information, key statistics and institutional holders (``db.fundamentals``)."""

    def __init__(self, db: AsyncConnections, securities: AsyncSecurities) -> None:
        self._db = db
        self._securities = securities

    async def write_company_info(self, rows: Iterable[Mapping[str, Any]], *, source: str) -> int:
        """Store company information (description, website, employees, country, city); newer data replaces."""
        checked = [_checked(r, i, "company", COMPANY_FIELDS, ()) for i, r in enumerate(rows)]
        sym.check_source(source)
        for i, row in enumerate(checked):
            country = row.get("country")
            if country is not None and (not isinstance(country, str) or len(country) != 2 or not country.isupper()):
                raise ValidationError(f"company {i}: country must be an ISO 3166 alpha-2 code, got {country!r}")
        if not checked:
            return 0
        ids = await self._securities.ids_of(checked, "company")
        params: dict[str, Any] = {f: [r.get(f) for r in checked] for f in COMPANY_FIELDS}
        return await self._db.execute(UPSERT_COMPANY, {**params, "ids": ids, "sources": [source] * len(ids)})

    async def company_info(self, symbol: str, *, exchange: str | None = None) -> dict[str, Any] | None:
        """The company information of a listing, or None."""
        security = await self._securities.get(symbol, exchange=exchange)
        return await self._db.fetch_one(COMPANY, (security["security_id"],))

    async def write_key_statistics(self, rows: Iterable[Mapping[str, Any]], *, source: str) -> int:
        """Store key statistics per security and ``as_of`` date (history kept); fields beyond the columns go
        to ``data``."""
        sym.check_source(source)
        checked = []
        for i, row in enumerate(rows):
            day = check_day(row.get("as_of"), f"statistics {i}: as_of")
            if day is None:
                raise ValidationError(f"statistics {i}: needs as_of")
            extra = {
                k: v
                for k, v in row.items()
                if k not in (*STATISTIC_FIELDS, "symbol", "security_id", "exchange", "as_of")
            }
            known = _checked(
                {k: v for k, v in row.items() if k not in extra}, i, "statistics", STATISTIC_FIELDS, ("as_of",)
            )
            checked.append({**known, "as_of": day, "data": _json(extra) if extra else None})
        if not checked:
            return 0
        ids = await self._securities.ids_of(checked, "statistics")
        params: dict[str, Any] = {f: [r.get(f) for r in checked] for f in (*STATISTIC_FIELDS, "as_of", "data")}
        return await self._db.execute(UPSERT_STATISTICS, {**params, "ids": ids, "sources": [source] * len(ids)})

    async def key_statistics(
        self,
        symbol: str,
        *,
        as_of: date | str | None = None,
        source: str | None = None,
        exchange: str | None = None,
    ) -> dict[str, Any] | None:
        """The newest statistics of a listing known on ``as_of`` (default today), or None."""
        security = await self._securities.get(symbol, exchange=exchange)
        day = check_day(as_of, "as_of") or date.today()
        return await self._db.fetch_one(
            STATISTICS, {"security_id": security["security_id"], "day": day, "source": source}
        )

    async def key_statistics_history(
        self, symbol: str, *, source: str | None = None, exchange: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stored statistics row of a listing, oldest first."""
        security = await self._securities.get(symbol, exchange=exchange)
        return await self._db.fetch_all(STATISTICS_HISTORY, {"security_id": security["security_id"], "source": source})

    async def write_institutional_holders(
        self, rows: Iterable[Mapping[str, Any]], *, source: str, reported_on: date | str | None = None
    ) -> int:
        """Store holdings (holder, shares, value, pct_held in [0, 1], reported_on) and re-flag ``is_latest``."""
        sym.check_source(source)
        default = check_day(reported_on, "reported_on")
        checked = []
        for i, row in enumerate(rows):
            holder = row.get("holder")
            if not isinstance(holder, str) or not holder.strip():
                raise ValidationError(f"holder {i}: needs the holder's name")
            day = check_day(row.get("reported_on"), f"holder {i}: reported_on") or default
            if day is None:
                raise ValidationError(f"holder {i} ({holder}): needs reported_on")
            shares, value, pct = row.get("shares"), row.get("value"), row.get("pct_held")
            if shares is not None and (not isinstance(shares, int) or shares < 0):
                raise ValidationError(f"holder {i} ({holder}): shares must be a whole number >= 0, got {shares!r}")
            if pct is not None and (not isinstance(pct, int | float) or not 0 <= pct <= 1):
                raise ValidationError(f"holder {i} ({holder}): pct_held must be a fraction in [0, 1], got {pct!r}")
            if value is not None and _number(value) < 0:
                raise ValidationError(f"holder {i} ({holder}): value must be >= 0, got {value!r}")
            checked.append({**row, "reported_on": day})
        if not checked:
            return 0
        ids = await self._securities.ids_of(checked, "holder")
        params = {
            "ids": ids,
            "holders": [r["holder"] for r in checked],
            "shares": [r.get("shares") for r in checked],
            "values": [r.get("value") for r in checked],
            "pcts": [r.get("pct_held") for r in checked],
            "reported_on": [r["reported_on"] for r in checked],
            "sources": [source] * len(checked),
        }
        async with self._db.transaction() as conn:
            cursor = await conn.execute(INSERT_HOLDERS, params)
            written = cursor.rowcount
            await conn.execute(FLAG_LATEST, {"ids": sorted(set(ids))})
        return written

    async def institutional_holders(
        self, symbol: str, *, latest: bool = True, exchange: str | None = None
    ) -> list[dict[str, Any]]:
        """A listing's holders: the newest report of each (``latest``), or every report."""
        security = await self._securities.get(symbol, exchange=exchange)
        return await self._db.fetch_all(HOLDERS, {"security_id": security["security_id"], "latest": latest})


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError(f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"expected a finite number, got {value!r}")
    return number


def _checked(
    row: Mapping[str, Any], index: int, what: str, fields: tuple[str, ...], more: tuple[str, ...]
) -> dict[str, Any]:
    unknown = set(row) - {*fields, *more, "symbol", "security_id", "exchange"}
    if unknown:
        raise ValidationError(f"{what} {index}: unknown field(s) {', '.join(sorted(unknown))}")
    out = dict(row)
    for name in fields:
        value = row.get(name)
        if value is None or name in ("description", "website", "country", "city"):
            continue
        if name in _INTEGER and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValidationError(f"{what} {index}: {name} must be a whole number >= 0, got {value!r}")
        number = _number(value)
        if name in _MONEY and number < 0 and name != "eps":
            raise ValidationError(f"{what} {index}: {name} must be >= 0, got {value!r}")
        if name in _MONEY:
            out[name] = Decimal(str(value))
    return out


def _json(values: Mapping[str, Any]) -> str:
    return json.dumps(values, default=str)


__all__ = ["AsyncFundamentals"]
