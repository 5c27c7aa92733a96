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
from tradedb.schema.distribution import UNHELD_FOREIGN_KEYS
from tradedb.settings import Settings, load_settings, with_dbname, with_host

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
    # Every row of one fill (the fill, its order and order event, the position, the risk state) on one node: a
    # fill is a single-shard transaction. The keys lead with the account since migration 0022.
    "execution, by account": (
        ("execution.accounts", "account_id"),
        ("execution.orders", "account_id"),
        ("execution.order_events", "account_id"),
        ("execution.fills", "account_id"),
        ("execution.positions", "account_id"),
        ("risk_management.risk_limits", "account_id"),
        ("risk_management.account_risk", "account_id"),
        ("analytics.portfolio_summary", "account_id"),
    ),
}
#: Tables copied whole to every node: what the shards' triggers read (the maintenance guard's flag), and what the
#: distributed tables' foreign keys reference (the security master and its exchanges). Citus keeps the tables
#: that reference these (the reference data's) on the coordinator, as local tables of its metadata.
REFERENCE: tuple[str, ...] = ("shared.maintenance_state", "shared.exchanges", "shared.securities")
_IS_CITUS = "SELECT extversion FROM pg_extension WHERE extname = 'citus'"
_FOREIGN_KEYS = """
SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)
"""
#: Foreign keys of tables, or to them (declared on a table itself, not inherited by its partitions).
_FOREIGN_KEYS_OF = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'f' AND conparentid = 0 AND (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s))
ORDER BY 1, 2
"""
_NODES = """
SELECT nodename, nodeport, groupid = 0 AS coordinator FROM pg_dist_node
WHERE noderole = 'primary' AND isactive ORDER BY groupid
"""
_DISTRIBUTION = """
SELECT logicalrelid::regclass::text, partmethod::text || repmodel::text, column_to_column_name(logicalrelid, partkey),
       colocationid
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
    return with_host(with_dbname(url, dbname), node.host, node.port)


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


#: The audit ledger's functions and the triggers of its tables, copied from the coordinator to every worker.
_LEDGER_FUNCTIONS = ("audit_log_guard()", "audit_row()", "audit_inserts()", "audit_seal()")
_LEDGER_TABLES = ("audit_log", "audit_blocks", "audit_transactions")
#: A trigger on a shard sees the shard's table name (orders_102008): the workers' ledger functions record the
#: table's own, as the coordinator's do.
_SHARD_TABLE_NAMES = (
    ("table_name text := TG_TABLE_NAME;", "table_name text := regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '');"),
    ("TG_TABLE_NAME::text AS table_name", "regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') AS table_name"),
)
#: Block 0 of a worker's ledger: no chain before it (the hash of an empty legacy chain, as on a new server).
_GENESIS = """
INSERT INTO shared.audit_blocks (block_id, prev_hash, block_hash, transactions, row_count, horizon, sealed_at)
VALUES (0, NULL, sha256(convert_to('tradedb legacy chain|0|', 'UTF8')), 0, 0,
        pg_snapshot_xmin(pg_current_snapshot())::text::bigint, now())
"""


def ledger_statements(conn: psycopg.Connection[TupleRow], functions: list[str]) -> list[str]:
    """The statements that give a worker an audit ledger of its own, as the coordinator's trading database has it.

    The audited tables' triggers run on their shards, on the workers (Citus runs a shard's triggers where the
    shard is), and append to the ledger of that node: a fill's audit rows stay on the fill's node, in its
    transaction, with no lock across nodes. Each node seals its own ledger (transaction ids are per node).
    ``functions``: the ledger's functions, from ``ledger_functions``.
    """
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateSequence, CreateTable

    from tradedb.schema import metadata

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    statements = [str(CreateSequence(metadata._sequences["shared.audit_log_audit_id_seq"]).compile(dialect=dialect))]
    for name in _LEDGER_TABLES:
        table = metadata.tables[f"shared.{name}"]
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements += [str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes]
    # The coordinator's monthly partitions are its own: a worker's rows go to one default partition.
    statements.append("CREATE TABLE shared.audit_log_default PARTITION OF shared.audit_log DEFAULT")
    statements += functions
    statements += [
        str(r[0])
        for r in conn.execute(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid = ANY("
            "SELECT to_regclass('shared.' || n) FROM unnest(%s::text[]) n) ORDER BY t.tgname",
            (list(_LEDGER_TABLES),),
        )
    ]
    statements += [f"REVOKE ALL ON FUNCTION shared.{f} FROM PUBLIC" for f in ("audit_inserts()", "audit_seal()")]
    statements.append(_GENESIS)
    return statements


def ledger_functions(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """The ledger's functions as a worker runs them: the coordinator's, naming a shard's table as its table."""
    statements = []
    for (definition,) in conn.execute(
        "SELECT pg_get_functiondef(to_regprocedure('shared.' || f)) FROM unnest(%s::text[]) f",
        (list(_LEDGER_FUNCTIONS),),
    ):
        text = str(definition).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        for table_name, logical in _SHARD_TABLE_NAMES:
            text = text.replace(table_name, logical)
        statements.append(text)
    return statements


def ledgers_on_workers(url: str, settings: Settings, run: Any) -> None:
    """Give every worker of the trading database an audit ledger of its own (see ``ledger_statements``).

    A worker's ledger tables are made once; its functions are put back by every setup, since Citus replaces them
    with the coordinator's when a migration changes them there.
    """
    dbname = settings.trading_db_name
    owner = sql.Identifier(roles.owner_role_name(settings.role_prefix)).as_string(None)
    with _connect.connect(with_dbname(url, dbname), settings, autocommit=True) as conn:
        functions = ledger_functions(conn)
        statements = ledger_statements(conn, functions)
        workers = workers_of(conn)
    for worker in workers:
        with psycopg.connect(node_url(url, worker, dbname), connect_timeout=10) as conn:
            made = conn.execute("SELECT to_regclass('shared.audit_blocks')").fetchone() != (None,)
            # One transaction per worker, as the owner of the coordinator's ledger: all of it, or none.
            run(conn, "SET LOCAL citus.enable_ddl_propagation = off")
            run(conn, f"SET LOCAL ROLE {owner}")
            for statement in functions if made else statements:
                run(conn, statement)
            run(conn, "COMMIT", None if made else f"audit ledger on worker {worker}")


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

    The order is Citus's (13.2): a table it already holds on the coordinator (a "local" table of its metadata,
    as a table that references a reference table becomes) cannot be distributed when it has an identity column,
    and no foreign key may point from such a table to a distributed one. So the groups are distributed first,
    with their foreign keys set aside, then the reference tables are made, then the foreign keys come back.
    """
    done = distribution(conn)
    changed: list[str] = []

    def drop(table: str, name: str, action: str | None = None) -> None:
        run(conn, f"ALTER TABLE {table} DROP CONSTRAINT {sql.Identifier(name).as_string(None)}", action)

    def add(table: str, name: str, definition: str) -> None:
        run(conn, f"ALTER TABLE {table} ADD CONSTRAINT {sql.Identifier(name).as_string(None)} {definition}")

    # Shards keep the tables' triggers (maintenance mode, audit); Citus asks for this to create them on shards.
    run(conn, "SET citus.enable_unsafe_triggers = on")
    # Reference tables with foreign keys pointing at them are changed over one connection per node.
    run(conn, "SET citus.multi_shard_modify_mode = 'sequential'")
    held = {(str(t), str(n)) for t, n in conn.execute(_FOREIGN_KEYS, ([t for t, _ in UNHELD_FOREIGN_KEYS],))}
    for table, name in UNHELD_FOREIGN_KEYS:
        if (table, name) in held:
            drop(_qualified(table).as_string(None), name, f"drop foreign key {name} (a cluster cannot hold it)")
    pending = [
        (group[0][0], table, column)
        for group in DISTRIBUTED.values()
        for table, column in group
        if table not in done or done[table].kind != "distributed"
    ]
    names = [table for _, table, _ in pending]
    set_aside = conn.execute(_FOREIGN_KEYS_OF, (names, names)).fetchall()
    for table, name, _ in set_aside:
        drop(table, name)
    for anchor, table, column in pending:
        if table == anchor:
            shards = sql.SQL("current_setting('citus.shard_count')::int" if shard_count is None else str(shard_count))
            statement = sql.SQL(
                "SELECT create_distributed_table({}, {}, colocate_with => 'none', shard_count => {})"
            ).format(sql.Literal(table), sql.Literal(column), shards)
        else:
            statement = sql.SQL("SELECT create_distributed_table({}, {}, colocate_with => {})").format(
                sql.Literal(table), sql.Literal(column), sql.Literal(anchor)
            )
        run(conn, statement.as_string(None), f"distribute {table} by {column}")
        changed.append(table)
    for table in REFERENCE:
        if table not in done or done[table].kind != "reference":
            run(conn, sql.SQL("SELECT create_reference_table({})").format(sql.Literal(table)).as_string(None))
            changed.append(table)
    for table, name, definition in set_aside:
        add(table, name, definition)
    for comment in comment_statements(conn):
        run(conn, comment)
    return changed


def comment_statements(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """COMMENT statements for the comments of the models that Citus's tables lost.

    Citus 13.2 recreates a table it takes into its metadata for a foreign key to a reference table (the security
    master's dependents) without the table's and columns' comments.
    """
    from tradedb.schema import metadata

    placed = distribution(conn)
    statements: list[str] = []
    for table in metadata.sorted_tables:
        if table.fullname not in placed:
            continue
        stored = {
            str(column): str(text)
            for column, text in conn.execute(
                "SELECT coalesce(a.attname, ''), d.description FROM pg_description d LEFT JOIN pg_attribute a"
                " ON a.attrelid = d.objoid AND a.attnum = d.objsubid WHERE d.objoid = %s::regclass"
                " AND d.classoid = 'pg_class'::regclass",
                (table.fullname,),
            )
        }
        name = _qualified(table.fullname)
        if table.comment and stored.get("") != table.comment:
            statements.append(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(name, sql.Literal(table.comment)).as_string(None)
            )
        for column in table.columns:
            if column.comment and stored.get(column.name) != column.comment:
                target = sql.SQL("{}.{}").format(name, sql.Identifier(column.name))
                statements.append(
                    sql.SQL("COMMENT ON COLUMN {} IS {}").format(target, sql.Literal(column.comment)).as_string(None)
                )
    return statements


def _qualified(table: str) -> sql.Composable:
    schema, name = table.split(".")
    return sql.Identifier(schema, name)


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
        # By method and replication: hash-distributed, or one shard copied to every node, or one on the coordinator.
        kind = "distributed" if str(method)[0] == "h" else "reference" if method == "nt" else "local"
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
    # Before any shard moves there: the audited tables' triggers append to the ledger of the node they run on.
    ledgers_on_workers(url, settings, run)
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
