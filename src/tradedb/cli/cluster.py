"""``tradedb cluster``: the nodes of a Citus cluster (``tradedb.ops.citus``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tradedb.cli._common import _settings, app, out
from tradedb.cli._lazy import lazy
from tradedb.errors import ValidationError

if TYPE_CHECKING:
    from tradedb.ops import citus
else:
    citus = lazy("tradedb.ops.citus")

cluster_app = typer.Typer(help="A Citus cluster's workers: add one, spread the shards (see docs: Scale-out).")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("add-worker")
def add_worker_command(
    node: Annotated[str, typer.Argument(help="The new worker as HOST:PORT (Citus preloaded, same admin login).")],
) -> None:
    """Make a new server a worker of the cluster and of the trading database (then run `tradedb cluster rebalance`)."""
    host, _, port = node.rpartition(":")
    if not host or not port.isdigit():
        raise ValidationError(f"a worker is HOST:PORT, not {node!r}")
    done = citus.add_worker(host, int(port), settings=_settings())
    out.print(f"worker {node} added ({len(done)} change(s))", highlight=False)


@cluster_app.command("rebalance")
def rebalance_command() -> None:
    """Move shards so every worker holds its share; writes go on (create partitions ahead with `tradedb maintain`)."""
    moves = citus.rebalance(settings=_settings())
    out.print(f"{moves} shard move(s)" if moves else "balanced already: nothing to move", highlight=False)
