"""tradedb on a real Citus cluster (a coordinator and two workers, PostgreSQL 15 with Citus 13.2 built from
../shared/vendor by `make test-citus`): setup makes the trading database a database of the cluster and distributes
the market-data tables by security and the execution tables by account, each group co-located; a fill is written
and audited on its account's node, in that node's ledger; verify reports a table that should be distributed and is
not; a coordinator with no workers and a worker down are clear errors.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

import tradedb
from tests.conftest import PG15_BINDIR, ROLE_PREFIX, make_settings
from tests.servers import CitusCluster, PgInstance
from tradedb.errors import (
    ClusterError,
    LedgerTampered,
    MaintenanceMode,
    NodeUnavailable,
    PermissionDenied,
    translate,
)
from tradedb.ops import citus, health, verify
from tradedb.ops import setup as provision
from tradedb.schema.distribution import UNHELD_FOREIGN_KEYS
from tradedb.schema.privileges import role_name
from tradedb.security import ledger
from tradedb.security.secrets import Keyring, generate_key
from tradedb.settings import with_dbname

pytestmark = [
    pytest.mark.citus,
    pytest.mark.skipif(
        not (Path("/usr/lib/postgresql/15/lib") / "citus.so").exists(),
        reason="Citus is not built for PostgreSQL 15 (make test-citus builds it)",
    ),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[CitusCluster]:
    made = CitusCluster(PG15_BINDIR).start()
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def trading(cluster: CitusCluster) -> str:
    """A tradedb database set up through the coordinator; returns its name."""
    settings = make_settings(cluster.coordinator.url(), "tdbt_citus")
    report = provision.setup(settings=settings, url=cluster.coordinator.url())
    assert "citus extension on the coordinator" in report.actions
    assert [a for a in report.actions if a.startswith("citus node ")] == [
        f"citus node 127.0.0.1:{w.port}" for w in cluster.workers
    ]
    return settings.trading_db_name


def test_setup_distributes_market_data_by_security_and_execution_by_account(
    cluster: CitusCluster, trading: str
) -> None:
    with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
        placed = citus.distribution(conn)
        assert citus.differences(conn) == []
        shards_per_node = {row["node"]: row["shards"] for row in citus.shard_counts(conn)}
        foreign_keys = {
            (str(t), str(n)) for t, n in conn.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint")
        }
    for group, column in (("market data, by security", "security_id"), ("execution, by account", "account_id")):
        tables = [table for table, _ in citus.DISTRIBUTED[group]]
        assert {placed[t].kind for t in tables} == {"distributed"}
        assert {placed[t].column for t in tables} == {column}
        assert len({placed[t].group for t in tables}) == 1  # one co-location group: a key's rows on one node
    assert placed["execution.orders"].group != placed["data_ingestion.quotes"].group
    assert {placed[t].kind for t in citus.REFERENCE} == {"reference"}
    # the tables that reference the security master stay on the coordinator, as local tables of the metadata
    assert placed["shared.security_identifiers"].kind == "local"
    # the foreign keys a cluster cannot hold are gone; those between co-located tables and to references hold
    assert not foreign_keys & set(UNHELD_FOREIGN_KEYS)
    assert {
        ("execution.fills", "fk_fills_account_id_order_id_orders"),
        ("execution.orders", "fk_orders_security_id_securities"),
    } <= foreign_keys
    on_coordinator = sum(1 for p in placed.values() if p.kind != "distributed")
    for worker in cluster.workers:  # the shards are spread over both workers; the coordinator has the rest
        assert shards_per_node[f"127.0.0.1:{worker.port}"] > len(citus.REFERENCE)
    assert shards_per_node[f"127.0.0.1:{cluster.coordinator.port}"] == on_coordinator
    for worker in cluster.workers:  # the trading database, its extension and an audit ledger on every worker
        with psycopg.connect(worker.url(trading), autocommit=True) as conn:
            assert citus.citus_version(conn) is not None
            assert conn.execute("SELECT block_id FROM shared.audit_blocks WHERE block_id = 0").fetchall() == [(0,)]


T0 = datetime(2026, 11, 2, 14, tzinfo=UTC)


def quotes(symbols: list[str], n: int, start: datetime = T0) -> pa.Table:
    ts = pa.array([start + timedelta(milliseconds=10 * i) for i in range(n)], pa.timestamp("us", "UTC"))
    bid = 100 + np.arange(n) * 0.01
    return pa.table(
        {
            "ts": ts,
            "symbol": [symbols[i % len(symbols)] for i in range(n)],
            "bid": bid,
            "ask": bid + 0.02,
            "bid_size": np.full(n, 100.0),
            "ask_size": np.full(n, 200.0),
        }
    )


def test_market_data_written_and_read_through_the_coordinator(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    symbols = [f"CT{i}" for i in range(8)]
    table = quotes(symbols, 8_000)
    with tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db:
        written = db.market_data.write_quotes(table, source="feed", exchange="XNAS", create_securities=True)
        assert written.written == 8_000
        back = db.market_data.quotes("CT3", T0, T0 + timedelta(hours=1), as_="arrow")
        assert back.num_rows == 1_000
        assert (
            back.column("bid").to_pylist() == table.filter(pa.compute.equal(table["symbol"], "CT3"))["bid"].to_pylist()
        )
        latest = db.market_data.latest_quotes(symbols)
        assert sorted(latest) == symbols
        security_id = db.securities.get("CT3")["security_id"]
    with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
        rows: dict[str, int] = dict(
            conn.execute(
                """
                SELECT s.nodename || ':' || s.nodeport, sum(r.result::bigint)
                FROM run_command_on_shards('data_ingestion.quotes', 'SELECT count(*) FROM %s') r
                JOIN citus_shards s USING (shardid) GROUP BY 1
                """
            ).fetchall()
        )
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN SELECT * FROM data_ingestion.quotes WHERE security_id = %s AND ts >= %s", (security_id, T0)
            )
        )
    assert "Task Count: 1" in plan  # a read by security is routed to the one shard that holds it
    assert sum(rows.values()) == 8_000
    assert all(rows[f"127.0.0.1:{w.port}"] > 0 for w in cluster.workers)  # the securities spread over both workers


def test_skip_of_new_rows_and_latest_quotes_without_coverage(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    later = T0 + timedelta(minutes=40)
    with tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db:
        # skip first asks which securities have rows in the batch's window (a join on the cluster): none, so the
        # batch is appended as is.
        written = db.market_data.write_quotes(quotes(["CT1", "CT2"], 100, later), source="feed", on_conflict="skip")
        assert written.written == 100
        ids = db.market_data.security_ids(["CT1", "CT2"])
        with db.transaction() as conn:  # rows written around tradedb: no coverage, no kept last quote
            conn.execute(
                "INSERT INTO data_ingestion.quotes (ts, security_id, bid, ask, bid_size, ask_size, source)"
                " VALUES (%s, %s, 1, 2, 3, 4, 'raw'), (%s, %s, 5, 6, 7, 8, 'raw')",
                (later, ids["CT1"], later + timedelta(seconds=1), ids["CT1"]),
            )
        latest = db.market_data.latest_quotes(["CT1", "CT2"], source="raw")  # walks the shards for CT1
    assert latest["CT1"] is not None and latest["CT1"]["bid"] == 5
    assert latest["CT2"] is None


def test_maintenance_mode_holds_on_the_workers(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    with tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db:
        db.config.set("maintenance_mode", True)
        try:
            with pytest.raises(MaintenanceMode, match="maintenance mode"):
                db.market_data.write_quotes(quotes(["CT0"], 10, T0 + timedelta(minutes=30)), source="feed")
        finally:
            db.config.set("maintenance_mode", False)
        assert db.market_data.write_quotes(quotes(["CT0"], 10, T0 + timedelta(minutes=30)), source="feed").written == 10


def test_service_roles_hold_on_the_workers(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    url = cluster.coordinator.url(trading)
    with tradedb.connect(url, settings=settings) as owner:  # the security master is the owner's to extend
        owner.market_data.write_quotes(quotes(["CTS"], 1, T0), source="svc", create_securities=True)
    with tradedb.connect(url, settings=settings, service="data_ingestion") as ingest:
        window = T0 + timedelta(minutes=50)
        assert ingest.market_data.write_quotes(quotes(["CTS"], 10, window), source="svc").written == 10
    # The strategy engine reads market data (through the workers, as its own role) and may not write it.
    with tradedb.connect(url, settings=settings, service="strategy_engine") as strategy:
        assert len(strategy.market_data.quotes("CTS", window, window + timedelta(minutes=1))) == 10
        with pytest.raises(PermissionDenied):
            strategy.market_data.write_quotes(quotes(["CTS"], 10, window), source="svc")
    # Every shard on every worker grants each service role what the coordinator's table grants it.
    roles = [role_name(ROLE_PREFIX, service) for service in ("data_ingestion", "strategy_engine", "execution")]
    check = (
        "SELECT has_table_privilege(%(role)s, %(table)s, 'SELECT'), has_table_privilege(%(role)s, %(table)s, 'INSERT')"
    )

    def granted(conn: psycopg.Connection[tuple[Any, ...]], table: str) -> dict[str, tuple[Any, ...] | None]:
        return {role: conn.execute(check, {"role": role, "table": table}).fetchone() for role in roles}

    with psycopg.connect(url, autocommit=True) as conn:
        expected = granted(conn, "data_ingestion.quotes")
        shards = conn.execute(
            "SELECT nodeport, shard_name FROM citus_shards WHERE table_name = 'data_ingestion.quotes'::regclass"
        ).fetchall()
    assert list(expected.values()) == [(True, True), (True, False), (True, False)]
    assert {port for port, _ in shards} == {w.port for w in cluster.workers}
    for worker in cluster.workers:
        with psycopg.connect(worker.url(trading), autocommit=True) as conn:
            for port, shard in shards:
                if port == worker.port:
                    assert granted(conn, shard) == expected, shard


def test_setup_again_changes_nothing(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    report = provision.setup(settings=settings, url=cluster.coordinator.url())
    assert not [a for a in report.actions if a.startswith(("citus", "distribute"))]


def test_verify_reports_a_table_that_should_be_distributed(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
        conn.execute("SELECT undistribute_table('data_ingestion.coverage')")
        try:
            found = [
                (p.kind, p.name, p.detail) for p in verify.verify(settings=settings, url=cluster.coordinator.url())
            ]
            assert (
                "distribution",
                "data_ingestion.coverage",
                "should be distributed by security_id and is not",
            ) in found
        finally:
            assert citus.distribute(conn, lambda c, statement, action=None: c.execute(statement)) == [
                "data_ingestion.coverage"
            ]
        assert citus.differences(conn) == []


def test_a_coordinator_with_no_workers_is_a_clear_error() -> None:
    lone = CitusCluster(PG15_BINDIR, workers=0).start()
    try:
        settings = make_settings(lone.coordinator.url(), "tdbt_citus_lone")
        with pytest.raises(ClusterError, match="no workers"):
            provision.setup(settings=settings, url=lone.coordinator.url())
        with psycopg.connect(lone.coordinator.url(), autocommit=True) as conn:  # refused before anything changed
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tdbt_citus_lone'").fetchone() is None
    finally:
        lone.cleanup()


def test_citus_setting_without_the_extension_is_a_clear_error() -> None:
    plain = PgInstance(bindir=PG15_BINDIR, prefix="tradedb-not-citus-").start()
    try:
        settings = make_settings(plain.url(), "tdbt_not_citus").model_copy(update={"citus": True})
        with pytest.raises(ClusterError, match="no citus extension"):
            provision.setup(settings=settings, url=plain.url())
    finally:
        plain.cleanup()


def accounts_on_each_worker(cluster: CitusCluster, trading: str, security: int) -> dict[int, tuple[str, int]]:
    """By worker port: an account whose shards that worker holds, and a submitted order of it on ``security``."""
    found: dict[int, tuple[str, int]] = {}
    settings = make_settings(cluster.coordinator.url(), trading)
    with (
        psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn,
        tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db,
    ):
        for i in range(64):
            account = f"CA-{time.monotonic_ns()}-{i}"
            row = conn.execute(
                "SELECT nodeport FROM citus_shards"
                " WHERE shardid = get_shard_id_for_distribution_column('execution.accounts', %s::text)",
                (account,),
            ).fetchone()
            assert row is not None
            if row[0] in found:
                continue
            db.accounts.create(account, account)
            order = db.execution.submit_order(
                account_id=account, security_id=security, side="buy", quantity=100, order_type="limit", limit_price=10
            )
            found[int(row[0])] = (account, int(order["order_id"]))
            if len(found) == len(cluster.workers):
                return found
    raise AssertionError("no account found for every worker")


def a_security(cluster: CitusCluster, trading: str) -> int:
    with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO shared.securities (symbol, asset_type) VALUES (%s, 'equity') RETURNING security_id",
            (f"EX{time.monotonic_ns()}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_fill_is_written_and_audited_on_its_account_node(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    accounts = accounts_on_each_worker(cluster, trading, a_security(cluster, trading))
    worker = cluster.workers[0]
    account, order = accounts[worker.port]
    with tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db:
        result = db.execution.record_fill("CX-1", order, 40, "9.5", account_id=account)
        assert (result.position["quantity"], result.order["status"]) == (40, "partially_filled")
        assert db.execution.record_fill("CX-1", order, 40, "9.5").duplicate  # the account looked up first
        assert db.execution.reconcile(account) == []
        sealed = ledger.seal_workers(db)
        assert set(sealed) == {f"127.0.0.1:{w.port}" for w in cluster.workers}
        assert ledger.verify(db).findings == []
        document = ledger.digest(db, Keyring((("k1", base64.b64decode(generate_key())),)))
    # the fill and its audit rows are on the account's worker, in that worker's ledger (not the coordinator's)
    with psycopg.connect(worker.url(trading), autocommit=True) as conn:
        audited = conn.execute(
            "SELECT table_name FROM shared.audit_log WHERE row_key->>'fill_id' = %s OR row_key->>'order_id' = %s"
            " ORDER BY audit_id",
            (str(result.fill["fill_id"]), str(order)),
        ).fetchall()
        assert ("fills",) in audited and ("orders",) in audited
        sealed_here = conn.execute("SELECT count(*) FROM shared.audit_transactions").fetchone()
        assert sealed_here is not None and sealed_here[0] > 0
    with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
        on_coordinator = conn.execute(
            "SELECT count(*) FROM shared.audit_log WHERE row_key->>'fill_id' = %s", (str(result.fill["fill_id"]),)
        ).fetchone()
    assert on_coordinator == (0,)
    assert set(document["nodes"]) == {f"127.0.0.1:{w.port}" for w in cluster.workers}
    # a row of a worker's ledger edited: verify names the worker and the row
    with psycopg.connect(worker.url(trading), autocommit=True) as conn:
        conn.execute("ALTER TABLE shared.audit_log DISABLE TRIGGER USER")
        edited = conn.execute(
            "UPDATE shared.audit_log SET db_user = 'mallory' WHERE audit_id = "
            "(SELECT max(audit_id) FROM shared.audit_log) RETURNING audit_id"
        ).fetchone()
        conn.execute("ALTER TABLE shared.audit_log ENABLE TRIGGER USER")
    assert edited is not None
    with (
        tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db,
        pytest.raises(LedgerTampered) as caught,
    ):
        ledger.verify(db)
    assert f"worker 127.0.0.1:{worker.port}: audit_id {edited[0]}: its content does not match" in "\n".join(
        caught.value.report.findings
    )


def test_a_worker_down_is_named_and_the_other_shards_go_on(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    worker, alive = cluster.workers[0], cluster.workers[1]
    with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
        on_node = """
            SELECT s.security_id, s.symbol FROM shared.securities s
            JOIN citus_shards c
              ON c.shardid = get_shard_id_for_distribution_column('data_ingestion.quotes', s.security_id)
            WHERE c.nodeport = %s AND s.symbol LIKE 'CT%%' ORDER BY s.symbol LIMIT 1
            """
        alive_row = conn.execute(on_node, (alive.port,)).fetchone()  # a security on the worker that stays up
        down_row = conn.execute(on_node, (worker.port,)).fetchone()  # and one on the worker that goes down
        assert alive_row is not None and down_row is not None
        on_alive, alive_symbol, down_symbol = (alive_row[0],), alive_row[1], down_row[1]
        rows = conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE security_id = %s", on_alive).fetchone()
        total = conn.execute("SELECT count(*) FROM data_ingestion.quotes").fetchone()
    assert rows is not None and rows[0] > 0
    accounts = accounts_on_each_worker(cluster, trading, on_alive[0])
    worker.stop()
    try:
        with (
            psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn,
            pytest.raises(psycopg.Error) as caught,
        ):
            conn.execute("SELECT count(*) FROM data_ingestion.quotes")
        error = translate(caught.value)
        assert isinstance(error, NodeUnavailable)
        assert error.node == f"127.0.0.1:{worker.port}"
        assert not error.transient
        with psycopg.connect(cluster.coordinator.url(trading), autocommit=True) as conn:
            count = conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE security_id = %s", on_alive)
            assert count.fetchone() == rows  # a read of a security on the live worker goes on
        # Through the API, in an hour whose partitions exist: a batch that needs the down worker fails naming it
        # and writes nothing (not even its rows for the live worker); a batch for the live worker goes on.
        late = T0 + timedelta(minutes=58)
        with tradedb.connect(cluster.coordinator.url(trading), settings=settings) as db:
            with pytest.raises(NodeUnavailable, match=f"127.0.0.1:{worker.port}"):
                db.market_data.write_quotes(quotes([alive_symbol, down_symbol], 20, late), source="down")
            assert db.market_data.write_quotes(quotes([alive_symbol], 10, late), source="down").written == 10
            # a fill of an account on the down worker fails naming it; one on the live worker goes on
            down_account, down_order = accounts[worker.port]
            with pytest.raises(NodeUnavailable, match=f"127.0.0.1:{worker.port}"):
                db.execution.record_fill("DOWN-1", down_order, 1, 10, account_id=down_account)
            alive_account, alive_order = accounts[alive.port]
            filled = db.execution.record_fill("DOWN-2", alive_order, 1, 10, account_id=alive_account)
            assert filled.position["quantity"] == 1
    finally:
        worker.start()
    with psycopg.connect(with_dbname(cluster.coordinator.url(), trading), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE source <> 'down'").fetchone() == total
        written = conn.execute(
            "SELECT s.symbol, count(*) FROM data_ingestion.quotes q JOIN shared.securities s USING (security_id)"
            " WHERE q.source = 'down' GROUP BY 1"
        ).fetchall()
    assert written == [(alive_symbol, 10)]  # the failed batch left nothing, on either worker


def test_health_shows_the_nodes_and_their_shards(cluster: CitusCluster, trading: str) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    report = health.health(settings=settings, url=cluster.coordinator.url())
    nodes = {n["node"]: n for n in report.cluster_nodes}
    assert nodes[f"127.0.0.1:{cluster.coordinator.port}"]["role"] == "coordinator"
    for worker in cluster.workers:
        assert nodes[f"127.0.0.1:{worker.port}"]["role"] == "worker"
        assert nodes[f"127.0.0.1:{worker.port}"]["shards"] > 0


def stored(url: str) -> tuple[int, int]:
    """The quotes table's row count and the sum of its times in microseconds (exact: integers)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum((extract(epoch FROM ts) * 1000000)::bigint), 0) "
            "FROM data_ingestion.quotes WHERE source = 'rebalance'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_worker_added_and_rebalanced_under_a_running_ingest_loses_nothing(
    cluster: CitusCluster, trading: str
) -> None:
    settings = make_settings(cluster.coordinator.url(), trading)
    url = cluster.coordinator.url(trading)
    symbols = [f"RB{i}" for i in range(16)]
    written: list[pa.Table] = []
    errors: list[BaseException] = []
    done = threading.Event()
    with tradedb.connect(url, settings=settings) as db:
        written.append(quotes(symbols, 2_000, T0 + timedelta(minutes=20)))
        db.market_data.write_quotes(written[0], source="rebalance", exchange="XNAS", create_securities=True)

        # A batch every 50 ms until the rebalance is over, each a second later, within the hour's partition: a
        # partition created while a shard moves fails (Citus cannot take the co-location lock), so partitions are
        # made ahead of a rebalance (`tradedb maintain` does).
        def ingest() -> None:
            try:
                while not done.is_set():
                    batch = quotes(symbols, 2_000, T0 + timedelta(minutes=20, seconds=len(written)))
                    db.market_data.write_quotes(batch, source="rebalance")
                    written.append(batch)
                    time.sleep(0.05)
            except BaseException as exc:  # reported below
                errors.append(exc)

        writer = threading.Thread(target=ingest)
        writer.start()
        try:
            new = cluster.add_worker()
            citus.add_worker("127.0.0.1", new.port, settings=settings, url=cluster.coordinator.url())
            with psycopg.connect(new.url(trading), autocommit=True) as conn:  # its audit ledger, before any shard
                assert conn.execute("SELECT count(*) FROM shared.audit_blocks").fetchone() == (1,)
            before = len(written)
            moves = citus.rebalance(settings=settings, url=cluster.coordinator.url())
            during = len(written) - before
        finally:
            done.set()
            writer.join()
    assert not errors, errors
    assert moves > 0 and during > 0  # shards moved while batches went on being written
    expected = (
        sum(b.num_rows for b in written),
        sum(int(t.timestamp()) * 1_000_000 + t.microsecond for b in written for t in b["ts"].to_pylist()),
    )
    assert stored(url) == expected
    with psycopg.connect(url, autocommit=True) as conn:
        shards = {n["node"]: n["shards"] for n in citus.shard_counts(conn)}
    assert shards[f"127.0.0.1:{new.port}"] > 0  # the new worker holds shards now
