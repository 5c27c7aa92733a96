"""Trading accounts (``db.accounts``): create, list, disable, with the account's base currency.

``api_async`` is the one source of the I/O (``api`` its generated sync twin); validation is in ``_rules``.
"""

from tradedb.accounts._rules import ISO_4217, check_account, check_currency

__all__ = ["ISO_4217", "check_account", "check_currency"]
