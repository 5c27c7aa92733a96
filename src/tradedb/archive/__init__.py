"""Cold partitions as Parquet files: the files and their checksums (``files``), the catalog reads use to find
archived ranges (``catalog``), and the move out of PostgreSQL and back (``mover``, run by ``tradedb archive``)."""
