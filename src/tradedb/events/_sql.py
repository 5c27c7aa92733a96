"""Named SQL of the events package."""

#: The oldest undelivered events no other relay holds (locked until the claim's transaction ends), kept only where
#: they continue their aggregate: an aggregate's events in the claim count from its lowest undelivered ``seq``
#: (one index probe per aggregate) and stop at the first gap (an event another relay holds). So each aggregate's
#: events are published in order even with several relays.
_CLAIMED = """
WITH claimed AS (
    SELECT event_id, created_at, aggregate_type, aggregate_id, seq
    FROM shared.event_outbox
    WHERE delivered_at IS NULL
    ORDER BY event_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), runs AS (
    SELECT c.*, c.seq - row_number() OVER w AS run, min(c.seq) OVER w AS first_claimed
    FROM claimed c
    WINDOW w AS (PARTITION BY c.aggregate_type, c.aggregate_id ORDER BY c.seq)
), heads AS (
    -- The probe runs once per aggregate (on its first claimed event) and is spread to the others by a window:
    -- no join for the planner to get wrong on a table whose statistics lag its churn.
    SELECT r.*, bool_or(
        CASE WHEN r.seq = r.first_claimed THEN r.seq = (
            SELECT p.seq FROM shared.event_outbox p
            WHERE p.delivered_at IS NULL AND p.aggregate_type = r.aggregate_type AND p.aggregate_id = r.aggregate_id
            ORDER BY p.seq LIMIT 1
        ) END
    ) OVER (PARTITION BY r.aggregate_type, r.aggregate_id) AS startable
    FROM runs r
), ready AS (
    SELECT event_id, created_at FROM heads WHERE startable AND run = first_claimed - 1
)
"""

CLAIM = (
    _CLAIMED
    + """
SELECT o.event_id, o.created_at, o.aggregate_type, o.aggregate_id, o.seq, o.event_type, o.payload
FROM shared.event_outbox o JOIN ready r ON o.event_id = r.event_id AND o.created_at = r.created_at
ORDER BY o.event_id
"""
)

#: The Redis relay's claim marks the batch delivered in the same statement (one row version per event instead of a
#: lock and then an update); the transaction commits only after Redis acknowledged the batch, so a failure in
#: between rolls the marks back. Payloads come back as their JSON text, as Redis gets them.
CLAIM_AND_MARK = (
    _CLAIMED
    + """
UPDATE shared.event_outbox o SET delivered_at = now()
FROM ready r
WHERE o.event_id = r.event_id AND o.created_at = r.created_at
RETURNING o.event_id, o.created_at, o.aggregate_type, o.aggregate_id, o.seq, o.event_type, o.payload::text AS payload
"""
)

ANY_UNDELIVERED = "SELECT EXISTS (SELECT 1 FROM shared.event_outbox WHERE delivered_at IS NULL)"

#: Positions of a PostgreSQL stream: the counter row stays locked until commit, so positions commit in order and
#: without gaps (a reader never skips one that commits later).
TAKE_POSITIONS = """
INSERT INTO shared.event_streams AS s (stream, last_position) VALUES (%s, %s)
ON CONFLICT (stream) DO UPDATE SET last_position = s.last_position + excluded.last_position
RETURNING last_position
"""

MARK_POSITIONED = """
UPDATE shared.event_outbox o SET delivered_at = now(), stream_position = d.position
FROM unnest(%s::bigint[], %s::bigint[]) AS d(event_id, position)
WHERE o.event_id = d.event_id AND o.delivered_at IS NULL
"""

READ_STREAM = """
SELECT event_id, created_at, aggregate_type, aggregate_id, seq, event_type, payload, stream_position
FROM shared.event_outbox
WHERE aggregate_type = %s AND stream_position > %s AND stream_position IS NOT NULL
ORDER BY stream_position
LIMIT %s
"""

ENSURE_GROUP = """
INSERT INTO shared.event_consumer_groups (stream, group_name, position)
SELECT %(stream)s, %(group)s,
       CASE WHEN %(latest)s THEN coalesce((SELECT last_position FROM shared.event_streams WHERE stream = %(stream)s), 0)
            ELSE 0 END
ON CONFLICT DO NOTHING
"""
LOCK_GROUP = """
SELECT position, attempts, extract(epoch FROM clock_timestamp() - updated_at) AS idle
FROM shared.event_consumer_groups WHERE stream = %s AND group_name = %s FOR UPDATE
"""
ADVANCE_GROUP = """
UPDATE shared.event_consumer_groups SET position = %s, attempts = 0, updated_at = clock_timestamp()
WHERE stream = %s AND group_name = %s
"""
FAILED_ATTEMPT = """
UPDATE shared.event_consumer_groups SET attempts = attempts + 1, updated_at = clock_timestamp()
WHERE stream = %s AND group_name = %s
"""
INSERT_DEAD_LETTER = """
INSERT INTO shared.event_dead_letters (group_name, stream, event_id, attempts, error, event)
VALUES (%s, %s, %s, %s, %s, %s)
"""
CLAIM_INBOX = "SELECT shared.claim_inbox(%s, %s)"

KNOWN_STREAMS = "SELECT DISTINCT aggregate_type FROM shared.event_sequences"
UNDELIVERED = """
SELECT count(*) AS undelivered, extract(epoch FROM now() - min(created_at)) AS oldest_age
FROM shared.event_outbox WHERE delivered_at IS NULL
"""
PG_STREAMS = "SELECT stream, last_position FROM shared.event_streams ORDER BY stream"
PG_GROUPS = """
SELECT g.stream, g.group_name, g.position, coalesce(s.last_position, 0) - g.position AS lag, g.attempts
FROM shared.event_consumer_groups g LEFT JOIN shared.event_streams s USING (stream)
ORDER BY g.group_name, g.stream
"""
GROUP_EXISTS = "SELECT EXISTS (SELECT 1 FROM shared.event_consumer_groups WHERE group_name = %s)"
PG_DEAD_LETTERS = "SELECT group_name, count(*) AS n FROM shared.event_dead_letters GROUP BY 1 ORDER BY 1"
DEAD_LETTERS = """
SELECT dead_letter_id, group_name, stream, event_id, attempts, error, event, failed_at
FROM shared.event_dead_letters WHERE group_name = %s ORDER BY dead_letter_id LIMIT %s
"""
TAIL = """
SELECT * FROM (
    SELECT event_id, created_at, aggregate_type, aggregate_id, seq, event_type, payload, stream_position
    FROM shared.event_outbox
    WHERE (%(stream)s::text IS NULL OR aggregate_type = %(stream)s) AND event_id > %(after)s
    ORDER BY CASE WHEN %(after)s > 0 THEN event_id ELSE -event_id END
    LIMIT %(limit)s
) t ORDER BY event_id
"""

#: The cache's snapshot: each security's newest quote where tradedb's kept last quotes agree with coverage for
#: every source (as ``MarketData.latest_quotes`` trusts them; the others are left to PostgreSQL), and the time the
#: snapshot holds for: the statement's start, before its snapshot was taken, so every commit before it is in it.
CACHE_QUOTES = """
WITH s AS (
    SELECT c.security_id, l.ts, l.bid, l.ask, l.bid_size, l.ask_size, c.source,
           l.ts IS NOT NULL AND l.ts = c.last_ts AS agrees
    FROM data_ingestion.coverage c
    LEFT JOIN data_ingestion.last_quotes l ON l.security_id = c.security_id AND l.source = c.source
    WHERE c.security_id = ANY(%s::bigint[]) AND c.table_name = 'quotes' AND c.timeframe = ''
)
SELECT DISTINCT ON (security_id) security_id, ts, bid, ask, bid_size, ask_size, source,
       extract(epoch FROM statement_timestamp())::float8 AS as_of
FROM s WHERE security_id IN (SELECT security_id FROM s GROUP BY 1 HAVING bool_and(agrees))
ORDER BY security_id, ts DESC
"""
CACHE_POSITIONS = """
SELECT a.account_id, p.security_id, p.quantity, p.avg_price, p.realized_pnl, p.total_commission, p.updated_at,
       extract(epoch FROM statement_timestamp())::float8 AS as_of
FROM unnest(%s::text[]) AS a(account_id)
LEFT JOIN execution.positions p ON p.account_id = a.account_id
"""
