"""The run half of the bad-input corpus: a small warehouse, the sync through Dagster, and the
targets a run can meet (the emulator, a wrong key, nothing listening, a server answering HTML)."""

import gc
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import duckdb

from userflow_assets.client import UserflowResource
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec

USERS_SQL = "SELECT user_id, email, name, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
GROUPS_SQL = "SELECT account_id, name, updated_at FROM accounts WHERE updated_at > $LAST_SYNC_TIMESTAMP"
USERS = 20


def make_warehouse(root: Path) -> Path:
    (root / "sql").mkdir(exist_ok=True)
    (root / "sql" / "users.sql").write_text(USERS_SQL)
    (root / "sql" / "groups.sql").write_text(GROUPS_SQL)
    path = root / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE users (user_id VARCHAR, email VARCHAR, name VARCHAR, updated_at TIMESTAMP)")
        con.execute("CREATE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP)")
        con.executemany(
            "INSERT INTO users VALUES (?, ?, ?, '2026-01-01')",
            [(f"u{i}", f"u{i}@example.com", f"User {i}") for i in range(USERS)],
        )
        con.execute("INSERT INTO accounts VALUES ('a1', 'Acme', '2026-01-01')")
    return path


def make_spec(root: Path, url: str, users: dict[str, Any]) -> SyncSpec:
    return SyncSpec.model_validate(
        {
            "warehouse": {"database": str(root / "warehouse.duckdb"), "sql_dir": str(root / "sql")},
            "state_database": str(root / "state.duckdb"),
            "userflow": {"base_url": url},
            "groups": {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}},
            "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "email", "name": "name"}}
            | users,
        }
    )


def run_sync(spec: SyncSpec, url: str) -> dg.ExecuteInProcessResult:
    defs = build_sync_defs(spec)
    resources = dict(defs.resources or {})
    # Exactly two attempts (the retry window is wide enough that a busy machine still makes
    # the second), so a request that cannot succeed is settled quickly and says "after 2 attempts".
    resources["userflow"] = UserflowResource(
        api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=url, max_attempts=2, max_retry_time_s=10, connect_timeout_s=2
    )
    return dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],  # type: ignore[list-item]
        resources=resources,
        raise_on_error=False,
        selection=sync_selection(),
    )


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every step failure's message with its causes, one text per failed step."""
    texts = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error, parts = event.step_failure_data.error, []
        while error is not None:
            parts.append(error.message)
            error = error.cause
        texts.append("\n".join(parts))
    return texts


def synced(state_db: Path) -> int:
    if not state_db.exists():
        return 0
    gc.collect()  # a failed step's traceback can still hold its state connection
    with duckdb.connect(str(state_db), read_only=True) as con:
        has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'sync' AND table_name = 'records'")
        if not has.fetchone()[0]:
            return 0
        return int(con.execute("SELECT count(*) FROM sync.records").fetchone()[0])




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


def sync_selection() -> dg.AssetSelection:
    """What the `userflow_sync` job runs: everything but the read side and the partitioned backfill."""
    return dg.AssetSelection.all() - dg.AssetSelection.groups("userflow_mirror", "backfill")
