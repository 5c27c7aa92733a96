"""tradedb: the PostgreSQL foundation of a trading platform."""
