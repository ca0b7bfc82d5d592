"""The sync folder's project: 100 users with plans, seats and memberships in five accounts."""

from dataclasses import dataclass, field
from typing import Any

from harness import ACCOUNTS_DDL, GROUPS_SQL, Harness, sync_spec

from userflow_assets.spec import SyncSpec

KEY = "uf_test_sync_key"

USERS_SQL = """
SELECT user_id, email, name, plan, seats, updated_at, memberships
FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP
"""
WAREHOUSE_DDL = f"""
CREATE TABLE users (
    user_id VARCHAR, email VARCHAR, name VARCHAR, plan VARCHAR, seats INTEGER,
    updated_at TIMESTAMP, memberships STRUCT(account_id VARCHAR, role VARCHAR, account_name VARCHAR)[]
);
{ACCOUNTS_DDL}
"""
QUERIES = {"users": USERS_SQL, "groups": GROUPS_SQL}


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


def account_rows() -> list[tuple[Any, ...]]:
    return [(f"a{i}", f"Account {i}", "2026-01-01") for i in range(5)]


@dataclass
class SyncHarness(Harness):
    spec_overrides: dict[str, Any] = field(default_factory=dict)

    def spec(self, **users: Any) -> SyncSpec:  # type: ignore[override]
        user_spec: dict[str, Any] = {
            "query": "users.sql",
            "id_column": "user_id",
            "mapping": {"email": "email", "name": "name", "plan": "plan", "seats": "seats"},
            "memberships": {"column": "memberships", "group_id_field": "account_id"},
            **users,
        }
        return sync_spec(self.root, self.url, user_spec, **self.spec_overrides)
