"""The events' own sync state: which keys Userflow has, and which events are still owed.

`sync.sent_events` holds every key that must never be sent again: confirmed by Userflow
(`sent`), or, under at-most-once delivery, sent without an answer (`possibly_lost`).
`sync.pending_events` holds every event still owed, with its full payload, so it is sent by
a later run even when its warehouse row is never read again: `failed` (cleanly not
applied), `ambiguous` (no answer; at-least-once resends it), `waiting` (its user was
rejected or failed upstream) and `waiting_unknown` (its user was never written by the sync,
held while the spec's `unknown_users` is `wait`). Each batch's outcome is one transaction.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from userflow_assets import failpoints
from userflow_assets.state.store import transaction, utcnow

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS sync;
CREATE TABLE IF NOT EXISTS sync.sent_events (
    key VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    userflow_id VARCHAR,
    payload_hash VARCHAR NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS sync.pending_events (
    key VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    user_id VARCHAR,
    group_id VARCHAR,
    time VARCHAR,
    attributes VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    http_status INTEGER,
    code VARCHAR,
    message VARCHAR,
    attempts INTEGER NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);
"""

EVENT_COLUMNS = ["key", "name", "user_id", "group_id", "time", "attributes", "payload_hash"]
PENDING_STATUSES = ("failed", "ambiguous", "waiting", "waiting_unknown")


@dataclass(frozen=True)
class Event:
    """One event as the transform produced it (what is sent, and what is remembered)."""

    key: str
    name: str
    user_id: str | None
    group_id: str | None
    time: str | None
    attributes: str
    payload_hash: str


@dataclass(frozen=True)
class Sent:
    event: Event
    status: str  # sent | possibly_lost
    userflow_id: str | None


@dataclass(frozen=True)
class Pending:
    event: Event
    status: str  # failed | ambiguous | waiting | waiting_unknown
    http_status: int | None = None
    code: str | None = None
    message: str | None = None


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


def _events_frame(events: Sequence[Event]) -> pd.DataFrame:
    return pd.DataFrame([[getattr(e, c) for c in EVENT_COLUMNS] for e in events], columns=EVENT_COLUMNS, dtype=object)


def checkpoint(con: duckdb.DuckDBPyConnection, run_id: str, sent: Sequence[Sent], pending: Sequence[Pending]) -> None:
    """One batch's outcome in one transaction: settled keys leave `pending_events`.

    A waiting event keeps its attempt count; a failed or ambiguous one adds an attempt.
    """
    now = utcnow()
    done = _events_frame([s.event for s in sent])
    done["status"] = [s.status for s in sent]
    done["userflow_id"] = [s.userflow_id for s in sent]
    owed = _events_frame([p.event for p in pending])
    owed["status"] = pd.Series([p.status for p in pending], dtype=object)
    owed["http_status"] = pd.Series([p.http_status for p in pending], dtype="Int64")
    owed["code"] = [p.code for p in pending]
    owed["message"] = [p.message for p in pending]
    con.register("_sent", done)
    con.register("_owed", owed)
    try:
        with transaction(con):
            con.execute(
                "INSERT OR REPLACE INTO sync.sent_events "
                "SELECT key, status, name, userflow_id, payload_hash, ?, ? FROM _sent",
                [now, run_id],
            )
            con.execute("DELETE FROM sync.pending_events WHERE key IN (SELECT key FROM _sent)")
            con.execute(
                """
                INSERT INTO sync.pending_events
                SELECT key, status, name, user_id, group_id, time, attributes, payload_hash,
                       http_status, code, message, CASE WHEN status LIKE 'waiting%' THEN 0 ELSE 1 END, ?, ?, ?
                FROM _owed
                ON CONFLICT (key) DO UPDATE SET
                    status = excluded.status, name = excluded.name, user_id = excluded.user_id,
                    group_id = excluded.group_id, time = excluded.time, attributes = excluded.attributes,
                    payload_hash = excluded.payload_hash, http_status = excluded.http_status,
                    code = excluded.code, message = excluded.message,
                    attempts = sync.pending_events.attempts + excluded.attempts,
                    last_at = excluded.last_at, run_id = excluded.run_id
                """,
                [now, now, run_id],
            )
            if sent:
                failpoints.reach("events_state_write")  # confirmed events written, nothing committed
    finally:
        con.unregister("_sent")
        con.unregister("_owed")


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Keys per status across both tables, every status present (0 when none)."""
    rows = con.execute(
        "SELECT status, count(*) FROM sync.sent_events GROUP BY status "
        "UNION ALL SELECT status, count(*) FROM sync.pending_events GROUP BY status"
    ).fetchall()
    found = {str(status): int(n) for status, n in rows}
    return {status: found.get(status, 0) for status in ("sent", "possibly_lost", *PENDING_STATUSES)}
