"""A throwaway PostgreSQL cluster on loopback: initdb + pg_ctl in a temp folder, trust auth.

Used by the tests (tests/postgres_server.py) and the benchmarks, which must not import the
tests. As root, the server runs as the `postgres` user (`runuser`), as initdb requires.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
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
    subprocess.run(_server_argv(argv), check=True, capture_output=True, timeout=120)


def _server_argv(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


# Stops the cluster and removes its folder once the process that started it has exited
# (argv: that process's ID, the folder, the stop command): a run killed before its cleanup
# leaves no server behind. pidfd_open's descriptor turns readable at that exit.
_WATCH = """
import os
import select
import shutil
import subprocess
import sys

try:
    select.select([os.pidfd_open(int(sys.argv[1]))], [], [])
except ProcessLookupError:
    pass
subprocess.run(sys.argv[3:], capture_output=True, timeout=120)
shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


def _watch(root: Path, stop: list[str]) -> subprocess.Popen[bytes] | None:
    """A process of its own session (a kill of this one's group spares it) that stops the
    cluster after this process exits; None where Linux has no pidfd_open."""
    if not hasattr(os, "pidfd_open"):
        return None
    argv = [sys.executable, "-c", _WATCH, str(os.getpid()), str(root), *stop]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True)


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
    stop = [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "immediate", "stop"]
    watcher = _watch(root, _server_argv(stop))
    try:
        _as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-w", "-t", "120", "-l", str(root / "log"), "-o", options, "start"]
        )
        yield server
    finally:
        if watcher is not None:
            watcher.kill()
            watcher.wait()
        try:
            _as_server_user(stop)
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(root, ignore_errors=True)
