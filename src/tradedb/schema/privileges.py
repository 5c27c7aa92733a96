"""The declared roles and privileges of SCHEMA.md, and the SQL that creates and grants them.

An owner role owns every object and runs migrations; one login-less role per service writes its own schema and
reads what it needs; ``readonly`` reads everything. Default privileges make future tables follow the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from tradedb.schema.names import SERVICE_SCHEMAS
from tradedb.settings import SERVICES

WRITE_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
READ_TABLE_PRIVILEGES = ("SELECT",)
WRITE_SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")


@dataclass(frozen=True)
class ServiceRole:
    """A service's role: the schemas it writes and the schemas it only reads."""

    service: str
    writes: tuple[str, ...]
    reads: tuple[str, ...]


#: Who may do what, per SCHEMA.md ("Roles").
SERVICE_ROLES: tuple[ServiceRole, ...] = (
    ServiceRole("data_ingestion", writes=("data_ingestion",), reads=("shared",)),
    ServiceRole("strategy_engine", writes=("strategy_engine",), reads=("shared", "data_ingestion")),
    ServiceRole("execution", writes=("execution",), reads=("shared", "data_ingestion", "risk_management")),
    ServiceRole("risk_management", writes=("risk_management",), reads=("shared", "data_ingestion", "execution")),
    ServiceRole("analytics", writes=("analytics",), reads=tuple(s for s in SERVICE_SCHEMAS if s != "analytics")),
    ServiceRole("notification", writes=("notification",), reads=("shared",)),
    ServiceRole("logging", writes=("logging",), reads=("shared",)),
    ServiceRole("readonly", writes=(), reads=SERVICE_SCHEMAS),
    # Reads every account's execution and risk rows: exempt from row-level security.
    ServiceRole("backoffice", writes=(), reads=SERVICE_SCHEMAS),
)
assert tuple(r.service for r in SERVICE_ROLES) == SERVICES, "settings.SERVICES names every service role"

#: Tables only some roles may read at all (the rest lose every privilege on them).
READ_ONLY_BY: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("shared.audit_log", "shared.audit_transactions", "shared.audit_blocks"), ("readonly", "backoffice")
)

#: Writes a service makes beyond its own schema: (service, table, privileges, the table's sequence or None). The
#: risk check after a fill (execution) and after a mark-to-market (analytics) records risk events and the
#: account's risk state.
EXTRA_WRITES: tuple[tuple[str, str, tuple[str, ...], str | None], ...] = tuple(
    entry
    for service in ("execution", "analytics")
    for entry in (
        (service, "risk_management.risk_events", ("INSERT",), "risk_management.risk_events_event_id_seq"),
        (service, "risk_management.account_risk", ("SELECT", "INSERT", "UPDATE"), None),
    )
)

#: Tables whose secret column is hidden: roles that may not see it read only the listed columns.
SECRET_COLUMNS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # table: (secret column, visible columns, services that may read the secret)
    "shared.system_config": (
        "value_encrypted",
        ("key", "value", "description", "is_secret", "key_id", "updated_at"),
        (),
    ),
    "notification.notification_configs": (
        "secret_encrypted",
        ("config_id", "owner", "name", "channel", "settings", "key_id", "is_active", "created_at", "updated_at"),
        ("notification",),
    ),
}

#: Tables with row-level security by account_id (tenant isolation).
RLS_TABLES: tuple[str, ...] = (
    "execution.accounts",
    "execution.orders",
    "execution.order_events",
    "execution.fills",
    "execution.positions",
    "risk_management.risk_limits",
    "risk_management.risk_events",
    "risk_management.account_risk",
)
RLS_EXEMPT = ("backoffice",)
ACCOUNT_SETTING = "tradedb.account"
APP_USER_SETTING = "tradedb.app_user"


def owner_role_name(prefix: str) -> str:
    """Return the owner role's name."""
    return f"{prefix}owner"


def role_name(prefix: str, service: str) -> str:
    """Return the role name of a service (or of ``readonly``)."""
    return f"{prefix}{service}"


def all_role_names(prefix: str) -> list[str]:
    """Return every role tradedb declares, owner first."""
    return [owner_role_name(prefix), *(role_name(prefix, r.service) for r in SERVICE_ROLES)]


def expected_privileges(prefix: str) -> dict[tuple[str, str], set[str]]:
    """Return the declared table privileges as {(role, schema): {privilege, ...}}."""
    matrix: dict[tuple[str, str], set[str]] = {}
    for role in SERVICE_ROLES:
        name = role_name(prefix, role.service)
        for schema in role.writes:
            matrix[(name, schema)] = set(WRITE_TABLE_PRIVILEGES)
        for schema in role.reads:
            matrix.setdefault((name, schema), set()).update(READ_TABLE_PRIVILEGES)
    return matrix


def grant_statements(prefix: str) -> list[str]:
    """Return the idempotent GRANT / ALTER DEFAULT PRIVILEGES statements of the declared matrix."""
    owner = sql.Identifier(owner_role_name(prefix))
    statements: list[sql.Composable] = []
    for role in SERVICE_ROLES:
        grantee = sql.Identifier(role_name(prefix, role.service))
        for schema_name in (*role.writes, *role.reads):
            schema = sql.Identifier(schema_name)
            writes = schema_name in role.writes
            table_privs = sql.SQL(", ".join(WRITE_TABLE_PRIVILEGES if writes else READ_TABLE_PRIVILEGES))
            statements.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, grantee))
            statements.append(sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(table_privs, schema, grantee))
            statements.append(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON TABLES TO {}").format(
                    owner, schema, table_privs, grantee
                )
            )
            if writes:
                seq_privs = sql.SQL(", ".join(WRITE_SEQUENCE_PRIVILEGES))
                statements.append(
                    sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA {} TO {}").format(seq_privs, schema, grantee)
                )
                statements.append(
                    sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON SEQUENCES TO {}").format(
                        owner, schema, seq_privs, grantee
                    )
                )
    for service, table, privileges, sequence in EXTRA_WRITES:
        grantee = sql.Identifier(role_name(prefix, service))
        granted = sql.SQL(", ".join(privileges))
        statements.append(sql.SQL("GRANT {} ON {} TO {}").format(granted, _table(table), grantee))
        if sequence is not None:
            statements.append(
                sql.SQL("GRANT {} ON SEQUENCE {} TO {}").format(
                    sql.SQL(", ".join(WRITE_SEQUENCE_PRIVILEGES)), _table(sequence), grantee
                )
            )
    return [s.as_string(None) for s in statements]


def _table(name: str) -> sql.Identifier:
    schema, _, table = name.partition(".")
    return sql.Identifier(schema, table)


def restriction_statements(prefix: str) -> list[str]:
    """Return the REVOKE/GRANT statements that narrow the schema-wide grants (audit log, secret columns)."""
    statements: list[sql.Composable] = []
    for table, allowed in READ_ONLY_BY.items():
        for role in SERVICE_ROLES:
            if role.service not in allowed:
                statements.append(
                    sql.SQL("REVOKE ALL ON {} FROM {}").format(
                        _table(table), sql.Identifier(role_name(prefix, role.service))
                    )
                )
    for table, (_, visible, may_read_secret) in SECRET_COLUMNS.items():
        schema = table.partition(".")[0]
        for role in SERVICE_ROLES:
            if role.service in may_read_secret or schema not in (*role.writes, *role.reads):
                continue
            grantee = sql.Identifier(role_name(prefix, role.service))
            statements.append(sql.SQL("REVOKE SELECT ON {} FROM {}").format(_table(table), grantee))
            statements.append(
                sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in visible), _table(table), grantee
                )
            )
    return [s.as_string(None) for s in statements]


def tenant_condition() -> sql.Composed:
    """Return the row filter of tenant isolation: the row's account is the transaction's account."""
    return sql.SQL("account_id = current_setting({}, true)").format(sql.Literal(ACCOUNT_SETTING))


def rls_statements(prefix: str, table: str, existing_policies: set[str]) -> list[str]:
    """Return the statements that enable RLS on ``table`` (a table or partition) and create missing policies."""
    ident = _table(table)
    statements: list[sql.Composable] = [sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident)]
    if "tenant_isolation" not in existing_policies:
        condition = tenant_condition()
        statements.append(
            sql.SQL("CREATE POLICY tenant_isolation ON {} USING ({}) WITH CHECK ({})").format(
                ident, condition, condition
            )
        )
    for exempt in RLS_EXEMPT:
        policy = f"{exempt}_all_accounts"
        if policy not in existing_policies:
            statements.append(
                sql.SQL("CREATE POLICY {} ON {} TO {} USING (true) WITH CHECK (true)").format(
                    sql.Identifier(policy), ident, sql.Identifier(role_name(prefix, exempt))
                )
            )
    return [s.as_string(None) for s in statements]


def create_role_statement(name: str) -> str:
    """Return ``CREATE ROLE name NOLOGIN`` (callers run it only when the role is missing)."""
    return sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)).as_string(None)


def grant_membership_statement(role: str, member: str) -> str:
    """Return ``GRANT role TO member``."""
    return sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(member)).as_string(None)


PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")

LIVE_PRIVILEGES = """
SELECT r.rolname, n.nspname || '.' || c.relname,
       has_table_privilege(r.oid, c.oid, 'SELECT'), has_table_privilege(r.oid, c.oid, 'INSERT'),
       has_table_privilege(r.oid, c.oid, 'UPDATE'), has_table_privilege(r.oid, c.oid, 'DELETE')
FROM pg_roles r
CROSS JOIN pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE r.rolname = ANY(%(roles)s) AND n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY 1, 2
"""


def expected_table_privileges(prefix: str, tables: list[str]) -> dict[tuple[str, str], set[str]]:
    """Return the declared table-level privileges per (role, schema.table), with the restrictions applied."""
    by_schema = expected_privileges(prefix)
    expected: dict[tuple[str, str], set[str]] = {}
    for role in SERVICE_ROLES:
        name = role_name(prefix, role.service)
        for table in tables:
            privileges = set(by_schema.get((name, table.partition(".")[0]), set()))
            if table in READ_ONLY_BY and role.service not in READ_ONLY_BY[table]:
                privileges = set()
            if table in SECRET_COLUMNS and role.service not in SECRET_COLUMNS[table][2]:
                privileges.discard("SELECT")  # read through column grants, without the secret column
            privileges.update(p for s, t, extra, _ in EXTRA_WRITES if (s, t) == (role.service, table) for p in extra)
            expected[(name, table)] = privileges
    return expected


def live_table_privileges(conn: Any, prefix: str) -> dict[tuple[str, str], set[str]]:
    """Return the table-level privileges the service roles hold in the live database."""
    names = [role_name(prefix, r.service) for r in SERVICE_ROLES]
    live: dict[tuple[str, str], set[str]] = {}
    for role, table, *flags in conn.execute(LIVE_PRIVILEGES, {"roles": names, "schemas": list(SERVICE_SCHEMAS)}):
        live[(str(role), str(table))] = {p for p, held in zip(PRIVILEGES, flags, strict=True) if held}
    return live


def privilege_differences(conn: Any, prefix: str) -> list[tuple[str, str, str]]:
    """Return (role, table, what differs) for every table where live privileges differ from the declared ones."""
    live = live_table_privileges(conn, prefix)
    tables = sorted({table for _, table in live})
    expected = expected_table_privileges(prefix, tables)
    differences = []
    for key in sorted(set(live) | set(expected)):
        have, want = live.get(key, set()), expected.get(key, set())
        if have != want:
            parts = []
            if have - want:
                parts.append(f"has {', '.join(sorted(have - want))} beyond the declared")
            if want - have:
                parts.append(f"lacks {', '.join(sorted(want - have))}")
            differences.append((key[0], key[1], "; ".join(parts)))
    return differences
