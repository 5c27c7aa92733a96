"""tradedb on a Citus cluster: the cluster's nodes in the trading database, and the tables' distribution.

``tradedb setup`` calls this when the server it is given is a Citus coordinator (the ``citus`` extension in its
maintenance database, or ``TRADEDB_CITUS=true``). The operator builds the cluster first, in the coordinator's
maintenance database (``citus_set_coordinator_host``, ``citus_add_node`` per worker); setup takes the workers from
there: it creates the trading database on every node, the extension in it, the same nodes in its metadata, and
after the migrations distributes the tables of ``DISTRIBUTED`` and ``REFERENCE``. Migrations stay frozen text that
knows nothing of Citus: distribution is run-time placement, like the partitions setup creates around today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.errors import ClusterError, ValidationError
from tradedb.schema import privileges as roles
from tradedb.settings import Settings, load_settings, with_dbname

#: Tables distributed by a column, in co-location groups: the first table of a group anchors it, the others are
#: co-located with it, so a join or a transaction on one key stays on one shard.
DISTRIBUTED: dict[str, tuple[tuple[str, str], ...]] = {
    "market data, by security": (
        ("data_ingestion.quotes", "security_id"),
        ("data_ingestion.market_trades", "security_id"),
        ("data_ingestion.bars", "security_id"),
        ("data_ingestion.order_book_events", "security_id"),
        ("data_ingestion.order_book_snapshots", "security_id"),
        ("data_ingestion.coverage", "security_id"),
        ("data_ingestion.last_quotes", "security_id"),
    ),
}
#: Tables copied whole to every node: what the shards' triggers read (the maintenance guard's flag).
REFERENCE: tuple[str, ...] = ("shared.maintenance_state",)
_IS_CITUS = "SELECT extversion FROM pg_extension WHERE extname = 'citus'"
_NODES = """
SELECT nodename, nodeport, groupid = 0 AS coordinator FROM pg_dist_node
WHERE noderole = 'primary' AND isactive ORDER BY groupid
"""
_DISTRIBUTION = """
SELECT logicalrelid::regclass::text, partmethod, column_to_column_name(logicalrelid, partkey), colocationid
FROM pg_dist_partition
"""


@dataclass(frozen=True)
class Node:
    """A node of the cluster, as the coordinator's metadata names it."""

    host: str
    port: int
    coordinator: bool = False

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def citus_version(conn: psycopg.Connection[TupleRow]) -> str | None:
    """Return the Citus extension's version in the connected database, or None."""
    row = conn.execute(_IS_CITUS).fetchone()
    return str(row[0]) if row else None


def require_citus(conn: psycopg.Connection[TupleRow]) -> None:
    """ClusterError unless the connected database has Citus (cluster operations on a plain server)."""
    if citus_version(conn) is None:
        raise ClusterError(
            f"database {conn.info.dbname!r} is not on a Citus coordinator (no citus extension): "
            "cluster operations need one (see the docs' Scale-out page)"
        )


def is_coordinator(conn: psycopg.Connection[TupleRow], settings: Settings) -> bool:
    """True when setup must treat this server as a Citus coordinator (its maintenance database has Citus)."""
    found = citus_version(conn) is not None
    if settings.citus and not found:
        raise ClusterError(
            "TRADEDB_CITUS=true but the server has no citus extension in its maintenance database: "
            "preload citus (shared_preload_libraries) and run CREATE EXTENSION citus there first"
        )
    return found


def nodes(conn: psycopg.Connection[TupleRow]) -> list[Node]:
    """The active primary nodes of the connected database's metadata, the coordinator first."""
    return [Node(str(h), int(p), bool(c)) for h, p, c in conn.execute(_NODES)]


def workers_of(conn: psycopg.Connection[TupleRow], known: list[Node] | None = None) -> list[Node]:
    """The cluster's workers (of ``known``, else of the connected database's metadata); ClusterError if none."""
    found = [n for n in (nodes(conn) if known is None else known) if not n.coordinator]
    if not found:
        raise ClusterError(
            "the Citus coordinator has no workers: add them in its maintenance database first "
            "(SELECT citus_add_node(host, port) per worker), then run setup again"
        )
    return found


def node_url(url: str, node: Node, dbname: str) -> str:
    """``url`` (an admin URL of the coordinator) pointed at another node of the cluster."""
    info = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(with_dbname(url, dbname)).items() if v is not None}
    info.pop("hostaddr", None)
    info.update(host=node.host, port=str(node.port))
    return psycopg.conninfo.make_conninfo("", **info)


def prepare(url: str, settings: Settings, admin: psycopg.Connection[TupleRow], run: Any) -> None:
    """Make the trading database a database of the cluster: the extension on every node, the nodes in its metadata.

    ``url`` is setup's admin URL of the coordinator, ``admin`` its connection to the maintenance database (for the
    workers), ``run(conn, statement, action)`` setup's runner. Idempotent.
    """
    cluster = nodes(admin)
    workers = workers_of(admin, cluster)
    coordinator = next((n for n in cluster if n.coordinator), None)
    dbname = settings.trading_db_name
    for worker in workers:
        try:
            with psycopg.connect(node_url(url, worker, dbname), autocommit=True, connect_timeout=10) as conn:
                if citus_version(conn) is None:
                    run(conn, "CREATE EXTENSION citus", f"citus extension on worker {worker}")
        except psycopg.OperationalError as exc:
            raise ClusterError(f"worker {worker} of the Citus cluster is unreachable: {exc}") from None
    with _connect.connect(with_dbname(url, dbname), settings, autocommit=True) as conn:
        if citus_version(conn) is None:
            run(conn, "CREATE EXTENSION citus", "citus extension on the coordinator")
        known = {(n.host, n.port) for n in nodes(conn)}
        if coordinator is not None and (coordinator.host, coordinator.port) not in known:
            run(
                conn,
                sql.SQL("SELECT citus_set_coordinator_host({}, {})")
                .format(sql.Literal(coordinator.host), sql.Literal(coordinator.port))
                .as_string(None),
            )
        for worker in workers:
            if (worker.host, worker.port) not in known:
                run(
                    conn,
                    sql.SQL("SELECT citus_add_node({}, {})")
                    .format(sql.Literal(worker.host), sql.Literal(worker.port))
                    .as_string(None),
                    f"citus node {worker}",
                )
        _roles_for_workers(conn, settings, run)


def _roles_for_workers(conn: psycopg.Connection[TupleRow], settings: Settings, run: Any) -> None:
    # Citus opens its connections to the workers as the current role, so the migrations' owner role and the
    # services' roles (which tradedb's logins SET ROLE to) must be able to log in there (citusdata/citus#7719).
    # They get LOGIN without a password: no client can log in as them with a password; the coordinator reaches
    # the workers through the workers' pg_hba (trust from the coordinator's address, or certificates).
    # Citus also propagates a role as a dependency of the first object it owns, with ALTER ROLE ... NOSUPERUSER,
    # which only a superuser may run: the role is propagated here, by setup, through a function it owns briefly.
    names = roles.all_role_names(settings.role_prefix)
    rows = conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", (names,)).fetchall()
    distributed = {
        str(r[0])
        for r in conn.execute("SELECT objid::regrole::text FROM pg_dist_object WHERE classid = 'pg_authid'::regclass")
    }
    for name, can_login in rows:
        role = sql.Identifier(str(name))
        if not can_login:
            run(conn, sql.SQL("ALTER ROLE {} LOGIN").format(role).as_string(None), f"login for {name} on workers")
        if str(name) not in distributed:
            run(conn, "CREATE FUNCTION shared.tradedb_citus_role_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            run(
                conn,
                sql.SQL("ALTER FUNCTION shared.tradedb_citus_role_probe() OWNER TO {}").format(role).as_string(None),
            )
            run(conn, "DROP FUNCTION shared.tradedb_citus_role_probe()")


def distribute(conn: psycopg.Connection[TupleRow], run: Any, shard_count: int | None = None) -> list[str]:
    """Distribute what ``DISTRIBUTED`` and ``REFERENCE`` name and is not distributed yet; return those tables.

    ``shard_count``: shards of each co-location group (default: the server's ``citus.shard_count``, 32). Fewer
    shards make each COPY through the coordinator cheaper (one stream per shard); more let more workers share
    a group later (a shard is the unit a rebalance moves).
    """
    done = distribution(conn)
    changed: list[str] = []
    # Shards keep the tables' triggers (maintenance mode, audit); Citus asks for this to create them on shards.
    run(conn, "SET citus.enable_unsafe_triggers = on")
    for table in REFERENCE:
        if table not in done:
            run(conn, sql.SQL("SELECT create_reference_table({})").format(sql.Literal(table)).as_string(None))
            changed.append(table)
    for group in DISTRIBUTED.values():
        anchor = group[0][0]
        for table, column in group:
            if table in done:
                continue
            if table == anchor:
                shards = sql.SQL(
                    "current_setting('citus.shard_count')::int" if shard_count is None else str(shard_count)
                )
                statement = sql.SQL(
                    "SELECT create_distributed_table({}, {}, colocate_with => 'none', shard_count => {})"
                ).format(sql.Literal(table), sql.Literal(column), shards)
            else:
                statement = sql.SQL("SELECT create_distributed_table({}, {}, colocate_with => {})").format(
                    sql.Literal(table), sql.Literal(column), sql.Literal(anchor)
                )
            run(conn, statement.as_string(None), f"distribute {table} by {column}")
            changed.append(table)
    return changed


@dataclass(frozen=True)
class Placement:
    """How Citus holds a table: ``distributed`` (by ``column``, co-location ``group``) or ``reference``."""

    kind: str
    column: str | None
    group: int


def distribution(conn: psycopg.Connection[TupleRow]) -> dict[str, Placement]:
    """Every Citus table of the connected database, by qualified name."""
    out: dict[str, Placement] = {}
    for table, method, column, group in conn.execute(_DISTRIBUTION):
        kind = {"h": "distributed", "n": "reference"}.get(str(method), "local")
        out[str(table)] = Placement(kind, str(column) if column else None, int(group))
    return out


def differences(conn: psycopg.Connection[TupleRow]) -> list[tuple[str, str]]:
    """(table, what is wrong) for each table placed otherwise than ``DISTRIBUTED``/``REFERENCE`` say."""
    found = distribution(conn)
    out: list[tuple[str, str]] = []
    for table in REFERENCE:
        if found.get(table, Placement("local", None, 0)).kind != "reference":
            out.append((table, "should be a reference table and is not"))
    for group in DISTRIBUTED.values():
        anchor = found.get(group[0][0])
        for table, column in group:
            placed = found.get(table)
            if placed is None or placed.kind != "distributed" or placed.column != column:
                out.append((table, f"should be distributed by {column} and is not"))
            elif anchor is not None and placed.group != anchor.group:
                out.append((table, f"is not co-located with {group[0][0]}"))
    return out


def shard_counts(conn: psycopg.Connection[TupleRow]) -> list[dict[str, Any]]:
    """Per node: host, port, role and how many shards it holds (for ``tradedb health``)."""
    rows = conn.execute(
        """
        SELECT n.nodename, n.nodeport, n.groupid = 0, n.isactive, count(p.shardid)
        FROM pg_dist_node n LEFT JOIN pg_dist_placement p ON p.groupid = n.groupid
        WHERE n.noderole = 'primary' GROUP BY n.groupid, 1, 2, 4 ORDER BY n.groupid
        """
    ).fetchall()
    return [
        {"node": f"{h}:{p}", "role": "coordinator" if c else "worker", "active": bool(a), "shards": int(n)}
        for h, p, c, a, n in rows
    ]


def add_worker(host: str, port: int, *, settings: Settings | None = None, url: str | None = None) -> list[str]:
    """Make a new worker a node of the cluster and of the trading database; return the statements run.

    ``url`` is an admin URL of the coordinator (default: the configured server); the new server must have Citus
    preloaded and accept the same admin login. Its shards come with ``rebalance``. Idempotent.
    """
    settings = settings or load_settings()
    url = url or server_url(settings)
    if not host or not 0 < port < 65536:
        raise ValidationError(f"a worker is host and port (1-65535), not {host!r}:{port}")
    worker = Node(host, port)
    done: list[str] = []
    with _connect.connect(with_dbname(url, settings.trading_db_name), settings, autocommit=True) as conn:
        require_citus(conn)

    def run(conn: psycopg.Connection[TupleRow], statement: str, action: str | None = None) -> None:
        conn.execute(statement)
        done.append(statement)

    dbname = settings.trading_db_name
    try:
        with psycopg.connect(node_url(url, worker, "postgres"), autocommit=True, connect_timeout=10) as conn:
            if citus_version(conn) is None:
                run(conn, "CREATE EXTENSION citus")
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
                run(conn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)).as_string(None))
        with psycopg.connect(node_url(url, worker, dbname), autocommit=True, connect_timeout=10) as conn:
            if citus_version(conn) is None:
                run(conn, "CREATE EXTENSION citus")
    except psycopg.OperationalError as exc:
        raise ClusterError(f"the new worker {worker} is unreachable: {exc}") from None
    add = sql.SQL("SELECT citus_add_node({}, {})").format(sql.Literal(host), sql.Literal(port)).as_string(None)
    for database in ("postgres", dbname):
        with _connect.connect(with_dbname(url, database), settings, autocommit=True) as conn:
            if (host, port) not in {(n.host, n.port) for n in nodes(conn)}:
                run(conn, add)
    return done


def rebalance(*, settings: Settings | None = None, url: str | None = None) -> int:
    """Move shards so every worker holds its share, and wait; return the number of shard moves.

    Writes go on while a shard moves (``force_logical``: the tick tables have no replica identity, and appends are
    all their writers make); updates and deletes of a moving shard's rows wait or fail (``ConcurrencyError``).
    Create the partitions the writers need first (``tradedb maintain``): Citus cannot create one while a shard
    moves.
    """
    settings = settings or load_settings()
    url = url or server_url(settings)
    with _connect.connect(with_dbname(url, settings.trading_db_name), settings, autocommit=True) as conn:
        require_citus(conn)
        moves = len(conn.execute("SELECT * FROM get_rebalance_table_shards_plan()").fetchall())
        if moves:
            conn.execute("SELECT citus_rebalance_start(shard_transfer_mode => 'force_logical')")
            conn.execute("SELECT citus_rebalance_wait()")
        return moves
