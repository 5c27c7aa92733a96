"""The shipped Alembic environment and revisions of tradedb."""
