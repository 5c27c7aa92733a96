"""Named SQL of the notifications API."""

ADD_CHANNEL = """
INSERT INTO notification.notification_configs (owner, name, channel, settings)
VALUES (%(owner)s, %(name)s, %(channel)s, %(settings)s)
RETURNING config_id
"""
SET_SECRET = """
UPDATE notification.notification_configs SET secret_encrypted = %s, key_id = %s, updated_at = now() WHERE config_id = %s
"""
#: Channels without their secret (whether one is set is shown).
CHANNELS = """
SELECT config_id, owner, name, channel, settings, is_active, secret_encrypted IS NOT NULL AS has_secret, key_id,
    created_at, updated_at
FROM notification.notification_configs
WHERE (%(owner)s::text IS NULL OR owner = %(owner)s) AND (%(all)s OR is_active)
  AND (%(config)s::bigint IS NULL OR config_id = %(config)s)
ORDER BY config_id
"""
SET_ACTIVE = """
UPDATE notification.notification_configs SET is_active = %s, updated_at = now() WHERE config_id = %s RETURNING config_id
"""
ACTIVE_CHANNELS = "SELECT config_id, settings FROM notification.notification_configs WHERE is_active"
ENQUEUE = """
INSERT INTO notification.notification_deliveries (config_id, event_key, event_type, subject, message, payload)
VALUES (%(config)s, %(key)s, %(type)s, %(subject)s, %(message)s, %(payload)s)
ON CONFLICT (config_id, event_key) DO NOTHING
"""
#: The next due delivery, locked: two dispatchers never attempt one delivery at once.
CLAIM = """
SELECT d.delivery_id, d.config_id, d.event_key, d.event_type, d.subject, d.message, d.payload, d.attempts,
    c.channel, c.settings, c.secret_encrypted, c.key_id, c.is_active
FROM notification.notification_deliveries d JOIN notification.notification_configs c USING (config_id)
WHERE d.status = 'pending' AND d.next_attempt_at <= now()
ORDER BY d.next_attempt_at, d.delivery_id
LIMIT 1 FOR UPDATE OF d SKIP LOCKED
"""
#: Seconds until the next pending delivery is due (NULL: none is pending).
NEXT_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
FROM notification.notification_deliveries WHERE status = 'pending'
"""
ATTEMPTED = """
UPDATE notification.notification_deliveries SET attempts = %(attempt)s, status = %(status)s, last_error = %(error)s,
    next_attempt_at = clock_timestamp() + make_interval(secs => %(delay)s),
    sent_at = CASE WHEN %(status)s = 'sent' THEN clock_timestamp() END
WHERE delivery_id = %(delivery)s
"""
LOG_ATTEMPT = """
INSERT INTO notification.notification_logs (config_id, status, subject, message, error, attempts, delivery_id)
VALUES (%(config)s, %(log_status)s, %(subject)s, %(message)s, %(error)s, %(attempt)s, %(delivery)s)
"""
DELIVERIES = """
SELECT * FROM notification.notification_deliveries
WHERE (%(status)s::text IS NULL OR status = %(status)s) AND (%(config)s::bigint IS NULL OR config_id = %(config)s)
ORDER BY delivery_id DESC LIMIT %(limit)s
"""
ATTEMPTS = """
SELECT * FROM notification.notification_logs
WHERE (%(delivery)s::bigint IS NULL OR delivery_id = %(delivery)s)
  AND (%(config)s::bigint IS NULL OR config_id = %(config)s)
ORDER BY sent_at, log_id
"""
