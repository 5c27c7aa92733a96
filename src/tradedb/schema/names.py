"""Names the schema defines that code above it checks against, without SQLAlchemy (the models load lazily)."""

from __future__ import annotations

#: The service schemas of the trading database, in dependency order.
SERVICE_SCHEMAS: tuple[str, ...] = (
    "shared",
    "data_ingestion",
    "execution",
    "strategy_engine",
    "risk_management",
    "analytics",
    "notification",
    "logging",
)

#: The kinds of risk limit (a CHECK constraint of ``risk_management.risk_limits``).
LIMIT_TYPES: tuple[str, ...] = (
    "max_position_quantity",
    "max_position_notional",
    "max_order_quantity",
    "max_daily_loss",
    "max_drawdown",
)

#: Alert severities (risk alerts and notifications).
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

#: Notification channels (a CHECK constraint of ``notification.notifications``).
CHANNELS: tuple[str, ...] = ("email", "sms", "webhook", "slack")
