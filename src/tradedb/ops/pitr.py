"""Point-in-time recovery with pgBackRest: WAL archiving, full and incremental backups, restores to a moment.

For the embedded server, ``setup`` writes pgBackRest's configuration into ``<TRADEDB_HOME>/pgbackrest`` (the
repository in ``repo`` beside it unless ``repository=`` names another folder), turns WAL archiving on, restarts
the server (archive_mode needs it; the server then also opens a Unix socket in its home, pgBackRest's only way in)
and creates the stanza. ``backup`` and ``restore`` run pgBackRest as the server's user. A restore goes into a new
folder laid out as an embedded home (``pgdata`` and the password), so ``TRADEDB_HOME=<folder> tradedb db start``
starts the restored server: it replays the archived WAL up to the moment, then promotes.

For a server of your own, ``setup`` returns the configuration and settings to apply there (nothing is changed).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from tradedb.db import direct as _connect
from tradedb.db.embedded import EmbeddedServer
from tradedb.db.inputs import check_time
from tradedb.errors import BackupError, EmbeddedServerError, ValidationError
from tradedb.settings import Settings, load_settings

STANZA = "tradedb"
#: The superuser of the embedded server, whom pgBackRest connects as.
_DB_USER = "tradedb"
#: A Unix socket path may not exceed 107 bytes (sockaddr_un); the socket file adds ".s.PGSQL.NNNNN".
_SOCKET_PATH_LIMIT = 107 - len("/.s.PGSQL.65535")
BACKUP_TYPES = ("full", "diff", "incr")
#: The pgBackRest commands that connect to the server.
_CONNECTING = ("stanza-create", "check", "backup")


@dataclass
class PitrSetup:
    """What ``setup`` did (embedded) or what to apply (a server of your own)."""

    config_path: Path | None
    config: str
    settings: dict[str, str]
    applied: bool
    actions: list[str] = field(default_factory=list)


def _pgbackrest() -> str:
    found = shutil.which("pgbackrest")
    if found is None:
        raise BackupError("pgBackRest is not installed: install it (Debian: apt-get install pgbackrest)")
    return found


def _config_text(server: EmbeddedServer, repository: Path) -> str:
    folder = server.pitr_config.parent
    return "\n".join(
        [
            "[global]",
            f"repo1-path={repository}",
            "repo1-retention-full=2",
            f"log-path={folder / 'log'}",
            f"lock-path={folder / 'lock'}",
            "log-level-console=warn",
            "start-fast=y",
            "",
            f"[{STANZA}]",
            f"pg1-path={server.data_dir}",
            f"pg1-socket-path={server.socket_dir}",
            f"pg1-user={_DB_USER}",
            "",
        ]
    )


def _archive_settings(config_path: Path | str, binary: str = "pgbackrest") -> dict[str, str]:
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"{binary} --config={config_path} --stanza={STANZA} archive-push %p",
    }


def setup(*, settings: Settings | None = None, repository: Path | None = None) -> PitrSetup:
    """Configure WAL archiving and a pgBackRest repository for the embedded server, or say what to apply."""
    settings = settings or load_settings()
    if settings.configured_url() is not None:
        # A server of its own: pgBackRest runs on that host, as the server's user; tradedb changes nothing there.
        config = (
            f"[global]\nrepo1-path={repository or '/var/lib/pgbackrest'}\nrepo1-retention-full=2\nstart-fast=y\n\n"
            f"[{STANZA}]\npg1-path=<the server's data folder>\n"
        )
        wanted = _archive_settings("/etc/pgbackrest/pgbackrest.conf")
        return PitrSetup(None, config, wanted, applied=False)
    binary = _pgbackrest()
    server = EmbeddedServer(settings)
    folder = server.pitr_config.parent
    repo = (repository or folder / "repo").expanduser().absolute()
    if len(str(server.socket_dir)) > _SOCKET_PATH_LIMIT:
        raise ValidationError(
            f"TRADEDB_HOME {server.home} is too long for a Unix socket ({server.socket_dir}): pgBackRest connects "
            f"through one; choose a shorter TRADEDB_HOME"
        )
    server.ensure_running()
    user = server.run_as()
    for path in (folder, repo, folder / "log", folder / "lock"):
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        if user is not None:
            shutil.chown(path, user.pw_uid, user.pw_gid)
    server.pitr_config.write_text(_config_text(server, repo))
    if user is not None:
        shutil.chown(server.pitr_config, user.pw_uid, user.pw_gid)
    wanted = _archive_settings(server.pitr_config, binary)  # the server's PATH may not be ours
    report = PitrSetup(server.pitr_config, server.pitr_config.read_text(), wanted, applied=True)
    server.stop()
    server.start()  # the socket opens now that the configuration exists
    try:
        _run(server, binary, "stanza-create", what="creating the pgBackRest stanza")
    except BackupError:
        # Archiving stays off (WAL would pile up, refused by the archive) and the socket closes again.
        server.pitr_config.unlink()
        server.stop()
        server.start()
        raise
    with _connect.connect(server.url("postgres"), settings, autocommit=True) as conn:
        for name, value in wanted.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    server.stop()
    server.start()  # archive_mode takes a restart
    report.actions.append(f"WAL archiving on, to {repo}")
    _run(server, binary, "check", what="checking WAL archiving")
    report.actions.append(f"stanza {STANZA} created and checked")
    return report


def _run(server: EmbeddedServer, binary: str, *args: str, what: str) -> str:
    if not server.pitr_config.exists():
        raise BackupError(f"point-in-time recovery is not set up in {server.home}: run `tradedb pitr setup` first")
    command = [binary, f"--config={server.pitr_config}", f"--stanza={STANZA}", *args]
    port = server.status().port
    if port is not None and args[-1] in _CONNECTING:  # the port changes at every start; others refuse the option
        command.insert(3, f"--pg1-port={port}")
    try:
        return server.run(command, what=what, env={"PGPASSWORD": server.password()})
    except EmbeddedServerError as exc:  # it carries pgBackRest's own message
        if "is this version of PostgreSQL supported" in exc.message:
            major = (server.data_dir / "PG_VERSION").read_text().strip()
            installed = server.run([binary, "version"], what="reading pgBackRest's version").strip()
            raise BackupError(
                f"{installed} does not support PostgreSQL {major}: install a pgBackRest that does, or run the embedded "
                f"server on PostgreSQL binaries it supports (TRADEDB_PG_BINDIR, e.g. /usr/lib/postgresql/15/bin)"
            ) from exc
        raise BackupError(exc.message) from exc


def backup(kind: str = "full", *, settings: Settings | None = None) -> dict[str, Any]:
    """Take a full, differential or incremental backup of the embedded server; return it as ``info`` lists it."""
    if kind not in BACKUP_TYPES:
        raise ValidationError(f"backup type must be one of {', '.join(BACKUP_TYPES)}; got {kind!r}")
    server = EmbeddedServer(settings or load_settings())
    binary = _pgbackrest()
    server.ensure_running()
    _run(server, binary, f"--type={kind}", "backup", what=f"the {kind} backup")
    return info(settings=settings)[-1]


def info(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The backups in the repository, oldest first: label, type, start and stop (UTC), WAL range."""
    server = EmbeddedServer(settings or load_settings())
    text = _run(server, _pgbackrest(), "--output=json", "info", what="reading the repository")
    stanzas = json.loads(text or "[]")
    backups = stanzas[0].get("backup", []) if stanzas else []
    return [
        {
            "label": b["label"],
            "type": b["type"],
            "started_at": datetime.fromtimestamp(b["timestamp"]["start"], UTC),
            "stopped_at": datetime.fromtimestamp(b["timestamp"]["stop"], UTC),
            "wal": (b["archive"]["start"], b["archive"]["stop"]),
        }
        for b in backups
    ]


def restore(to: datetime, into: Path, *, settings: Settings | None = None) -> Path:
    """Restore the embedded server as of ``to`` into a new embedded home ``into``; return its data folder.

    ``into`` must not exist (or be empty). The moment must lie after the end of the first backup and not in the
    future. Start it with ``TRADEDB_HOME=<into> tradedb db start``: it replays to the moment and promotes.
    """
    to = check_time(to, "the moment to restore to").astimezone(UTC)
    now = datetime.now(UTC)
    if to > now:
        raise ValidationError(f"cannot restore to {to.isoformat()}: it is in the future (now {now.isoformat()})")
    into = into.expanduser().absolute()
    if into.exists() and any(into.iterdir()):
        raise ValidationError(f"{into} exists and is not empty: restore into a new folder")
    source = EmbeddedServer(settings or load_settings())
    listed = info(settings=settings)
    backups = [b for b in listed if b["stopped_at"] <= to]
    if not backups:
        when = listed[0]["stopped_at"].isoformat() if listed else "none taken yet"
        raise ValidationError(f"cannot restore to {to.isoformat()}: before the end of the first backup ({when})")
    target = EmbeddedServer(Settings(_env_file=None, home=into))
    user = source.run_as()
    into.mkdir(parents=True, exist_ok=True)
    into.chmod(0o755)
    target.data_dir.mkdir(mode=0o700)
    if user is not None:
        shutil.chown(target.data_dir, user.pw_uid, user.pw_gid)
    try:
        _run(
            source,
            _pgbackrest(),
            f"--pg1-path={target.data_dir}",
            f"--set={backups[-1]['label']}",
            "--type=time",
            f"--target={to.strftime('%Y-%m-%d %H:%M:%S.%f+00')}",
            "--target-action=promote",
            "--archive-mode=off",  # the restored server must not archive into the source's repository
            "restore",
            what=f"restoring to {to.isoformat()}",
        )
    except BackupError:
        shutil.rmtree(into, ignore_errors=True)  # no half-restored folder left behind (the source is untouched)
        raise
    shutil.copy2(source.password_file, target.password_file)
    return target.data_dir
