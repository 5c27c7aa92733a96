"""Named SQL of the accounts API."""

#: Why an account was not found: the transaction's account scope and whether row-level security filters this role.
VISIBILITY = (
    "SELECT nullif(current_setting('tradedb.account', true), '') AS scope,"
    " row_security_active('execution.accounts') AS hidden_by_rls"
)
ACCOUNT = "SELECT * FROM execution.accounts WHERE account_id = %s"
ACCOUNTS = """
SELECT * FROM execution.accounts WHERE %(all)s OR is_active ORDER BY account_id
"""
INSERT_ACCOUNT = """
INSERT INTO execution.accounts (account_id, name, base_currency, capital) VALUES (%s, %s, %s, %s)
ON CONFLICT (account_id) DO NOTHING RETURNING *
"""
SET_CAPITAL = "UPDATE execution.accounts SET capital = %s, updated_at = now() WHERE account_id = %s RETURNING *"
SET_ACTIVE = "UPDATE execution.accounts SET is_active = %s, updated_at = now() WHERE account_id = %s RETURNING *"
#: The seeded default_risk_limit (a positive number) as an account-wide max_position_notional of a new account.
DEFAULT_LIMIT = """
INSERT INTO risk_management.risk_limits (account_id, security_id, limit_type, limit_value)
SELECT %s, NULL, 'max_position_notional', (value #>> '{}')::numeric FROM shared.system_config
WHERE key = 'default_risk_limit' AND jsonb_typeof(value) = 'number' AND (value #>> '{}')::numeric > 0
RETURNING limit_value
"""
