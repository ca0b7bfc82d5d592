"""Helpers of the security tests: a small warehouse, the sync in Dagster on a persistent
instance (so its event log is a file that can be searched), and a search for a secret."""

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from userflow_assets.client import UserflowResource
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec

USERS_SQL = "SELECT user_id, name, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
GROUPS_SQL = "SELECT account_id, name, updated_at FROM accounts WHERE updated_at > $LAST_SYNC_TIMESTAMP"


def make_warehouse(root: Path, user_ids: list[str], names: list[str] | None = None) -> None:
    (root / "sql").mkdir(exist_ok=True)
    (root / "sql" / "users.sql").write_text(USERS_SQL)
    (root / "sql" / "groups.sql").write_text(GROUPS_SQL)
    names = names or [f"User {i}" for i in range(len(user_ids))]
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("CREATE OR REPLACE TABLE users (user_id VARCHAR, name VARCHAR, updated_at TIMESTAMP)")
        con.execute("CREATE OR REPLACE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP)")
        con.executemany("INSERT INTO users VALUES (?, ?, '2026-01-01')", list(zip(user_ids, names, strict=True)))
        con.execute("INSERT INTO accounts VALUES ('a1', 'Acme', '2026-01-01')")


def make_spec(root: Path, url: str, **users: Any) -> SyncSpec:
    return SyncSpec.model_validate(
        {
            "warehouse": {"database": str(root / "warehouse.duckdb"), "sql_dir": str(root / "sql")},
            "state_database": str(root / "state.duckdb"),
            "userflow": {"base_url": url},
            "groups": {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}},
            "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"name": "name"}} | users,
        }
    )


def run_sync(
    spec: SyncSpec, url: str, instance: dg.DagsterInstance | None = None, sink: dict[str, Any] | None = None,
    read: dict[str, Any] | None = None, **client: Any,
) -> dg.ExecuteInProcessResult:
    defs = build_sync_defs(spec)
    resources = dict(defs.resources or {})
    options: dict[str, Any] = {"max_attempts": 2, "max_retry_time_s": 1} | client
    resources["userflow"] = UserflowResource(api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=url, **options)
    ops: dict[str, Any] = {}
    for name in ("userflow_users", "userflow_groups") if sink else ():
        ops[name] = {"config": sink}
    for name in ("warehouse_users", "warehouse_groups") if read else ():
        ops[name] = {"config": read}
    return dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],  # type: ignore[list-item]
        resources=resources,
        instance=instance,
        run_config={"ops": ops} if ops else None,
        raise_on_error=False,
        selection=sync_selection(),
    )


def files_holding(root: Path, secret: bytes) -> list[str]:
    """Every file under `root` whose bytes contain `secret` (DuckDB and SQLite files included)."""
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes())


def sync_selection() -> dg.AssetSelection:
    """What the `userflow_sync` job runs: everything but the read side and the partitioned backfill."""
    return dg.AssetSelection.all() - dg.AssetSelection.groups("userflow_mirror", "backfill")
