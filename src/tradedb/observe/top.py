"""The terminal view of ``tradedb top``: a snapshot drawn with rich, redrawn every few seconds."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tradedb.observe.activity import Snapshot


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


def _table(title: str, columns: list[str], rows: list[list[Any]], empty: str) -> RenderableType:
    if not rows:
        return Text(f"{title}: {empty}", style="dim")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="ellipsis", no_wrap=column != "query")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    return table


def render(snap: Snapshot) -> RenderableType:
    """Draw a snapshot: activity and waits, blocking chains, pools, replication, partitions, sizes, statements."""
    connections = ", ".join(f"{state} {n}" for state, n in snap.connections.items()) or "none"
    header = Text.assemble(("tradedb top", "bold"), f"  {snap.taken_at}  connections: {connections}")
    parts: list[RenderableType] = [header]
    parts.append(
        _table(
            "Active queries",
            ["pid", "user", "application", "state", "wait", "running", "blocked by", "query"],
            [
                [
                    a["pid"],
                    a["user"],
                    a["application"],
                    a["state"],
                    f"{a['wait_event_type']}:{a['wait_event']}" if a["wait_event_type"] else "",
                    _seconds(a["running_s"]),
                    ",".join(map(str, a["blocked_by"])),
                    a["query"],
                ]
                for a in snap.activity
            ],
            "none",
        )
    )
    chains = "; ".join(" → ".join(map(str, c)) for c in snap.blocking) or "none"
    parts.append(Text(f"Blocking chains (root first): {chains}", style="bold red" if snap.blocking else "dim"))
    parts.append(
        _table(
            "Pools (this process)",
            ["pool", "size", "available", "waiting", "max", "timeouts"],
            [
                [
                    name,
                    s.get("pool_size", 0),
                    s.get("pool_available", 0),
                    s.get("requests_waiting", 0),
                    s.get("pool_max", 0),
                    s.get("requests_errors", 0),
                ]
                for name, s in snap.pools.items()
            ],
            "none open",
        )
    )
    parts.append(
        _table(
            "Replication",
            ["replica", "client", "state", "lag", "behind"],
            [
                [r["name"], r["client"], r["state"], _seconds(r["lag_s"]), _size(r["lag_bytes"])]
                for r in snap.replication
            ],
            "no streaming replicas",
        )
    )
    parts.append(
        _table(
            "Partitions near retention",
            ["table", "partition", "ends", "dropped in"],
            [[p["table"], p["partition"], p["ends"], _seconds(p["dropped_in_s"])] for p in snap.near_retention],
            "none",
        )
    )
    parts.append(
        _table(
            "Rows in default partitions (tradedb maintain moves them)",
            ["table", "rows"],
            [[t, n] for t, n in snap.default_partition_rows.items() if n],
            "none",
        )
    )
    parts.append(
        _table(
            "Largest tables",
            ["table", "table size", "indexes", "live rows", "dead rows", "bloat (est.)", "partitions"],
            [
                [
                    t["table"],
                    _size(t["table_bytes"]),
                    _size(t["index_bytes"]),
                    t["live_rows"],
                    t["dead_rows"],
                    _size(t["bloat_bytes_estimate"]),
                    t["partitions"],
                ]
                for t in snap.tables
            ],
            "none",
        )
    )
    if snap.statements is None:
        parts.append(Text(f"Top statements: {snap.statements_note}", style="dim"))
    else:
        parts.append(
            _table(
                "Top statements (pg_stat_statements)",
                ["calls", "total", "mean", "rows", "query"],
                [
                    [s["calls"], _seconds(s["total_ms"] / 1000), _seconds(s["mean_ms"] / 1000), s["rows"], s["query"]]
                    for s in snap.statements
                ],
                "none yet",
            )
        )
    if snap.slow:
        parts.append(
            _table(
                "Slow statements finished (logged to performance_logs)",
                ["pid", "at least", "query"],
                [[s["pid"], _seconds(s["running_s"]), s["query"]] for s in snap.slow],
                "none",
            )
        )
    return Group(*parts)
