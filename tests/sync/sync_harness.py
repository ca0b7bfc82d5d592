"""The sync test harness: a small real warehouse, the emulator on a port, the sync run through Dagster."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx

from userflow_assets.client import UserflowResource
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec

KEY = "uf_test_sync_key"

USERS_SQL = """
SELECT user_id, email, name, plan, seats, updated_at, memberships
FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP
"""
GROUPS_SQL = "SELECT account_id, name, updated_at FROM accounts WHERE updated_at > $LAST_SYNC_TIMESTAMP"

WAREHOUSE_DDL = """
CREATE TABLE users (
    user_id VARCHAR, email VARCHAR, name VARCHAR, plan VARCHAR, seats INTEGER,
    updated_at TIMESTAMP, memberships STRUCT(account_id VARCHAR, role VARCHAR, account_name VARCHAR)[]
);
CREATE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP);
"""


def user_rows(n: int) -> list[tuple[Any, ...]]:
    return [
        (
            f"u{i:03d}",
            f"user{i}@example.com",
            f"User {i}",
            ["free", "pro"][i % 2],
            i,
            "2026-01-01 00:00:00",
            [{"account_id": f"a{i % 5}", "role": "member", "account_name": f"Account {i % 5}"}],
        )
        for i in range(n)
    ]


@dataclass
class Harness:
    root: Path
    url: str
    spec_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "state.duckdb"  # a folder the sync must create

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse)) as con:
            cursor = con.execute(statement, params or [])
            return cursor.fetchall() if cursor.description else []

    def state(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.state_db)) as con:
            return con.execute(statement, params or []).fetchall()

    def spec(self, **users: Any) -> SyncSpec:
        user_spec: dict[str, Any] = {
            "query": "users.sql",
            "id_column": "user_id",
            "mapping": {"email": "email", "name": "name", "plan": "plan", "seats": "seats"},
            "memberships": {"column": "memberships", "group_id_field": "account_id"},
            **users,
        }
        return SyncSpec.model_validate(
            {
                "warehouse": {"database": str(self.warehouse), "sql_dir": str(self.root / "sql")},
                "state_database": str(self.state_db),
                "userflow": {"base_url": self.url},
                "groups": {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}},
                "users": user_spec,
                **self.spec_overrides,
            }
        )

    def run(
        self,
        spec: SyncSpec | None = None,
        sink: dict[str, Any] | None = None,
        read: dict[str, Any] | None = None,
        raise_on_error: bool = True,
        attempts: int = 2,
    ) -> dg.ExecuteInProcessResult:
        """One sync through Dagster; `sink` and `read` are run config of the sink and warehouse assets."""
        defs = build_sync_defs(spec or self.spec())
        resources = dict(defs.resources or {})
        # Fast retries: a failing record is settled in well under a second.
        resources["userflow"] = UserflowResource(
            api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=self.url, max_attempts=attempts, max_retry_time_s=2
        )
        ops: dict[str, Any] = {}
        for name in ("userflow_users", "userflow_groups") if sink else ():
            ops[name] = {"config": sink}
        for name in ("warehouse_users", "warehouse_groups") if read else ():
            ops[name] = {"config": read}
        return dg.materialize(
            # What the sync job runs: the partitioned backfill has its own job and tests.
            [*(a for a in defs.assets or [] if not a.partitions_def), *(defs.asset_checks or [])],  # type: ignore
            resources=resources,
            run_config={"ops": ops} if ops else None,
            raise_on_error=raise_on_error,
        )

    def emulator(self, path: str) -> Any:
        return httpx.get(f"{self.url}/__emulator/{path}", timeout=30).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return httpx.post(f"{self.url}/__emulator/{path}", json=body, timeout=30).json()

    def requests_total(self) -> int:
        return int(self.emulator("requests")["total"])

    def users(self) -> dict[str, dict[str, Any]]:
        return {u["id"]: u for u in self.emulator("state")["users"]}

    def memberships(self) -> set[tuple[str, str]]:
        return {(m["user_id"], m["group_id"]) for m in self.emulator("state")["memberships"]}


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(asset)
    assert events, f"{asset} was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error with every cause, as the run's event log shows it."""
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)
