"""The events test harness: a small real warehouse with events, the emulator on a port, runs through Dagster."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx

from userflow_assets.client import UserflowResource
from userflow_assets.emulator.runtime import Emulator
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec

KEY = "uf_test_events_key"

USERS_SQL = "SELECT user_id, email, name, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
GROUPS_SQL = "SELECT account_id, name, updated_at FROM accounts WHERE updated_at > $LAST_SYNC_TIMESTAMP"
EVENTS_SQL = """
SELECT event_id, user_id, account_id, name, occurred_at, properties
FROM events WHERE occurred_at > $LAST_SYNC_TIMESTAMP
"""
WAREHOUSE_DDL = """
CREATE TABLE users (user_id VARCHAR, email VARCHAR, name VARCHAR, updated_at TIMESTAMP);
CREATE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP);
CREATE TABLE events (
    event_id VARCHAR, user_id VARCHAR, account_id VARCHAR, name VARCHAR, occurred_at TIMESTAMP, properties VARCHAR
);
"""


class KeyRevoker:
    """ASGI wrapper around the emulator: once `revoke_after` POST /events have arrived, the key
    the sync uses stops working, as when someone rotates it mid-run."""

    def __init__(self, app: Any, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator
        self.revoke_after: int | None = None
        self.seen = 0

    def reset(self) -> None:
        self.revoke_after, self.seen = None, 0
        self.emulator.update_config({"api_key": KEY})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/events":
            self.seen += 1
            if self.revoke_after is not None and self.seen > self.revoke_after:
                self.emulator.update_config({"api_key": "uf_rotated_key"})
        await self.app(scope, receive, send)




def event_rows(n: int, users: int = 10, start: int = 0) -> list[tuple[Any, ...]]:
    """`n` events of users u000..u{users-1}, a minute apart, all in the past."""
    return [
        (
            f"evt_{i:04d}",
            f"u{i % users:03d}",
            f"a{i % 3}",
            ["Signed Up", "Project Created", "Feature_Activated", "feature activated"][i % 4],
            f"2026-01-01 {i // 60 % 24:02d}:{i % 60:02d}:00",
            f'{{"plan": "{["free", "pro"][i % 2]}", "n": {i}}}',
        )
        for i in range(start, start + n)
    ]


@dataclass
class EventsHarness:
    root: Path
    url: str
    revoker: KeyRevoker

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "state.duckdb"

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse)) as con:
            cursor = con.execute(statement, params or [])
            return cursor.fetchall() if cursor.description else []

    def add_events(self, rows: list[tuple[Any, ...]]) -> None:
        with duckdb.connect(str(self.warehouse)) as con:
            con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)

    def state(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.state_db)) as con:
            return con.execute(statement, params or []).fetchall()

    def spec(self, users: dict[str, Any] | None = None, **events: Any) -> SyncSpec:
        event_spec: dict[str, Any] = {
            "key_column": "event_id",
            "name": "name",
            "user_id": "user_id",
            "group_id": "account_id",
            "time": "occurred_at",
            # event_ref identifies each event in the emulator, to count copies of it.
            "attributes": {"plan": "json_extract_string(properties, '$.plan')", "event_ref": "event_id"},
            **events,
        }
        return SyncSpec.model_validate(
            {
                "warehouse": {"database": str(self.warehouse), "sql_dir": str(self.root / "sql")},
                "state_database": str(self.state_db),
                "userflow": {"base_url": self.url},
                "groups": {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}},
                "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "email", "name": "name"}}
                | (users or {}),
                "events": event_spec,
            }
        )

    def run(
        self,
        spec: SyncSpec | None = None,
        events_config: dict[str, Any] | None = None,
        read: dict[str, Any] | None = None,
        raise_on_error: bool = True,
        max_concurrency: int = 4,
        selection: list[str] | None = None,
    ) -> dg.ExecuteInProcessResult:
        defs = build_sync_defs(spec or self.spec())
        resources = dict(defs.resources or {})
        # Fast retries: a failing request is settled in well under a second.
        resources["userflow"] = UserflowResource(
            api_key=dg.EnvVar("USERFLOW_API_KEY"),
            base_url=self.url,
            max_attempts=2,
            max_retry_time_s=60,  # bounds a broken run only: two attempts, however slow the machine
            max_concurrency=max_concurrency,
        )
        ops: dict[str, Any] = {}
        if events_config:
            ops["userflow_events"] = {"config": events_config}
        for name in ("warehouse_users", "warehouse_groups", "warehouse_events") if read else ():
            ops[name] = {"config": read}
        return dg.materialize(
            # What the sync job runs: the partitioned backfill has its own job and tests.
            [*(a for a in defs.assets or [] if not a.partitions_def), *(defs.asset_checks or [])],  # type: ignore
            resources=resources,
            run_config={"ops": ops} if ops else None,
            raise_on_error=raise_on_error,
            selection=selection,
        )

    def emulator(self, path: str) -> Any:
        return httpx.get(f"{self.url}/__emulator/{path}", timeout=30).json()

    def faults(self, kinds: list[str], path_prefix: str, method: str = "POST") -> None:
        body = {"next": kinds, "path_prefix": path_prefix, "method": method}
        httpx.post(f"{self.url}/__emulator/faults", json=body, timeout=30).raise_for_status()

    def events(self) -> list[dict[str, Any]]:
        return list(self.emulator("state")["events"])

    def event_refs(self) -> list[str]:
        """The event_ref of every event Userflow holds, sorted (a duplicate shows twice)."""
        return sorted(e["attributes"]["event_ref"] for e in self.events())

    def event_posts(self) -> int:
        by_endpoint = self.emulator("requests")["by_endpoint"].get("POST /events", {})
        return sum(int(n) for n in by_endpoint.values())


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(asset)
    assert events, f"{asset} was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}
