"""CLI commands for order books and replays: ``tradedb book``, ``book-snapshots``, ``replay``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from tradedb.cli._common import _database, _print_json, app, err, out

if TYPE_CHECKING:
    from tradedb.books import Book, Finding, Level

SourceOpt = Annotated[str | None, typer.Option(help="Source of the events (needed when there are several).")]
ExchangeOpt = Annotated[str | None, typer.Option(help="MIC of the listing venue, to resolve symbols.")]
PolicyOpt = Annotated[
    str,
    typer.Option(help="Events that make no sense for the book: reject (stop), quarantine (leave out) or log."),
]
StartOpt = Annotated[str, typer.Option(help="Start (ISO 8601 with a zone), included.")]
EndOpt = Annotated[str, typer.Option(help="End (ISO 8601 with a zone), excluded.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("book")
def book(
    symbol: Annotated[str, typer.Argument(help="The symbol.")],
    at: Annotated[str, typer.Option(help="The instant (ISO 8601 with a zone): every event at or before it counts.")],
    depth: Annotated[int, typer.Option(help="Levels per side.")] = 10,
    source: SourceOpt = None,
    exchange: ExchangeOpt = None,
    orders: Annotated[bool, typer.Option(help="Also list the orders of each level in time priority.")] = False,
    policy: PolicyOpt = "log",
    as_json: JsonOpt = False,
) -> None:
    """The order book of SYMBOL at an instant, rebuilt from its stored events (from the latest snapshot)."""
    with _database() as db:
        result = db.books.book_at(
            symbol,
            at,
            depth=depth,
            source=source,
            exchange=exchange,
            orders=orders,
            policy=policy,  # type: ignore[arg-type]
        )
    if as_json:
        _print_json(_book_json(result))
        return
    table = Table("bid orders", "bid size", "bid", "ask", "ask size", "ask orders", title=f"{symbol} at {result.ts}")
    for i in range(max(len(result.bids), len(result.asks))):
        b = result.bids[i] if i < len(result.bids) else None
        a = result.asks[i] if i < len(result.asks) else None
        table.add_row(
            str(b.orders) if b else "",
            f"{b.size:g}" if b else "",
            f"{b.price:g}" if b else "",
            f"{a.price:g}" if a else "",
            f"{a.size:g}" if a else "",
            str(a.orders) if a else "",
        )
    out.print(table)
    if orders:
        for name, levels in (("bid", result.bids), ("ask", result.asks)):
            for level in levels:
                queue = ", ".join(f"{o.order_ref}:{o.size:g}" for o in level.queue or ())
                out.print(f"{name} {level.price:g}: {queue}", highlight=False, soft_wrap=True)
    since = f"the snapshot at {result.snapshot.isoformat()}" if result.snapshot else "the first event"
    err.print(f"{result.events:,} events applied since {since}; source {result.source}", highlight=False)
    _say_findings(result.findings)


def _say_findings(findings: list[Finding]) -> None:
    if not findings:
        return
    err.print(
        f"{len(findings)} event(s) made no sense for the book; the first: {findings[0].message()}", highlight=False
    )


def _book_json(result: Book) -> dict[str, object]:
    def levels(side: list[Level]) -> list[dict[str, object]]:
        return [
            {
                "price": lv.price,
                "size": lv.size,
                "orders": lv.orders,
                **(
                    {
                        "queue": [
                            {"order_ref": o.order_ref, "size": o.size, "since": o.since.isoformat()} for o in lv.queue
                        ]
                    }
                    if lv.queue is not None
                    else {}
                ),
            }
            for lv in side
        ]

    return {
        "symbol": result.symbol,
        "source": result.source,
        "at": result.ts.isoformat(),
        "bids": levels(result.bids),
        "asks": levels(result.asks),
        "events": result.events,
        "snapshot": result.snapshot.isoformat() if result.snapshot else None,
        "findings": [{"check": f.check, "message": f.message()} for f in result.findings],
    }


@app.command("book-snapshots")
def book_snapshots(
    symbol: Annotated[str, typer.Argument(help="The symbol.")],
    start: StartOpt,
    end: EndOpt,
    every: Annotated[str, typer.Option(help="Time between snapshots, e.g. 15min, 1h.")] = "1h",
    source: SourceOpt = None,
    exchange: ExchangeOpt = None,
    policy: PolicyOpt = "log",
) -> None:
    """Store the book of SYMBOL at START and every EVERY up to END, so later books replay only the events since."""
    with _database() as db:
        written = db.books.write_snapshots(
            symbol,
            start,
            end,
            every=every,
            source=source,
            exchange=exchange,
            policy=policy,  # type: ignore[arg-type]
        )
    out.print(f"{written} snapshot(s) of {symbol} written")


@app.command("replay")
def replay(
    mode: Annotated[str, typer.Argument(help="chronological, randomized or bootstrap.")],
    symbols: Annotated[list[str], typer.Argument(help="The symbols.")],
    start: StartOpt,
    end: EndOpt,
    out_file: Annotated[Path, typer.Option("--out", help="The Parquet file to write.")],
    window: Annotated[str, typer.Option(help="randomized: shuffle window, e.g. 5min.")] = "5min",
    method: Annotated[str, typer.Option(help="bootstrap: iid or block.")] = "block",
    block: Annotated[str, typer.Option(help="bootstrap: block length, e.g. 30min.")] = "30min",
    samples: Annotated[int, typer.Option(help="bootstrap: number of resampled series.")] = 1,
    seed: Annotated[int | None, typer.Option(help="randomized and bootstrap: the seed (required).")] = None,
    source: SourceOpt = None,
    exchange: ExchangeOpt = None,
) -> None:
    """Write a replay of the stored order book events of SYMBOLS in [START, END) to a Parquet file."""
    if mode not in ("chronological", "randomized", "bootstrap"):
        raise typer.BadParameter(f"mode {mode!r}: expected chronological, randomized or bootstrap")
    if mode != "chronological" and seed is None:
        raise typer.BadParameter(f"a {mode} replay needs --seed")
    written = 0
    with _database() as db:
        if mode == "chronological":
            stream = db.replay.chronological(symbols, start, end, source=source, exchange=exchange)
        elif mode == "randomized":
            stream = db.replay.randomized(
                symbols, start, end, window=window, seed=seed or 0, source=source, exchange=exchange
            )
        else:
            kind: Literal["iid", "block"] = "iid" if method == "iid" else "block"
            if method not in ("iid", "block"):
                raise typer.BadParameter(f"method {method!r}: expected iid or block")
            stream = db.replay.bootstrap(
                symbols,
                start,
                end,
                method=kind,
                block=block,
                samples=samples,
                seed=seed or 0,
                source=source,
                exchange=exchange,
            )
        # Here, not at the top: every command would pay for Arrow at start (see cli/_lazy.py).
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer: pq.ParquetWriter | None = None
        try:
            for batch in stream:
                if writer is None:
                    tmp = out_file.with_name(out_file.name + ".part")
                    writer = pq.ParquetWriter(tmp, batch.schema)
                writer.write_table(pa.Table.from_batches([batch]))
                written += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
    out_file.with_name(out_file.name + ".part").replace(out_file)
    out.print(f"{written:,} events written to {out_file}")
