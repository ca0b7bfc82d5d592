"""The mirror test harness: an emulator on a port whose store the test can reach, the mirror
(and, for drift, the sync) run through dg.materialize, and the warehouse read back."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from harness import emulator_get, local_http, query, sync_spec

from userflow_assets.client import UserflowResource
from userflow_assets.emulator.runtime import Emulator
from userflow_assets.emulator.store import format_time
from userflow_assets.mirror import build_mirror_defs
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.state.resources import StateDatabase

KEY = "uf_test_mirror_key"
HEADERS = {"Authorization": f"Bearer {KEY}", "Userflow-Version": "2020-01-03"}

USERS_SQL = "SELECT user_id, email, name, plan, seats, account_id FROM users"
GROUPS_SQL = "SELECT account_id, name FROM accounts"
WAREHOUSE_DDL = """
CREATE TABLE users (user_id VARCHAR, email VARCHAR, name VARCHAR, plan VARCHAR, seats INTEGER, account_id VARCHAR);
CREATE TABLE accounts (account_id VARCHAR, name VARCHAR);
"""




def add_sessions(emulator: Emulator, count: int, start: datetime, user_prefix: str = "bulk-user") -> list[str]:
    """`count` unfinished welcome-survey sessions, one minute apart from `start` (content
    sessions cannot be created through the API, so they go straight into the store)."""
    store = emulator.store
    ids = []
    for n in range(count):
        session_id = f"cs-x{len(store.content_sessions) + 1:05d}"
        created = format_time(start + timedelta(minutes=n))
        store.content_sessions[session_id] = {
            "object": "content_session", "id": session_id, "content_id": "flow-welcome-survey",
            "version_id": "flow-welcome-survey-v1", "user_id": f"{user_prefix}-{n}", "group_id": None,
            "is_preview": False, "completed": False, "completed_at": None, "progress": 0,
            "created_at": created, "last_activity_at": created, "task_completions": [], "_answers": [],
        }
        ids.append(session_id)
    return ids


@dataclass
class MirrorHarness:
    root: Path
    url: str
    emulator: Emulator
    state_url: str | None = None  # the sync state in Postgres instead of `state_db`

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "state.duckdb"

    @property
    def work_db(self) -> Path:
        return self.root / "work" / "work.duckdb"

    def resources(self) -> dict[str, Any]:
        return {
            "userflow": UserflowResource(api_key=KEY, base_url=self.url, max_attempts=2, max_retry_time_s=2),
            "sync_db": StateDatabase(database=str(self.work_db), state_url=self.state_url)
            if self.state_url
            else StateDatabase(database=str(self.state_db)),
        }

    def mirror(
        self,
        assets: Sequence[str] | None = None,
        sessions: dict[str, Any] | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """Materialize the mirror (or only `assets`) with its checks; `sessions` is the sessions asset's config."""
        defs = build_mirror_defs(str(self.warehouse))
        selection = dg.AssetSelection.assets(*assets) if assets else dg.AssetSelection.all()
        ops = {"mirror_content_sessions": {"config": sessions}} if sessions else {}
        return dg.materialize(
            [*(a for a in defs.assets or [] if not a.partitions_def), *(defs.asset_checks or [])],  # type: ignore
            resources={**(defs.resources or {}), **self.resources()},
            selection=selection,
            run_config={"ops": ops} if ops else None,
            raise_on_error=raise_on_error,
        )

    def sync(self) -> dg.ExecuteInProcessResult:
        """The sync (groups and users) from the warehouse tables into the emulator."""
        users = {
            "query": "users.sql",
            "id_column": "user_id",
            "mapping": {"email": "email", "name": "name", "plan": "plan", "seats": "seats"},
            "memberships": {"column": "account_id"},
        }
        if self.state_url:
            spec = sync_spec(self.root, self.url, users, self.state_url, work_database=str(self.work_db))  # type: ignore[arg-type]
        else:
            spec = sync_spec(self.root, self.url, users, self.state_db)
        defs = build_sync_defs(spec)
        return dg.materialize(
            [*(a for a in defs.assets or [] if not a.partitions_def), *(defs.asset_checks or [])],  # type: ignore
            resources={**(defs.resources or {}), **self.resources()},
        )

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return query(self.warehouse, statement, params)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = local_http().request(method, f"{self.url}{path}", headers=HEADERS, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def requests(self, endpoint: str) -> int:
        """Successful requests to `endpoint` (e.g. `GET /users`) since the last reset."""
        by_endpoint = emulator_get(self.url, "requests")["by_endpoint"]
        return int(by_endpoint.get(endpoint, {}).get("200", 0))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
