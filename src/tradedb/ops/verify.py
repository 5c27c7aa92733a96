"""Verification: does the live database hold everything tradedb declares?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg
import sqlalchemy as sa
from psycopg.rows import TupleRow

from tradedb.config.maintenance import unguarded_tables
from tradedb.database import Database
from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.errors import UnknownRevisionError
from tradedb.ops import citus, migrate
from tradedb.schema import SERVICE_SCHEMAS, metadata
from tradedb.schema import privileges as roles
from tradedb.schema.distribution import UNHELD_FOREIGN_KEYS
from tradedb.schema.partitions import default_partition_name, hypertables
from tradedb.settings import Settings, load_settings, with_dbname


@dataclass(frozen=True)
class Problem:
    """One way the database differs from what tradedb declares."""

    kind: str  # database, schema, table, partition, index, constraint, sequence, role, migration, drift
    name: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        """Return the problem as a plain dict (for JSON)."""
        return asdict(self)


_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind, c.relispartition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s)
"""
_CONSTRAINTS = """
SELECT n.nspname, c.conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE n.nspname = ANY(%s)
"""
_DEFAULT_PARTITIONS = """
SELECT pn.nspname, p.relname, c.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
"""


def _declared_constraint_names(table: sa.Table) -> list[str]:
    names = []
    for constraint in table.constraints:
        if constraint.name is None or not (
            isinstance(constraint, sa.CheckConstraint) or len(getattr(constraint, "columns", ())) > 0
        ):
            continue
        names.append(str(constraint.name))
    return names


def check_catalog(conn: psycopg.Connection[TupleRow], settings: Settings) -> list[Problem]:
    """Compare schemas, tables, partition parents, indexes, constraints, sequences and roles with the models."""
    problems: list[Problem] = []
    schemas = list(SERVICE_SCHEMAS)
    present_schemas = {
        r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (schemas,))
    }
    problems += [Problem("schema", s, "schema is missing") for s in schemas if s not in present_schemas]

    relations = {(str(r[0]), str(r[1])): str(r[2]) for r in conn.execute(_RELATIONS, (schemas,))}
    constraints = {(str(r[0]), str(r[1])) for r in conn.execute(_CONSTRAINTS, (schemas,))}
    defaults = {(str(r[0]), str(r[1])) for r in conn.execute(_DEFAULT_PARTITIONS)}
    converted = hypertables(conn)  # partitioned by TimescaleDB's chunks instead
    # On a Citus cluster, setup drops the foreign keys the cluster cannot hold.
    unheld = set(UNHELD_FOREIGN_KEYS) if citus.citus_version(conn) is not None else set()

    for table in metadata.sorted_tables:
        schema = str(table.schema)
        kind = relations.get((schema, table.name))
        if kind is None:
            problems.append(Problem("table", table.fullname, "table is missing"))
            continue
        if "partition_column" in table.info and table.fullname not in converted:
            if kind != "p":
                problems.append(Problem("partition", table.fullname, "table is not range-partitioned"))
            elif (schema, table.name) not in defaults:
                problems.append(
                    Problem(
                        "partition",
                        table.fullname,
                        f"no default partition ({default_partition_name(table.name)})",
                    )
                )
        for index in table.indexes:
            if relations.get((schema, str(index.name))) not in ("i", "I"):
                problems.append(Problem("index", f"{schema}.{index.name}", f"index on {table.fullname} is missing"))
        for name in _declared_constraint_names(table):
            if (schema, name) not in constraints and (table.fullname, name) not in unheld:
                problems.append(Problem("constraint", f"{schema}.{name}", f"constraint on {table.fullname} is missing"))
    for sequence in metadata._sequences.values():
        if relations.get((str(sequence.schema), sequence.name)) != "S":
            problems.append(Problem("sequence", f"{sequence.schema}.{sequence.name}", "sequence is missing"))

    wanted = roles.all_role_names(settings.role_prefix)
    present_roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (wanted,))}
    problems += [Problem("role", r, "role is missing") for r in wanted if r not in present_roles]
    return problems


def verify(*, settings: Settings | None = None, url: str | None = None) -> list[Problem]:
    """Return every problem found; an empty list means the database is as declared."""
    settings = settings or load_settings()
    target = url or server_url(settings)
    problems: list[Problem] = []
    with _connect.maintenance_connect(target, settings) as conn:
        present = {
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                ([settings.trading_db_name, settings.prefect_db_name],),
            )
        }
    for name in (settings.trading_db_name, settings.prefect_db_name):
        if name not in present:
            problems.append(Problem("database", name, "database is missing: run `tradedb setup`"))
    if settings.trading_db_name not in present:
        return problems

    trading_url = with_dbname(target, settings.trading_db_name)
    with _connect.connect(trading_url, settings) as conn:
        problems += check_catalog(conn, settings)
        problems += [
            Problem("privilege", f"{role} on {table}", detail)
            for role, table, detail in roles.privilege_differences(conn, settings.role_prefix)
        ]
        problems += [
            Problem("trigger", table, "no maintenance_mode trigger: writes go on in maintenance mode")
            for table in unguarded_tables(conn)
        ]
        if citus.citus_version(conn) is not None:
            problems += [Problem("distribution", table, detail) for table, detail in citus.differences(conn)]
    try:
        state = migrate.status(settings=settings, url=trading_url)
    except UnknownRevisionError as exc:
        problems.append(Problem("migration", "version", exc.message))
        return problems
    if not state.pending:
        with Database(trading_url, settings=settings, min_size=0, max_size=1, name="tradedb-verify") as db:
            problems += [
                Problem("position", f"{d.account_id}/{d.security_id}", "; ".join(d.differences))
                for d in db.execution.reconcile()
            ]
    if state.pending:
        problems.append(
            Problem("migration", ",".join(state.pending), "revisions not applied: run `tradedb migrate upgrade`")
        )
    else:
        problems += [
            Problem("drift", change, "models and database differ")
            for change in migrate.diff(settings=settings, url=trading_url)
        ]
    return problems
