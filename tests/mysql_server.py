"""A real, throwaway MariaDB server for the MySQL source's tests: its own data folder, on loopback.

`make test` installs Debian's `mariadb-server` where it can (root with apt-get); where the
binaries are missing the tests that need one are skipped with the reason, or fail under
CI=true (tests/needs.py). The server runs as a child of the test process and is stopped
(by the process id it was started with) at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from needs import need

START_DEADLINE_S = 120  # a generous bound for a busy machine; nothing asserts how long it took


@dataclass(frozen=True)
class MariaDBServer:
    port: int
    socket_path: Path
    client: str

    def sql(self, statements: str, database: str = "") -> str:
        """Run SQL as root over the Unix socket (root's socket authentication); returns the output."""
        argv = [self.client, "--no-defaults", "-S", str(self.socket_path), "-u", "root", "-N", "-B"]
        done = subprocess.run([*argv, *([database] if database else [])], input=statements, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb failed: {done.stderr.strip()}")
        return done.stdout


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").is_file() else None)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(server: MariaDBServer, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mariadbd exited: {log.read_text()[-2000:]}")
        try:
            server.sql("SELECT 1")
            return
        except RuntimeError:
            time.sleep(0.2)
    raise RuntimeError(f"mariadbd did not accept connections within {START_DEADLINE_S}s: {log.read_text()[-2000:]}")


@contextmanager
def mariadb_server() -> Iterator[MariaDBServer]:
    daemon, install_db, client = _binary("mariadbd", "mysqld"), _binary("mariadb-install-db"), _binary("mariadb", "mysql")
    need(
        daemon is not None and install_db is not None and client is not None,
        "the MySQL source's live tests need MariaDB's server binaries (Debian's mariadb-server; make test installs it)",
    )
    root = Path(tempfile.mkdtemp(prefix="userflow-mariadb-"))
    data, sock, log = root / "data", root / "sock", root / "err.log"
    subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )
    server = MariaDBServer(port=_free_port(), socket_path=sock, client=client)
    process = subprocess.Popen(
        [daemon, "--no-defaults", f"--datadir={data}", "--user=root", "--bind-address=127.0.0.1", f"--port={server.port}",
         f"--socket={sock}", f"--pid-file={root / 'pid'}", "--skip-name-resolve", f"--log-error={log}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_ready(server, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
