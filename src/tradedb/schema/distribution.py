"""Where the tables live: one server, or a Citus cluster (whose coordinator ``tradedb setup`` distributes them on).

A few statements of the features have a variant for Citus (which plans no ``LATERAL ... LIMIT`` over a local row
and joins no local table with a distributed one); they ask this once per Database.
"""

#: Whether the database is a Citus database.
ON_CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
