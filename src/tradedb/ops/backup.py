"""Verified backups: pg_dump (custom format) with a manifest, checked restores, retention.

A backup is ``<folder>/<name>.dump`` plus ``<name>.json`` (the manifest: tradedb and schema revision, server
and pg_dump versions, schemas, per-table row counts taken in the dump's own snapshot, sha256 of the dump, start
and end times). Both files are written atomically (temp file, fsync, rename). A backup that has not been restored
is not trusted: ``create(..., verify=True)`` restores it into a scratch database and checks it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tradedb._version import __version__
from tradedb.db import direct as _connect
from tradedb.db.embedded import EmbeddedServer, server_url
from tradedb.errors import BackupError, TradeDBError, ValidationError
from tradedb.ops.verify import check_catalog
from tradedb.schema import SERVICE_SCHEMAS
from tradedb.settings import Settings, load_settings, with_dbname

_NAME = re.compile(r"^tradedb-(?P<db>.+)-(?P<ts>\d{8}T\d{6}Z)$")


@dataclass
class Manifest:
    """What a backup holds and how to check it."""

    name: str
    database: str
    tradedb_version: str
    schema_revision: list[str]
    server_version: str
    pg_dump_version: str
    schemas: list[str]
    row_counts: dict[str, int]
    sha256: str
    started_at: str
    finished_at: str
    verified_at: str | None = None

    @property
    def created(self) -> datetime:
        """Return when the backup started."""
        return datetime.fromisoformat(self.started_at)


def _major(version_text: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", version_text)
    if not match:
        raise BackupError(f"cannot read a version from {version_text!r}")
    return int(match.group(1))


def _tool(settings: Settings, name: str, server_major: int) -> tuple[Path, str]:
    """Find pg_dump/pg_restore no older than the server: refuse an older one clearly."""
    candidates: list[Path] = []
    if settings.pg_bindir:
        candidates.append(settings.pg_bindir)
    with contextlib.suppress(TradeDBError):  # no embedded binaries: the system ones may do
        candidates.append(EmbeddedServer(settings).bindir())
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = []
    for folder in candidates:
        binary = folder / name
        if binary.exists():
            text = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False).stdout
            found.append((binary, text.strip()))
    usable = [(b, v) for b, v in found if _major(v) >= server_major]
    if not usable:
        have = ", ".join(v for _, v in found) or "none"
        raise BackupError(
            f"{name} must be at least as new as the server (PostgreSQL {server_major}); found: {have}. Install "
            f"PostgreSQL {server_major} client tools or set TRADEDB_PG_BINDIR"
        )
    # The closest version wins: newer tools emit settings an older server rejects (pg_restore 18 sets
    # transaction_timeout, unknown to PostgreSQL 15).
    return min(usable, key=lambda item: _major(item[1]))


def _libpq_env(url: str) -> tuple[list[str], dict[str, str]]:
    """Return connection arguments without the password, and an environment that carries it (not argv)."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ}
    if password:
        env["PGPASSWORD"] = str(password)
    return ["--dbname", psycopg.conninfo.make_conninfo("", **params)], env


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_suffix(path.suffix + ".partial")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tables(conn: psycopg.Connection[Any], schemas: list[str]) -> list[str]:
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s) ORDER BY 1",
        (schemas,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _revisions(conn: psycopg.Connection[Any]) -> list[str]:
    if conn.execute("SELECT to_regclass('shared.alembic_version')").fetchone() == (None,):
        return []
    return [str(r[0]) for r in conn.execute("SELECT version_num FROM shared.alembic_version")]


def row_counts(conn: psycopg.Connection[Any], schemas: list[str]) -> dict[str, int]:
    """Return exact row counts of every table (partitioned parents include their partitions)."""
    counts = {}
    for table in _tables(conn, schemas):
        schema, _, name = table.partition(".")
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def create(
    *,
    settings: Settings | None = None,
    folder: Path,
    schemas: list[str] | None = None,
    url: str | None = None,
    verify: bool = False,
) -> Manifest:
    """Dump the trading database (default: every service schema) into ``folder`` with a manifest."""
    settings = settings or load_settings()
    chosen = list(schemas or SERVICE_SCHEMAS)
    unknown = [s for s in chosen if s not in SERVICE_SCHEMAS]
    if unknown:
        raise ValidationError(f"unknown schema(s) {', '.join(unknown)}; one of {', '.join(SERVICE_SCHEMAS)}")
    target = with_dbname(url or settings.direct_url() or server_url(settings), settings.trading_db_name)
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    name = f"tradedb-{settings.trading_db_name}-{started:%Y%m%dT%H%M%SZ}"
    dump_path = folder / f"{name}.dump"
    # Counts and dump share one snapshot: the manifest describes exactly what the dump holds.
    with _connect.connect(target, settings) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        server_version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        counts = row_counts(conn, chosen)
        revision = _revisions(conn)
        # pg_dump --schema leaves extensions out: name those living in the chosen schemas (btree_gist, for the
        # symbology's exclusion constraints), or the restore could not create what depends on them.
        extensions = [
            str(r[0])
            for r in conn.execute(
                "SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                " WHERE n.nspname = ANY(%s) ORDER BY 1",
                (list(chosen),),
            )
        ]
        pg_dump, dump_version = _tool(settings, "pg_dump", _major(server_version))
        args, env = _libpq_env(target)
        partial = dump_path.with_suffix(".dump.partial")
        command = [
            str(pg_dump),
            *args,
            "--format=custom",
            f"--snapshot={snapshot}",
            f"--file={partial}",
            *[f"--schema={s}" for s in chosen],
            *[f"--extension={e}" for e in extensions],
        ]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        conn.rollback()
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {result.stderr.strip().splitlines()[-1] if result.stderr else ''}")
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, dump_path)
    manifest = Manifest(
        name=name,
        database=settings.trading_db_name,
        tradedb_version=__version__,
        schema_revision=revision,
        server_version=server_version,
        pg_dump_version=dump_version,
        schemas=chosen,
        row_counts=counts,
        sha256=_sha256(dump_path),
        started_at=started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
    )
    _write_atomically(folder / f"{name}.json", json.dumps(asdict(manifest), indent=2).encode())
    _fsync_dir(folder)
    if verify:
        verify_backup(dump_path, settings=settings, url=url)
        manifest = read_manifest(dump_path)
    return manifest


def read_manifest(dump: Path) -> Manifest:
    """Read the manifest beside a dump."""
    path = dump.with_suffix(".json")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"no manifest {path.name} beside {dump.name}") from None
    except json.JSONDecodeError as exc:
        raise BackupError(f"manifest {path.name} is not valid JSON: {exc}") from None
    return Manifest(**data)


def restore(
    dump: Path, *, into: str, settings: Settings | None = None, url: str | None = None, force: bool = False
) -> dict[str, int]:
    """Restore ``dump`` into database ``into`` (created when missing); check sha256 first, row counts after.

    Refuses a non-empty database unless ``force``. Returns the restored row counts.
    """
    settings = settings or load_settings()
    if not dump.exists():
        raise ValidationError(f"no backup file {dump}")
    manifest = read_manifest(dump)
    if _sha256(dump) != manifest.sha256:
        raise BackupError(f"{dump.name} does not match the sha256 in its manifest: the file is damaged; not restored")
    admin = url or settings.direct_url() or server_url(settings)
    with _connect.maintenance_connect(admin, settings) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (into,)).fetchone() is not None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(into)))
        server_version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    target = with_dbname(admin, into)
    with _connect.connect(target, settings) as conn:
        occupied = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%%'"
        ).fetchone()
    if occupied and occupied[0] and not force:
        raise BackupError(f"database {into!r} is not empty: restore into a new database, or pass --force")
    pg_restore, _ = _tool(settings, "pg_restore", _major(server_version))
    args, env = _libpq_env(target)
    replace = bool(force and occupied and occupied[0])
    command = [
        str(pg_restore),
        *args,
        "--exit-on-error",
        "--single-transaction",
        *(["--clean", "--if-exists"] if replace else []),
        str(dump),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise BackupError(f"pg_restore failed and rolled back: {lines[-1] if lines else 'exit code'}")
    with _connect.connect(target, settings) as conn:
        counts = row_counts(conn, manifest.schemas)
    if counts != manifest.row_counts:
        differences = [
            t for t in sorted(set(counts) | set(manifest.row_counts)) if counts.get(t) != manifest.row_counts.get(t)
        ]
        raise BackupError(f"restored row counts differ from the manifest for: {', '.join(differences[:10])}")
    return counts


def verify_backup(dump: Path, *, settings: Settings | None = None, url: str | None = None) -> Manifest:
    """Restore a backup into a scratch database, check counts and the schema, drop it; mark the manifest."""
    settings = settings or load_settings()
    scratch = f"tradedb_verify_{uuid.uuid4().hex[:10]}"
    admin = url or settings.direct_url() or server_url(settings)
    try:
        restore(dump, into=scratch, settings=settings, url=admin)
        scratch_settings = settings.model_copy(update={"trading_db_name": scratch})
        with _connect.connect(with_dbname(admin, scratch), settings) as conn:
            problems = [p for p in check_catalog(conn, scratch_settings) if p.kind != "role"]
        if problems:
            raise BackupError(
                f"the restored backup does not verify: {problems[0].kind} {problems[0].name}: {problems[0].detail}"
            )
    finally:
        with _connect.maintenance_connect(admin, settings) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    manifest = read_manifest(dump)
    manifest.verified_at = datetime.now(UTC).isoformat()
    _write_atomically(dump.with_suffix(".json"), json.dumps(asdict(manifest), indent=2).encode())
    return manifest


def list_backups(folder: Path) -> list[tuple[Path, Manifest | None]]:
    """Return the backups in ``folder``, newest first (a dump without a readable manifest has None)."""
    if not folder.exists():
        return []
    found = []
    for dump in folder.glob("tradedb-*.dump"):
        try:
            manifest: Manifest | None = read_manifest(dump)
        except BackupError:
            manifest = None
        found.append((dump, manifest))
    return sorted(found, key=lambda item: item[0].name, reverse=True)


def prune(folder: Path, *, keep_daily: int = 7, keep_weekly: int = 4, dry_run: bool = False) -> list[Path]:
    """Delete backups beyond the newest per day (``keep_daily`` days) and per ISO week (``keep_weekly`` weeks).

    The newest good backup (its sha256 matches) is never deleted. Returns the dumps deleted (or that would be).
    """
    if keep_daily < 0 or keep_weekly < 0:
        raise ValidationError("keep counts must be >= 0")
    backups = [(d, m) for d, m in list_backups(folder) if m is not None]
    keep: set[Path] = set()
    newest_good = next((d for d, m in backups if m is not None and _sha256(d) == m.sha256), None)
    if newest_good is not None:
        keep.add(newest_good)
    days: list[str] = []
    weeks: list[tuple[int, int]] = []
    for dump, manifest in backups:
        assert manifest is not None
        created = manifest.created
        day = created.date().isoformat()
        week = created.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.append(day)
            keep.add(dump)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.append(week)
            keep.add(dump)
    doomed = [d for d, _ in list_backups(folder) if d not in keep]
    if not dry_run:
        for dump in doomed:
            dump.unlink(missing_ok=True)
            dump.with_suffix(".json").unlink(missing_ok=True)
    return doomed
