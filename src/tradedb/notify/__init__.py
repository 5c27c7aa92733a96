"""Notifications (``db.notifications``): channels with encrypted credentials, and a dispatcher from events to
webhooks, Slack, SMS and email with retries, one delivery per channel and event, every attempt logged.

``api_async`` is the one source of the I/O (``api`` its generated sync twin); validation, event selection and the
backoff are in ``_rules``; ``senders`` does the blocking sends.
"""

from tradedb.notify._rules import Retry
from tradedb.schema.names import CHANNELS

__all__ = ["CHANNELS", "Retry"]
