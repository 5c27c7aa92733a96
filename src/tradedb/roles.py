"""The declared roles and privileges of SCHEMA.md, and the SQL that creates and grants them.

An owner role owns every object and runs migrations; one login-less role per service writes its own schema and
reads what it needs; ``readonly`` reads everything. Default privileges make future tables follow the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from tradedb.schema import SERVICE_SCHEMAS

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
)


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
    return [s.as_string(None) for s in statements]


def create_role_statement(name: str) -> str:
    """Return ``CREATE ROLE name NOLOGIN`` (callers run it only when the role is missing)."""
    return sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)).as_string(None)


def grant_membership_statement(role: str, member: str) -> str:
    """Return ``GRANT role TO member``."""
    return sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(member)).as_string(None)
