"""Columnar I/O shared by the features: PostgreSQL's binary COPY decoded into Arrow (``binary_copy``, read by
``reader_async``), and the compiled-loop helper (``compile``: numba, plain Python without it)."""
