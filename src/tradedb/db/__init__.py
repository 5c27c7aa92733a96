"""Connections: pools, transactions, retries, replicas, plain operational connections and the embedded server.

This layer knows no feature: the market-data, execution and security packages build on it, and the composition
root (``tradedb.database``) hangs them on a Database.
"""
