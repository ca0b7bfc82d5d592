"""The run half of the bad-input corpus: a small warehouse, the sync through Dagster, and the
targets a run can meet (the emulator, a wrong key, nothing listening, a server answering HTML)."""

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import harness
from harness import ACCOUNTS_DDL, GROUPS_SQL, state_count, sync_spec, write_project

from userflow_assets.spec import SyncSpec

USERS_SQL = "SELECT user_id, email, name, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
WAREHOUSE_DDL = f"""
CREATE TABLE users (user_id VARCHAR, email VARCHAR, name VARCHAR, updated_at TIMESTAMP);
{ACCOUNTS_DDL}
"""
USERS = 20


def make_warehouse(root: Path) -> Path:
    rows = {
        "users": [(f"u{i}", f"u{i}@example.com", f"User {i}", "2026-01-01") for i in range(USERS)],
        "accounts": [("a1", "Acme", "2026-01-01")],
    }
    return write_project(root, WAREHOUSE_DDL, rows, users=USERS_SQL, groups=GROUPS_SQL)


def make_spec(root: Path, url: str, users: dict[str, Any]) -> SyncSpec:
    user_spec = {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "email", "name": "name"}} | users
    return sync_spec(root, url, user_spec, state_db=root / "state.duckdb")


def run_sync(spec: SyncSpec) -> dg.ExecuteInProcessResult:
    # Exactly two attempts (the retry window is wide enough that a busy machine still makes
    # the second), so a request that cannot succeed is settled quickly and says "after 2 attempts".
    return harness.run_sync(spec, raise_on_error=False, max_attempts=2, max_retry_time_s=10, connect_timeout_s=2)


def synced(state_db: Path) -> int:
    return state_count(state_db, "records")


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    status = 200
    hits: ClassVar[list[str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        type(self).hits.append(f"{self.command} {self.path}")
        body = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@contextmanager
def html_server(status: int) -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering every request with an HTML page and `status`."""
    handler = type("Html", (_HtmlHandler,), {"status": status, "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
