"""Named SQL of the platform settings API."""

#: Secrets are listed without their value (it is only ever stored encrypted, in value_encrypted).
SETTINGS = """
SELECT key, value::text AS value, description, is_secret, updated_at FROM shared.system_config ORDER BY key
"""
SETTING = "SELECT key, value::text AS value, is_secret FROM shared.system_config WHERE key = %s"
SET = """
INSERT INTO shared.system_config (key, value, description) VALUES (%(key)s, %(value)s::jsonb, %(description)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),
    description = coalesce(EXCLUDED.description, system_config.description)
RETURNING key, value::text AS value
"""
#: Tables of the guarded schemas without the maintenance trigger (a table added without it is not guarded).
UNGUARDED = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'maintenance_mode')
ORDER BY 1
"""
