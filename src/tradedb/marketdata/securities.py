"""The security master: add or update listings in bulk (``tradedb ingest securities``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tradedb.errors import ValidationError
from tradedb.reference.symbology import check_symbol
from tradedb.schema.shared import ASSET_TYPES

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

FIELDS = ("symbol", "exchange_mic", "asset_type", "currency", "name", "sector", "industry", "cik", "isin")

ENSURE_EXCHANGES = """
INSERT INTO shared.exchanges (mic, operating_mic, name)
SELECT mic, mic, mic FROM unnest(%s::text[]) AS m(mic)
ON CONFLICT (mic) DO NOTHING
"""
UPSERT = """
INSERT INTO shared.securities AS s (symbol, exchange_mic, asset_type, currency, name, sector, industry, cik, isin)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::text[])
ON CONFLICT (symbol, exchange_mic) WHERE status <> 'delisted' DO UPDATE
SET asset_type = EXCLUDED.asset_type, name = coalesce(EXCLUDED.name, s.name),
    sector = coalesce(EXCLUDED.sector, s.sector), industry = coalesce(EXCLUDED.industry, s.industry),
    cik = coalesce(EXCLUDED.cik, s.cik), isin = coalesce(EXCLUDED.isin, s.isin), updated_at = now()
RETURNING (xmax = 0) AS inserted
"""


def check_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate security rows (symbol, exchange_mic, asset_type, ...); the first bad row raises."""
    checked = []
    seen: set[tuple[str, str | None]] = set()
    for i, row in enumerate(rows):
        unknown = set(row) - set(FIELDS)
        if unknown:
            raise ValidationError(f"security {i}: unknown field(s) {', '.join(sorted(unknown))}")
        symbol = check_symbol(row.get("symbol"))
        mic = row.get("exchange_mic")
        if mic is not None and (not isinstance(mic, str) or len(mic) != 4 or not mic.isalnum() or not mic.isupper()):
            raise ValidationError(f"security {i} ({symbol}): exchange_mic must be a 4-character MIC, got {mic!r}")
        asset_type = row.get("asset_type") or "equity"
        if asset_type not in ASSET_TYPES:
            raise ValidationError(f"security {i} ({symbol}): asset_type must be one of {', '.join(ASSET_TYPES)}")
        if (symbol, mic) in seen:
            raise ValidationError(f"security {i}: {symbol} on {mic} appears twice")
        seen.add((symbol, mic))
        checked.append(
            {**{f: row.get(f) for f in FIELDS}, "asset_type": asset_type, "currency": row.get("currency") or "USD"}
        )
    return checked


def upsert(db: Connections, rows: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """Add new listings and update known ones in one transaction; return (added, updated).

    Venues that are not in ``shared.exchanges`` yet are added by MIC (load the ISO MIC list for names).
    """
    checked = check_rows(rows)
    if not checked:
        return 0, 0
    mics = sorted({r["exchange_mic"] for r in checked if r["exchange_mic"]})
    with db.transaction() as conn:
        conn.execute(ENSURE_EXCHANGES, (mics,))
        cursor = conn.execute(UPSERT, tuple([r[f] for r in checked] for f in FIELDS))
        flags = [row[0] for row in cursor.fetchall()]
    added = sum(1 for f in flags if f)
    return added, len(flags) - added
