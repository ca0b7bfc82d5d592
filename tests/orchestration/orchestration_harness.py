"""A small real warehouse, its sync spec, and helpers shared by the orchestration tests."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from harness import emulator_get, emulator_post

from userflow_assets.spec import SyncSpec
from userflow_assets.warehouse.resources import WarehouseResource

KEY = "uf_test_orchestration_key"

USERS_SQL = """
-- users with their memberships; a trailing comment must not break the wrapping query
SELECT u.user_id, u.email, u.plan, u.signed_up_at, u.updated_at,
       (SELECT list(m.account_id ORDER BY m.account_id) FROM memberships AS m WHERE m.user_id = u.user_id)
           AS account_ids
FROM users AS u
WHERE u.updated_at > $LAST_SYNC_TIMESTAMP -- incremental
"""
GROUPS_SQL = "SELECT account_id, name, updated_at FROM accounts WHERE updated_at > $LAST_SYNC_TIMESTAMP"
EVENTS_SQL = "SELECT event_id, user_id, name FROM events"

WAREHOUSE_DDL = """
CREATE TABLE users (user_id VARCHAR, email VARCHAR, plan VARCHAR, signed_up_at TIMESTAMP, updated_at TIMESTAMP);
CREATE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP);
CREATE TABLE memberships (user_id VARCHAR, account_id VARCHAR, updated_at TIMESTAMP);
CREATE TABLE events (event_id VARCHAR, user_id VARCHAR, name VARCHAR);
"""

# Signups: 4 users in each month from 2025-01 to 2025-06 (24 users, u00..u23).
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
USERS_PER_MONTH = 4


def signup_of(index: int) -> str:
    return f"{MONTHS[index // USERS_PER_MONTH]}-{(index % USERS_PER_MONTH) * 7 + 1:02d} 12:00:00"


def user_ids_in(month: str) -> set[str]:
    return {f"u{i:02d}" for i in range(len(MONTHS) * USERS_PER_MONTH) if signup_of(i).startswith(month)}


ALL_USERS = {f"u{i:02d}" for i in range(len(MONTHS) * USERS_PER_MONTH)}


@dataclass
class Warehouse:
    root: Path

    @property
    def path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def sql_dir(self) -> Path:
        return self.root / "sql"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "sync_state.duckdb"

    def create(self) -> "Warehouse":
        self.sql_dir.mkdir(parents=True, exist_ok=True)
        (self.sql_dir / "users.sql").write_text(USERS_SQL)
        (self.sql_dir / "groups.sql").write_text(GROUPS_SQL)
        (self.sql_dir / "events.sql").write_text(EVENTS_SQL)
        with duckdb.connect(str(self.path)) as con:
            con.execute(WAREHOUSE_DDL)
            con.executemany(
                "INSERT INTO users VALUES (?, ?, ?, ?, '2025-07-01')",
                [(f"u{i:02d}", f"user{i}@example.com", "free", signup_of(i)) for i in range(len(ALL_USERS))],
            )
            con.executemany(
                "INSERT INTO accounts VALUES (?, ?, '2025-07-01')", [(f"a{i}", f"Account {i}") for i in range(3)]
            )
            con.executemany(
                "INSERT INTO memberships VALUES (?, ?, '2025-07-01')",
                [(f"u{i:02d}", f"a{i % 3}") for i in range(len(ALL_USERS))],
            )
            con.execute("INSERT INTO events VALUES ('e1', 'u00', 'Signed Up')")
        return self

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path)) as con:
            cursor = con.execute(statement, params or [])
            return cursor.fetchall() if cursor.description else []

    def state(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.state_db), read_only=True) as con:
            return con.execute(statement, params or []).fetchall()

    def resource(self) -> WarehouseResource:
        return WarehouseResource(database=str(self.path), sql_dir=str(self.sql_dir))

    def spec(self, base_url: str = "http://127.0.0.1:9", **sections: Any) -> SyncSpec:
        return SyncSpec.model_validate(
            {
                "warehouse": {"database": str(self.path), "sql_dir": str(self.sql_dir)},
                "state_database": str(self.state_db),
                "userflow": {"base_url": base_url},
                "groups": {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}},
                "users": {
                    "query": "users.sql",
                    "id_column": "user_id",
                    "mapping": {"email": "email", "plan": "plan", "signed_up_at": "signed_up_at"},
                    "memberships": {"column": "account_ids"},
                },
                **sections,
            }
        )


def touch_user(warehouse: Warehouse, user_id: str, plan: str) -> None:
    """A warehouse change as a product would make it: new value, new updated_at."""
    warehouse.sql(
        "UPDATE users SET plan = ?, updated_at = ? WHERE user_id = ?",
        [plan, datetime.now().replace(microsecond=0), user_id],
    )


@dataclass
class Emulator:
    url: str

    def reset(self) -> None:
        emulator_post(self.url, "reset")

    def users(self) -> dict[str, dict[str, Any]]:
        state = emulator_get(self.url, "state")
        return {u["id"]: u for u in state["users"]}

    def requests_total(self) -> int:
        return int(emulator_get(self.url, "requests", limit=0)["total"])
