"""The events folder's project: ten users in three accounts and a table of events, behind an
emulator whose key can be revoked mid-run."""

from dataclasses import dataclass
from typing import Any, ClassVar

from harness import ACCOUNTS_DDL, Harness, insert, sync_spec

from userflow_assets.emulator.runtime import Emulator
from userflow_assets.spec import SyncSpec

KEY = "uf_test_events_key"

USERS_SQL = "SELECT user_id, email, name, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
EVENTS_SQL = """
SELECT event_id, user_id, account_id, name, occurred_at, properties
FROM events WHERE occurred_at > $LAST_SYNC_TIMESTAMP
"""
WAREHOUSE_DDL = f"""
CREATE TABLE users (user_id VARCHAR, email VARCHAR, name VARCHAR, updated_at TIMESTAMP);
{ACCOUNTS_DDL}
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
class EventsHarness(Harness):
    revoker: KeyRevoker

    client: ClassVar[dict[str, Any]] = {
        "max_attempts": 2,
        "max_retry_time_s": 60,  # bounds a broken run only: two attempts, however slow the machine
        "max_concurrency": 4,
    }

    def add_events(self, rows: list[tuple[Any, ...]]) -> None:
        insert(self.warehouse, "events", rows)

    def spec(self, users: dict[str, Any] | None = None, **events: Any) -> SyncSpec:  # type: ignore[override]
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
        user_spec = {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "email", "name": "name"}}
        return sync_spec(self.root, self.url, user_spec | (users or {}), events=event_spec)

    def event_refs(self) -> list[str]:
        """The event_ref of every event Userflow holds, sorted (a duplicate shows twice)."""
        return sorted(e["attributes"]["event_ref"] for e in self.events())

    def event_posts(self) -> int:
        by_endpoint = self.emulator("requests")["by_endpoint"].get("POST /events", {})
        return sum(int(n) for n in by_endpoint.values())
