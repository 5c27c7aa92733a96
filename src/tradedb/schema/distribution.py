"""Where the tables live: one server, or a Citus cluster (whose coordinator ``tradedb setup`` distributes them on).

A few statements of the features have a variant for Citus (which plans no ``LATERAL ... LIMIT`` over a local row
and joins no local table with a distributed one); they ask this once per Database.
"""

#: Whether the database is a Citus database.
ON_CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"

#: Foreign keys a Citus cluster cannot hold, dropped by ``tradedb setup`` there (verify and the drift check expect
#: them missing on a cluster). A table of the coordinator may not reference a distributed table, nor a distributed
#: table one of the coordinator's: strategy instances and per-instance metrics name an account optionally (so
#: they are not distributed by it), and an order names its strategy instance optionally. The signals' key to the
#: security master goes too (their writer checks the ids, as the tick tables' writers do): with it, Citus would
#: take the strategy tables into its metadata, where a partitioned table with CHECK constraints takes no new
#: partition in 13.2 ("child table is missing constraint"). And an order event's key to its order: Citus 13.2
#: cannot check it when a new partition of the events is created (the check is a join of shards it refuses on a
#: worker); record_fill and the state machine write each event with its order's account, in the order's
#: transaction.
UNHELD_FOREIGN_KEYS: tuple[tuple[str, str], ...] = (
    ("execution.order_events", "fk_order_events_account_id_order_id_orders"),
    ("strategy_engine.strategy_instances", "fk_strategy_instances_account_id_accounts"),
    ("analytics.performance_metrics", "fk_performance_metrics_account_id_accounts"),
    ("execution.orders", "fk_orders_strategy_instance_id_strategy_instances"),
    ("strategy_engine.strategy_signals", "fk_strategy_signals_security_id_securities"),
)
