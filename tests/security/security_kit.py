"""The security folder's project: named users in one account, the state file next to the
warehouse, runs whose failures are returned (not raised), and a search for a secret."""

from pathlib import Path
from typing import Any

import dagster as dg
import harness
from harness import ACCOUNTS_DDL, GROUPS_SQL, sync_spec, write_project

from userflow_assets.spec import SyncSpec

USERS_SQL = "SELECT user_id, name, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
WAREHOUSE_DDL = f"CREATE TABLE users (user_id VARCHAR, name VARCHAR, updated_at TIMESTAMP); {ACCOUNTS_DDL}"


def make_warehouse(root: Path, user_ids: list[str], names: list[str] | None = None) -> None:
    names = names or [f"User {i}" for i in range(len(user_ids))]
    rows = {
        "users": [(user_id, name, "2026-01-01") for user_id, name in zip(user_ids, names, strict=True)],
        "accounts": [("a1", "Acme", "2026-01-01")],
    }
    write_project(root, WAREHOUSE_DDL, rows, users=USERS_SQL, groups=GROUPS_SQL)


def make_spec(root: Path, url: str, **users: Any) -> SyncSpec:
    user_spec = {"query": "users.sql", "id_column": "user_id", "mapping": {"name": "name"}} | users
    return sync_spec(root, url, user_spec, state_db=root / "state.duckdb")


def run_sync(spec: SyncSpec, **options: Any) -> dg.ExecuteInProcessResult:
    """`harness.run_sync` as these tests run it: a failed run is returned, and a failing request
    is given up within a second."""
    return harness.run_sync(spec, **({"raise_on_error": False, "max_retry_time_s": 1} | options))


def files_holding(root: Path, secret: bytes) -> list[str]:
    """Every file under `root` whose bytes contain `secret` (DuckDB and SQLite files included)."""
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes())
