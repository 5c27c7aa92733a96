"""The reference data's SQL, named."""

from __future__ import annotations

from tradedb.reference.symbology import LOOKUP

__all__ = ["LOOKUP"]

GET = """
SELECT security_id, symbol, exchange_mic, asset_type, currency, name, sector, industry, market_cap, isin, figi, cik,
       status, listed_on, delisted_on
FROM shared.securities
WHERE symbol = %(symbol)s AND (%(exchange)s::text IS NULL OR exchange_mic = %(exchange)s)
ORDER BY status = 'delisted', delisted_on DESC NULLS FIRST, security_id
"""
BY_ID = """
SELECT security_id, symbol, exchange_mic, asset_type, currency, name, sector, industry, market_cap, isin, figi, cik,
       status, listed_on, delisted_on
FROM shared.securities WHERE security_id = %s
"""
ACTIVE = """
SELECT security_id, symbol, exchange_mic, asset_type, currency, name, sector, industry, market_cap, isin, figi, cik,
       status, listed_on, delisted_on
FROM shared.securities
WHERE (%(exchange)s::text IS NULL OR exchange_mic = %(exchange)s)
  AND (%(asset_type)s::text IS NULL OR asset_type = %(asset_type)s)
  AND (CASE WHEN %(day)s::date IS NULL THEN status = 'active'
       ELSE (listed_on IS NULL OR listed_on <= %(day)s) AND (delisted_on IS NULL OR %(day)s < delisted_on)
            AND status <> 'suspended' END)
ORDER BY symbol, exchange_mic
"""
KNOWN_EXCHANGES = "SELECT mic FROM shared.exchanges WHERE mic = ANY(%s)"
ADD_VENUES = """
INSERT INTO shared.exchanges (mic, operating_mic, name)
SELECT * FROM unnest(%(mics)s::text[], %(mics)s::text[], %(names)s::text[])
ON CONFLICT (mic) DO NOTHING
"""
UPSERT_EXCHANGES = """
INSERT INTO shared.exchanges AS e (mic, operating_mic, name, acronym, country, city, status)
SELECT * FROM unnest(%(mic)s::text[], %(operating_mic)s::text[], %(name)s::text[], %(acronym)s::text[],
                     %(country)s::text[], %(city)s::text[], %(status)s::text[])
ON CONFLICT (mic) DO UPDATE
SET operating_mic = EXCLUDED.operating_mic, name = EXCLUDED.name, acronym = EXCLUDED.acronym,
    country = EXCLUDED.country, city = EXCLUDED.city, status = EXCLUDED.status, updated_at = now()
RETURNING (xmax = 0) AS inserted
"""
ADD = """
INSERT INTO shared.securities (symbol, exchange_mic, asset_type, currency, name, sector, industry, isin, cik,
                               listed_on)
VALUES (%(symbol)s, %(exchange)s, %(asset_type)s, %(currency)s, %(name)s, %(sector)s, %(industry)s, %(isin)s,
        %(cik)s, %(listed_on)s)
RETURNING security_id
"""
UPDATE = """
UPDATE shared.securities SET {assignments}, updated_at = now() WHERE security_id = %(security_id)s
"""
DELIST = """
WITH target AS (
    UPDATE shared.securities SET status = 'delisted', delisted_on = %(on)s, updated_at = now()
    WHERE security_id = ANY(%(ids)s) AND status <> 'delisted'
    RETURNING security_id
), closed AS (
    UPDATE shared.security_identifiers SET valid_to = %(on)s
    WHERE security_id IN (SELECT security_id FROM target) AND scheme NOT IN ('isin', 'cusip', 'cik', 'sedol')
      AND (valid_to IS NULL OR valid_to > %(on)s) AND (valid_from IS NULL OR valid_from < %(on)s)
)
INSERT INTO data_ingestion.delisted_symbols (security_id, delisted_on, last_price, reason)
SELECT security_id, %(on)s, %(last_price)s, %(reason)s FROM target
ON CONFLICT (security_id) DO UPDATE
SET delisted_on = EXCLUDED.delisted_on, last_price = coalesce(EXCLUDED.last_price, delisted_symbols.last_price),
    reason = coalesce(EXCLUDED.reason, delisted_symbols.reason)
"""
DELISTED = """
SELECT s.security_id, s.symbol, s.exchange_mic, s.name, d.delisted_on, d.last_price, d.reason, d.notes
FROM data_ingestion.delisted_symbols d JOIN shared.securities s USING (security_id)
WHERE (%(since)s::date IS NULL OR d.delisted_on >= %(since)s)
  AND (%(exchange)s::text IS NULL OR s.exchange_mic = %(exchange)s)
ORDER BY d.delisted_on DESC, s.symbol
"""
IDENTIFIERS = """
SELECT identifier_id, security_id, scheme, value, scope, valid_from, valid_to, source
FROM shared.security_identifiers WHERE security_id = ANY(%s) ORDER BY security_id, scheme, valid_from NULLS FIRST
"""
HELD = """
SELECT security_id, scheme, value, scope, valid_from, valid_to FROM shared.security_identifiers
WHERE value = ANY(%s)
"""
INSERT_IDENTIFIERS = """
INSERT INTO shared.security_identifiers (security_id, scheme, value, scope, valid_from, valid_to, source)
SELECT * FROM unnest(%(security_id)s::bigint[], %(scheme)s::text[], %(value)s::text[], %(scope)s::text[],
                     %(valid_from)s::date[], %(valid_to)s::date[], %(source)s::text[])
"""
#: End a listing's ticker spellings of a symbol (its venue ticker, its US national symbol) on a day.
CLOSE_TICKERS = """
UPDATE shared.security_identifiers SET valid_to = %(on)s
WHERE security_id = %(security_id)s AND value = %(value)s AND scheme IN ('ticker', 'nasdaq')
  AND (valid_from IS NULL OR valid_from < %(on)s) AND (valid_to IS NULL OR valid_to > %(on)s)
RETURNING scheme, scope
"""
HAS_IDENTIFIERS = "SELECT 1 FROM shared.security_identifiers WHERE security_id = %s LIMIT 1"
RENAME = "UPDATE shared.securities SET symbol = %s, updated_at = now() WHERE security_id = %s"

# --- listing files ------------------------------------------------------------------------------------------

#: The security holding each listing's key on a day: by identifier, or (a listing without identifiers, as
#: market-data writers create them) by symbol and venue.
MATCH_LISTINGS = """
WITH w AS (
    SELECT * FROM unnest(%(schemes)s::text[], %(values)s::text[], %(scopes)s::text[], %(mics)s::text[])
        WITH ORDINALITY AS w(scheme, value, scope, mic, n)
)
SELECT DISTINCT ON (w.n) w.n, s.security_id, s.name, s.symbol, s.exchange_mic
FROM w JOIN LATERAL (
    SELECT i.security_id FROM shared.security_identifiers i
    WHERE i.scheme = w.scheme AND i.scope = w.scope AND i.value = w.value
      AND (i.valid_from IS NULL OR i.valid_from <= %(day)s) AND (i.valid_to IS NULL OR %(day)s < i.valid_to)
    UNION ALL
    SELECT s.security_id FROM shared.securities s
    WHERE s.symbol = w.value AND s.status <> 'delisted' AND (s.exchange_mic = w.mic OR s.exchange_mic IS NULL)
      AND NOT EXISTS (SELECT 1 FROM shared.security_identifiers t WHERE t.security_id = s.security_id)
) m ON true
JOIN shared.securities s ON s.security_id = m.security_id
ORDER BY w.n, s.security_id
"""
UPDATE_LISTINGS = """
UPDATE shared.securities s
SET name = coalesce(r.name, s.name), exchange_mic = coalesce(r.mic, s.exchange_mic),
    asset_type = r.asset_type, sector = coalesce(r.sector, s.sector), industry = coalesce(r.industry, s.industry),
    cik = coalesce(r.cik, s.cik), isin = coalesce(r.isin, s.isin), market_cap = coalesce(r.market_cap, s.market_cap),
    status = 'active', updated_at = now()
FROM unnest(%(ids)s::bigint[], %(names)s::text[], %(mics)s::text[], %(asset_types)s::text[], %(sectors)s::text[],
            %(industries)s::text[], %(ciks)s::text[], %(isins)s::text[], %(market_caps)s::numeric[])
     AS r(security_id, name, mic, asset_type, sector, industry, cik, isin, market_cap)
WHERE s.security_id = r.security_id
"""
INSERT_LISTINGS = """
INSERT INTO shared.securities (symbol, exchange_mic, asset_type, currency, name, sector, industry, cik, isin,
                               market_cap)
SELECT * FROM unnest(%(symbols)s::text[], %(mics)s::text[], %(asset_types)s::text[], %(currencies)s::text[],
                     %(names)s::text[], %(sectors)s::text[], %(industries)s::text[], %(ciks)s::text[],
                     %(isins)s::text[], %(market_caps)s::numeric[])
RETURNING security_id, symbol, exchange_mic
"""
#: Identifiers a listing file names, added where the security does not hold them on the day already. A reused
#: identifier holds from the day its earlier holder's assignment ended (else since always).
ADD_LISTING_IDENTIFIERS = """
INSERT INTO shared.security_identifiers (security_id, scheme, value, scope, valid_from, source)
SELECT r.security_id, r.scheme, r.value, r.scope,
       (SELECT max(p.valid_to) FROM shared.security_identifiers p
        WHERE p.value = r.value AND p.scheme = r.scheme AND p.scope = r.scope AND p.valid_to <= %(day)s),
       %(source)s
FROM unnest(%(ids)s::bigint[], %(schemes)s::text[], %(values)s::text[], %(scopes)s::text[])
     AS r(security_id, scheme, value, scope)
WHERE NOT EXISTS (
    SELECT 1 FROM shared.security_identifiers i
    WHERE i.security_id = r.security_id AND i.scheme = r.scheme AND i.scope = r.scope AND i.value = r.value
      AND (i.valid_to IS NULL OR i.valid_to > %(day)s)
)
"""
#: Listings of the venues a complete snapshot covers that it does not name.
ABSENT = """
SELECT security_id FROM shared.securities
WHERE status = 'active' AND exchange_mic = ANY(%(mics)s)
  AND security_id NOT IN (SELECT unnest(%(seen)s::bigint[]))
"""
INSERT_STATISTICS = """
INSERT INTO data_ingestion.key_statistics AS k (security_id, as_of, source, market_cap)
SELECT * FROM unnest(%(ids)s::bigint[], %(days)s::date[], %(sources)s::text[], %(market_caps)s::numeric[])
ON CONFLICT (security_id, as_of, source) DO UPDATE SET market_cap = EXCLUDED.market_cap
"""

# --- index membership ---------------------------------------------------------------------------------------

ADD_MEMBERS = """
INSERT INTO shared.index_members (index_name, security_id, member_from, source)
SELECT %(index)s::text, r.security_id, r.member_from, %(source)s::text
FROM unnest(%(ids)s::bigint[], %(froms)s::date[]) AS r(security_id, member_from)
WHERE NOT EXISTS (
    SELECT 1 FROM shared.index_members m
    WHERE m.index_name = %(index)s::text AND m.security_id = r.security_id AND m.member_to IS NULL
)
"""
END_MEMBERS = """
UPDATE shared.index_members SET member_to = %(on)s
WHERE index_name = %(index)s::text AND member_to IS NULL AND security_id NOT IN (SELECT unnest(%(ids)s::bigint[]))
  AND (member_from IS NULL OR member_from < %(on)s)
"""
UNIVERSE = """
SELECT s.security_id, s.symbol, s.exchange_mic, s.name, m.member_from, m.member_to
FROM shared.index_members m JOIN shared.securities s USING (security_id)
WHERE m.index_name = %(index)s
  AND (m.member_from IS NULL OR m.member_from <= %(day)s) AND (m.member_to IS NULL OR %(day)s < m.member_to)
ORDER BY s.symbol
"""
INDEXES = """
SELECT index_name, count(*) FILTER (WHERE member_to IS NULL) AS members, count(*) AS memberships,
       min(member_from) AS first_added
FROM shared.index_members GROUP BY index_name ORDER BY index_name
"""

# --- data status and statistics -----------------------------------------------------------------------------

UPSERT_STATUS = """
INSERT INTO data_ingestion.symbol_data_status AS d (security_id, date, source, status, error)
SELECT * FROM unnest(%(ids)s::bigint[], %(days)s::date[], %(sources)s::text[], %(statuses)s::text[],
                     %(errors)s::text[])
ON CONFLICT (security_id, date, source) DO UPDATE
SET status = EXCLUDED.status, error = EXCLUDED.error, attempts = d.attempts + 1, last_attempt = now()
"""
DATA_STATUS = """
SELECT s.symbol, s.exchange_mic, d.security_id, d.date, d.source, d.status, d.error, d.attempts, d.last_attempt
FROM data_ingestion.symbol_data_status d JOIN shared.securities s USING (security_id)
WHERE (%(day)s::date IS NULL OR d.date = %(day)s) AND (%(source)s::text IS NULL OR d.source = %(source)s)
  AND (%(status)s::text IS NULL OR d.status = %(status)s)
  AND (%(security_id)s::bigint IS NULL OR d.security_id = %(security_id)s)
ORDER BY d.date DESC, s.symbol, d.source
LIMIT %(limit)s
"""
#: Securities trading on a day (listed, not yet delisted, not suspended) without a successful load that day.
NEEDING_DATA = """
SELECT s.security_id, s.symbol, s.exchange_mic, d.status, d.attempts, d.error
FROM shared.securities s
LEFT JOIN data_ingestion.symbol_data_status d
       ON d.security_id = s.security_id AND d.date = %(day)s AND d.source = %(source)s
WHERE (s.listed_on IS NULL OR s.listed_on <= %(day)s) AND (s.delisted_on IS NULL OR %(day)s < s.delisted_on)
  AND s.status <> 'suspended' AND (d.status IS NULL OR d.status <> 'success')
  AND (%(exchange)s::text IS NULL OR s.exchange_mic = %(exchange)s)
  AND (%(asset_type)s::text IS NULL OR s.asset_type = %(asset_type)s)
ORDER BY s.symbol, s.exchange_mic
"""
STATS = """
SELECT exchange_mic, asset_type, count(*) AS securities, count(*) FILTER (WHERE status = 'active') AS active,
       count(*) FILTER (WHERE status = 'delisted') AS delisted, count(*) FILTER (WHERE status = 'suspended')
       AS suspended
FROM shared.securities GROUP BY exchange_mic, asset_type ORDER BY exchange_mic NULLS LAST, asset_type
"""

ANALYZE = "ANALYZE shared.securities, shared.security_identifiers, shared.index_members"
