"""Platform settings (``db.config``): typed get and set over ``shared.system_config``, and maintenance mode.

``api_async`` is the one source of the I/O (``api`` its generated sync twin); the known keys and their types are in
``_rules``.
"""

from tradedb.config._rules import GUARDED_SCHEMAS, KNOWN

__all__ = ["GUARDED_SCHEMAS", "KNOWN"]
