"""Settings from the environment and a ``.env`` file, validated, with profiles.

Nothing is read at import time: call :func:`load_settings` (or build :class:`Settings`) when you need them.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradedb.durations import parse_retention_entries
from tradedb.errors import ConfigError, TradeDBError
from tradedb.masking import mask_url

#: The services that may scope a Database (TRADEDB_SERVICE); each has a role (``schema.privileges``).
SERVICES = (
    "data_ingestion",
    "strategy_engine",
    "execution",
    "risk_management",
    "analytics",
    "notification",
    "logging",
    "readonly",
    "backoffice",
)

Profile = Literal["development", "production", "high-frequency"]
TlsMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

#: Defaults each profile sets, for every setting the user did not set explicitly.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "development": {
        "pool_min_size": 1,
        "pool_max_size": 10,
        "connection_timeout": 30.0,
        "idle_timeout": 600.0,
        "tick_partition_interval": timedelta(hours=1),
    },
    "production": {
        "pool_min_size": 10,
        "pool_max_size": 100,
        "connection_timeout": 10.0,
        "idle_timeout": 300.0,
        "tick_partition_interval": timedelta(minutes=15),
    },
    "high-frequency": {
        "pool_min_size": 50,
        "pool_max_size": 500,
        "connection_timeout": 5.0,
        "idle_timeout": 120.0,
        "tick_partition_interval": timedelta(minutes=1),
    },
}

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_DBNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")


def _env(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


class Settings(BaseSettings):
    """All tradedb settings. Each field names the environment variables it is read from."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # Every variable is read by its documented name (the aliases). populate_by_name lets code pass field
        # names as keyword arguments, but would also read variables named like fields (`home`, `profile`):
        # the prefix (which applies to field names only, never to aliases) and case sensitivity keep ordinary
        # variables such as HOME out.
        case_sensitive=True,
        env_prefix="TRADEDB_SETTINGS__",
    )

    # Where the database is. With neither set, tradedb uses its embedded server.
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_DATABASE_URL", "DATABASE_URL")
    )
    postgres_host: str | None = Field(default=None, validation_alias=AliasChoices("POSTGRES_HOST"))
    postgres_port: int = Field(default=5432, ge=1, le=65535, validation_alias=AliasChoices("POSTGRES_PORT"))
    postgres_user: str = Field(default="postgres", validation_alias=AliasChoices("POSTGRES_USER", "TRADING_DB_USER"))
    postgres_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("POSTGRES_PASSWORD", "TRADING_DB_PASSWORD")
    )
    #: The trading database with the POSTGRES_HOST style; with DATABASE_URL, the URL's database (a different
    #: TRADING_DB_NAME is an error).
    trading_db_name: str = Field(default="trading_system", validation_alias=AliasChoices("TRADING_DB_NAME"))
    prefect_db_name: str = Field(default="prefect", validation_alias=AliasChoices("PREFECT_DB_NAME"))
    # The orchestrator's own login, owner of the prefect database (default: <role prefix>prefect).
    prefect_db_user: str | None = Field(default=None, validation_alias=AliasChoices("PREFECT_DB_USER"))
    prefect_db_password: SecretStr | None = Field(default=None, validation_alias=AliasChoices("PREFECT_DB_PASSWORD"))

    # Per-service logins (`tradedb setup --service-users`): connect(service=...) uses the service's own URL.
    data_ingestion_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_DATA_INGESTION_DATABASE_URL")
    )
    strategy_engine_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_STRATEGY_ENGINE_DATABASE_URL")
    )
    execution_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_EXECUTION_DATABASE_URL")
    )
    risk_management_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_RISK_MANAGEMENT_DATABASE_URL")
    )
    analytics_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_ANALYTICS_DATABASE_URL")
    )
    notification_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_NOTIFICATION_DATABASE_URL")
    )
    logging_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_LOGGING_DATABASE_URL")
    )
    readonly_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_READONLY_DATABASE_URL")
    )
    backoffice_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_BACKOFFICE_DATABASE_URL")
    )

    # Redis, for events to other services: a URL (redis:// or rediss:// for TLS), or a host and port.
    redis_url: SecretStr | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_REDIS_URL", "REDIS_URL"))
    redis_host: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_HOST"))
    redis_port: int = Field(default=6379, ge=1, le=65535, validation_alias=AliasChoices("REDIS_PORT"))

    # Events (tradedb.events): where they go, whether writers record them, how long delivered ones are kept.
    events_backend: Literal["auto", "redis", "postgres"] = Field(
        default="auto", validation_alias=AliasChoices("TRADEDB_EVENTS_BACKEND")
    )
    events_outbox: bool = Field(default=True, validation_alias=AliasChoices("TRADEDB_EVENTS_OUTBOX"))
    events_retention: timedelta = Field(
        default=timedelta(days=7), validation_alias=AliasChoices("TRADEDB_EVENTS_RETENTION")
    )
    events_maxlen: int = Field(default=1_000_000, ge=1000, validation_alias=AliasChoices("TRADEDB_EVENTS_MAXLEN"))
    # The Redis cache of latest quotes and positions: an entry older than this is read from PostgreSQL instead.
    cache_staleness: float = Field(
        default=5.0, gt=0, le=86400, validation_alias=AliasChoices("TRADEDB_CACHE_STALENESS")
    )

    # Observability (tradedb.observe): how long log tables keep records, where the log handler spills records
    # while the database is unreachable, and which running statements count as slow.
    log_retention: timedelta = Field(default=timedelta(days=30), validation_alias=AliasChoices("TRADEDB_LOG_RETENTION"))
    log_spill_dir: Path | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_LOG_SPILL_DIR"))
    slow_query_ms: float = Field(default=1000.0, gt=0, validation_alias=AliasChoices("TRADEDB_SLOW_QUERY_MS"))

    profile: Profile = Field(default="development", validation_alias=AliasChoices("TRADEDB_PROFILE"))

    # Pools (defaults come from the profile unless set).
    pool_min_size: int = Field(default=1, ge=0, validation_alias=AliasChoices("DATABASE_POOL_MIN_SIZE"))
    pool_max_size: int = Field(default=10, ge=1, validation_alias=AliasChoices("DATABASE_POOL_MAX_SIZE"))
    connection_timeout: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("DATABASE_CONNECTION_TIMEOUT"))
    idle_timeout: float = Field(default=600.0, gt=0, validation_alias=AliasChoices("DATABASE_IDLE_TIMEOUT"))
    max_lifetime: float = Field(default=3600.0, gt=0, validation_alias=AliasChoices("DATABASE_MAX_LIFETIME"))
    tick_partition_interval: timedelta = Field(
        default=timedelta(hours=1),
        validation_alias=AliasChoices("TRADEDB_TICK_PARTITION_INTERVAL"),
    )

    # Partition maintenance: "quotes=30d,market_trades=90d" (tables not named are kept forever).
    retention: str | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_RETENTION"))
    retention_mode: Literal["drop", "detach"] = Field(
        default="drop", validation_alias=AliasChoices("TRADEDB_RETENTION_MODE")
    )

    # Cold partitions to Parquet (`tradedb archive`): where ("/srv/archive" or "s3://bucket/prefix"; S3 credentials
    # come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, never the URL) and after what age ("quotes=365d,bars=520w").
    archive_url: str | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_ARCHIVE_URL"))
    archive_after: str | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_ARCHIVE_AFTER"))

    pool_timeout: float | None = Field(default=None, gt=0, validation_alias=AliasChoices("DATABASE_POOL_TIMEOUT"))
    retry_attempts: int = Field(default=3, ge=0, le=100, validation_alias=AliasChoices("DATABASE_RETRY_ATTEMPTS"))

    # A Citus coordinator: setup distributes the tables (found from the extension; true makes its absence an error).
    citus: bool = Field(default=False, validation_alias=AliasChoices("TRADEDB_CITUS"))
    citus_shards: int | None = Field(default=None, ge=1, le=4096, validation_alias=AliasChoices("TRADEDB_CITUS_SHARDS"))

    # PgBouncer, direct connections, replicas, service scoping.
    pgbouncer: bool = Field(default=False, validation_alias=AliasChoices("DATABASE_PGBOUNCER"))
    direct_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRADEDB_DIRECT_DATABASE_URL", "DIRECT_DATABASE_URL")
    )
    replica_urls: SecretStr | None = Field(default=None, validation_alias=AliasChoices("DATABASE_REPLICA_URLS"))
    replica_timeout: float = Field(default=2.0, gt=0, validation_alias=AliasChoices("DATABASE_REPLICA_TIMEOUT"))
    replica_retry_interval: float = Field(
        default=5.0, ge=0, validation_alias=AliasChoices("DATABASE_REPLICA_RETRY_INTERVAL")
    )
    service: str | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_SERVICE"))

    # Application-side encryption of secrets: "id:base64key,..." newest first.
    encryption_keys: SecretStr | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_ENCRYPTION_KEYS"))

    # TLS. DATABASE_TLS_ENABLED=true (the name the systems tradedb replaces used) means "require", or
    # "verify-full" with a CA: never a mode that may fall back to plain text.
    tls_mode: TlsMode | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_TLS_MODE", "DATABASE_SSLMODE")
    )
    tls_enabled: bool | None = Field(default=None, validation_alias=AliasChoices("DATABASE_TLS_ENABLED"))
    tls_root_cert: Path | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_TLS_ROOT_CERT", "DATABASE_TLS_CA_PATH")
    )
    tls_cert: Path | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_TLS_CERT", "DATABASE_TLS_CERT_PATH")
    )
    tls_key: Path | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_TLS_KEY", "DATABASE_TLS_KEY_PATH")
    )

    # Roles and migrations.
    role_prefix: str = Field(default="tradedb_", validation_alias=AliasChoices("TRADEDB_ROLE_PREFIX"))
    migration_lock_wait: float = Field(default=60.0, ge=0, validation_alias=AliasChoices("TRADEDB_MIGRATION_LOCK_WAIT"))
    lock_timeout: float = Field(default=10.0, ge=0, validation_alias=AliasChoices("TRADEDB_LOCK_TIMEOUT"))
    statement_timeout: float = Field(default=600.0, ge=0, validation_alias=AliasChoices("TRADEDB_STATEMENT_TIMEOUT"))
    application_name: str = Field(default="tradedb", validation_alias=AliasChoices("TRADEDB_APPLICATION_NAME"))

    # The embedded server.
    home: Path | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_HOME"))
    pg_bindir: Path | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_PG_BINDIR"))
    embedded_user: str | None = Field(default=None, validation_alias=AliasChoices("TRADEDB_EMBEDDED_USER"))
    embedded_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias=AliasChoices("TRADEDB_EMBEDDED_PORT")
    )

    @field_validator("trading_db_name", "prefect_db_name")
    @classmethod
    def _check_dbname(cls, value: str) -> str:
        if not _DBNAME.match(value):
            raise ValueError("must be a plain database name (letters, digits, '_' or '-', at most 63)")
        return value

    @field_validator("role_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value and not _IDENTIFIER.match(value):
            raise ValueError("must be lowercase letters, digits and '_', starting with a letter or '_'")
        return value

    @field_validator("tick_partition_interval")
    @classmethod
    def _check_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1) or value > timedelta(days=31):
            raise ValueError("must be between 1 minute and 31 days")
        return value

    @field_validator("log_retention")
    @classmethod
    def _check_log_retention(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1 hour")
        return value

    @field_validator("retention", "archive_after")
    @classmethod
    def _check_retention(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_retention_entries(value)  # table names are checked where the tables are known
            except TradeDBError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("service")
    @classmethod
    def _check_service(cls, value: str | None) -> str | None:
        if value is not None and value not in SERVICES:
            raise ValueError(f"unknown service {value!r}; one of {', '.join(SERVICES)}")
        return value

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        for name, value in PROFILE_DEFAULTS[self.profile].items():
            if name not in self.model_fields_set:
                setattr(self, name, value)
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"DATABASE_POOL_MIN_SIZE ({self.pool_min_size}) is larger than "
                f"DATABASE_POOL_MAX_SIZE ({self.pool_max_size})"
            )
        self._database_from_url()
        self._tls_from_enabled()
        return self

    def _database_from_url(self) -> None:
        """The database a DATABASE_URL names is the trading database, for every command and function."""
        if self.database_url is None:
            return
        named = url_database(self.database_url.get_secret_value())
        if named is None:
            return  # no database in the URL: TRADING_DB_NAME (default trading_system) completes it
        if "trading_db_name" in self.model_fields_set and self.trading_db_name != named:
            raise ValueError(
                f"DATABASE_URL names database {named!r} but TRADING_DB_NAME is {self.trading_db_name!r}: "
                f"set one of them (TRADING_DB_NAME applies to the POSTGRES_HOST style)"
            )
        self.trading_db_name = named

    def _tls_from_enabled(self) -> None:
        if self.tls_enabled is None:
            return
        plain = ("disable", "allow", "prefer")
        if self.tls_enabled and self.tls_mode in plain:
            raise ValueError(
                f"DATABASE_TLS_ENABLED=true but DATABASE_TLS_MODE={self.tls_mode} may connect without TLS: "
                f"use require, verify-ca or verify-full"
            )
        if not self.tls_enabled and self.tls_mode not in (None, "disable"):
            raise ValueError(f"DATABASE_TLS_ENABLED=false contradicts DATABASE_TLS_MODE={self.tls_mode}")
        if self.tls_mode is None:
            self.tls_mode = ("verify-full" if self.tls_root_cert else "require") if self.tls_enabled else "disable"

    # --- URLs -----------------------------------------------------------------------------------------

    def configured_url(self) -> str | None:
        """Return the configured server URL (libpq form), or None when the embedded default applies."""
        if self.database_url is not None:
            url = normalize_url(self.database_url.get_secret_value(), variable="DATABASE_URL")
            return url if url_database(url) is not None else with_dbname(url, self.trading_db_name)
        if self.postgres_host:
            password = self.postgres_password.get_secret_value() if self.postgres_password else ""
            auth = quote(self.postgres_user, safe="") + (f":{quote(password, safe='')}" if password else "")
            host = f"[{self.postgres_host}]" if ":" in self.postgres_host else self.postgres_host
            url = f"postgresql://{auth}@{host}:{self.postgres_port}/{quote(self.trading_db_name, safe='')}"
            return normalize_url(url, variable="POSTGRES_HOST")
        return None

    def direct_url(self) -> str | None:
        """Return the URL for work PgBouncer cannot carry (migrations, advisory locks, LISTEN)."""
        if self.direct_database_url is not None:
            return normalize_url(self.direct_database_url.get_secret_value(), variable="DIRECT_DATABASE_URL")
        return self.configured_url()

    def replica_url_list(self) -> list[str]:
        """Return the read replicas' URLs (DATABASE_REPLICA_URLS, comma-separated)."""
        if self.replica_urls is None:
            return []
        parts = [p.strip() for p in self.replica_urls.get_secret_value().split(",") if p.strip()]
        return [normalize_url(p, variable="DATABASE_REPLICA_URLS") for p in parts]

    def service_url(self, service: str) -> str | None:
        """The service's own login URL (TRADEDB_<SERVICE>_DATABASE_URL), or None when it has none."""
        if service not in SERVICES:
            raise ConfigError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        value: SecretStr | None = getattr(self, f"{service}_database_url")
        variable = f"TRADEDB_{service.upper()}_DATABASE_URL"
        return None if value is None else normalize_url(value.get_secret_value(), variable=variable)

    def service_login(self, service: str) -> str:
        """The LOGIN user of a service (``<role prefix><service>_login``), a member of the service's role only."""
        return f"{self.role_prefix}{service}_login"

    def prefect_role(self) -> str:
        """The login that owns the prefect database (PREFECT_DB_USER, default <role prefix>prefect)."""
        return self.prefect_db_user or f"{self.role_prefix}prefect"

    def redis_address(self) -> str | None:
        """The Redis URL (REDIS_URL, else redis://REDIS_HOST:REDIS_PORT), or None when none is configured."""
        if self.redis_url is not None:
            url = self.redis_url.get_secret_value().strip()
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError("REDIS_URL must start with redis://, rediss:// (TLS) or unix://")
            return url
        if self.redis_host:
            return f"redis://{self.redis_host}:{self.redis_port}/0"
        return None

    def events_to_redis(self) -> bool:
        """True when events go through Redis (TRADEDB_EVENTS_BACKEND, or "auto" with a Redis configured)."""
        if self.events_backend == "auto":
            return self.redis_address() is not None
        if self.events_backend == "redis" and self.redis_address() is None:
            raise ConfigError("TRADEDB_EVENTS_BACKEND=redis needs REDIS_URL (or REDIS_HOST)")
        return self.events_backend == "redis"

    def checkout_timeout(self) -> float:
        """Return how long a pool checkout waits (DATABASE_POOL_TIMEOUT, else the connect timeout)."""
        return self.pool_timeout if self.pool_timeout is not None else self.connection_timeout

    def connection_options(self) -> dict[str, Any]:
        """Return libpq options every connection gets: timeouts, TLS and the application name."""
        options: dict[str, Any] = {
            "connect_timeout": max(1, round(self.connection_timeout)),
            "application_name": self.application_name,
        }
        if self.tls_mode:
            options["sslmode"] = self.tls_mode
        if self.tls_root_cert:
            options["sslrootcert"] = str(self.tls_root_cert)
        if self.tls_cert:
            options["sslcert"] = str(self.tls_cert)
        if self.tls_key:
            options["sslkey"] = str(self.tls_key)
        return options


#: The environment variable(s) behind each field, for error messages and docs.
def env_names(field: str) -> list[str]:
    """Return the environment variable names a settings field is read from."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if str(choice).isupper()]
    return [field.upper()]


def normalize_url(url: str, *, variable: str) -> str:
    """Validate a PostgreSQL URL and return it in the form libpq takes (no SQLAlchemy driver suffix)."""
    url = url.strip()
    match = re.match(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://", url)
    if not match:
        # Not echoed: without URL structure there is no telling which part is a password.
        raise ConfigError(f"{variable} is not a URL: expected postgresql://user:password@host:port/dbname")
    scheme = match["scheme"].lower()
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise ConfigError(f"{variable} must start with postgresql://, got {scheme}://")
    url = "postgresql://" + url[match.end() :]
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a port outside 0-65535
        psycopg.conninfo.conninfo_to_dict(url)
    except (psycopg.ProgrammingError, ValueError) as exc:
        raise ConfigError(f"{variable} is not a valid PostgreSQL URL ({mask_url(url)}): {exc}") from None
    return url


def with_dbname(url: str, dbname: str) -> str:
    """Return ``url`` pointing at database ``dbname`` instead (a URL stays a URL)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo("", **params)


def with_host(url: str, host: str, port: int | str) -> str:
    """Return ``url`` pointing at another server (``host``:``port``), with the same login and options."""
    info = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(url).items() if v is not None}
    info.pop("hostaddr", None)
    info.update(host=host, port=str(port))
    return psycopg.conninfo.make_conninfo("", **info)


def url_database(url: str) -> str | None:
    """Return the database a URL names explicitly (path or ``dbname=``), or None."""
    try:
        if url.startswith(("postgresql://", "postgres://")) or "://" in url:
            scheme_free = url.split("://", 1)[1]
            path = urlsplit("postgresql://" + scheme_free).path.lstrip("/")
            if path:
                return unquote(path)
        return str(psycopg.conninfo.conninfo_to_dict(url).get("dbname") or "") or None
    except (psycopg.ProgrammingError, ValueError):
        return None  # normalize_url reports the malformed URL


def url_dbname(url: str) -> str:
    """Return the database name a URL points at (libpq's default: the user name)."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    return str(params.get("dbname") or params.get("user") or "postgres")


#: Variables of the systems tradedb replaces that it does not read: refused, with what to use instead.
REFUSED_PREFIXES = {
    "TIMESCALEDB_": "TimescaleDB is used when its library is preloaded: `tradedb maintain --timescale` converts the "
    "market data tables; compression and retention are tradedb maintenance's (TRADEDB_RETENTION)",
}


def _refuse_replaced_variables(env_file: Path | None) -> None:
    names = set(os.environ)
    if env_file is not None and env_file.is_file():
        names |= {k for k in dotenv_values(env_file) if k}
    for prefix, instead in REFUSED_PREFIXES.items():
        found = sorted(n for n in names if n.startswith(prefix))
        if found:
            raise ConfigError(f"{', '.join(found)}: not read by tradedb ({instead}); remove the variable")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; raise ConfigError naming the bad variable."""
    env_file = overrides.get("_env_file", Path(".env"))
    _refuse_replaced_variables(Path(env_file) if env_file is not None else None)
    try:
        return Settings(**overrides)
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            field = loc[0] if loc else ""
            names = env_names(field) if field in Settings.model_fields else ([field.upper()] if field else [])
            where = " / ".join(names) if names else "settings"
            message = error.get("msg", "invalid value").removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
