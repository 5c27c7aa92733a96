"""Run every benchmark (``make bench``). Not part of ``make test``."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "setup_timings.py",
    "connections.py",
    "fills.py",
    "risk.py",
    "audit.py",
    "market_data.py",
    "books.py",
    "backtests.py",
    "events.py",
    "observe.py",
    "reference.py",
    "timescale.py",
    "archive.py",
    "citus.py",
    "rekey.py",
]

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    names = sys.argv[1:] or BENCHMARKS
    for name in names:
        print(f"\n== {name}")
        runpy.run_path(str(HERE / name), run_name="__main__")
