"""A throwaway PostgreSQL cluster on loopback: initdb + pg_ctl in a temp folder, trust auth.

Used by the tests (tests/postgres_server.py) and the benchmarks, which must not import the
tests. As root, the server runs as the `postgres` user (`runuser`), as initdb requires.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"), Path("/usr/lib/postgresql/17/bin")]
SERVER_USER = "postgres"
MISSING = "PostgreSQL's server binaries (initdb, pg_ctl) were not found"


def find_bin_dir() -> Path | None:
    for candidate in BIN_DIRS:
        if (candidate / "pg_ctl").is_file() and (candidate / "initdb").is_file():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


@dataclass
class PostgresServer:
    """A running server: `url(db)` for a database on it, `restart()` to bounce it mid-test."""

    host: str
    port: int
    user: str
    data_dir: Path | None = None
    bin_dir: Path | None = None
    base_url: str | None = None

    def url(self, database: str = "postgres") -> str:
        if self.base_url is not None:
            return self.base_url.rsplit("/", 1)[0] + f"/{database}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql (autocommit, stops at the first error); returns its output."""
        psql = (self.bin_dir / "psql") if self.bin_dir and (self.bin_dir / "psql").is_file() else "psql"
        done = subprocess.run(
            [str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(database), "-c", sql],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """`pg_ctl restart`: every open connection is dropped; the data stays."""
        if self.data_dir is None or self.bin_dir is None:
            raise RuntimeError("only a cluster the tests started can be restarted")
        # -l again: without it the server's output would go to our pipe, and run() would wait on it forever.
        log = self.data_dir.parent / "log"
        _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-l", str(log), "-m", "fast", "restart"])


def _as_server_user(argv: list[str]) -> None:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", SERVER_USER, "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start in a temp folder, trust auth on loopback only; stopped and removed after."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(MISSING)
    root = Path(tempfile.mkdtemp(prefix="userflow-pg-"))
    data_dir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, user=SERVER_USER)
    port = _free_port()
    _as_server_user(
        [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off -c max_connections=200"
    server = PostgresServer(host="127.0.0.1", port=port, user=SERVER_USER, data_dir=data_dir, bin_dir=bin_dir)
    try:
        _as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-w", "-t", "120", "-l", str(root / "log"), "-o", options, "start"]
        )
        yield server
    finally:
        try:
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "immediate", "stop"])
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(root, ignore_errors=True)
