"""The events' plan: which events this run sends, resends, or holds back, before any request.

Candidates are this read's event records plus every event still owed from earlier runs;
a key the state has as sent is never a candidate again. An event
whose user is not synced and was rejected or failed upstream waits: sending it would make
Userflow create that user empty. Once waiting, it keeps waiting until the user is confirmed,
because an incremental read stops listing the user among the rejected rows once its row
stops changing, while the user is still missing in Userflow.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from userflow_assets.sqltext import md_table
from userflow_assets.state.store import ConnectionFactory, SyncState
from userflow_assets.state.types import Event

PLAN_TABLE = "plan.events"
RECORDS_TABLE = "transform.event_records"
REJECTED_TABLE = "transform.event_rejected"
USER_REJECTED_TABLE = "transform.user_rejected"
ACTIONS = ("send", "retry", "resend", "waiting")
TO_SEND = ("send", "retry", "resend")



@dataclass(frozen=True)
class EventPlanSummary:
    counts: dict[str, int]  # action -> events
    already_sent: int  # records of this read whose key Userflow has (or may have, at most once)

    @property
    def to_send(self) -> int:
        return sum(self.counts[a] for a in TO_SEND)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    (n,) = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return n > 0


def _upstream_bad_users(con: duckdb.DuckDBPyConnection) -> str:
    """SQL listing user IDs rejected by the users transform or waiting in the users' failures."""
    failed = "SELECT id FROM state_failed_users"
    if table_exists(con, "transform", "user_rejected"):
        return f"SELECT id FROM {USER_REJECTED_TABLE} WHERE id IS NOT NULL UNION ALL {failed}"
    return failed


def build_plan(
    con: duckdb.DuckDBPyConnection,
    state: SyncState,
    at_least_once: bool,
    hold_for_users: bool,
    wait_for_unknown: bool = True,
) -> None:
    """Replace `plan.events`: one row per event to send or hold, in the order it goes out.

    With `wait_for_unknown`, an event of any user the sync has not written waits too (a filtered
    out or unknown user would otherwise be created empty in Userflow).
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS plan")
    state.expose_events(con, f"SELECT key, user_id FROM {RECORDS_TABLE}")
    bad_users = _upstream_bad_users(con) if hold_for_users else "SELECT NULL::VARCHAR AS id WHERE false"
    users_known = "SELECT id FROM state_synced_users"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {PLAN_TABLE} AS
        WITH candidates AS (
            SELECT key, name, user_id, group_id, time, attributes, payload_hash FROM {RECORDS_TABLE}
            UNION ALL
            SELECT key, name, user_id, group_id, time, attributes, payload_hash FROM state_pending_events
            WHERE key NOT IN (SELECT key FROM {RECORDS_TABLE})
        ), classified AS (
            SELECT c.*, p.status AS owed,
                {hold_for_users} AND c.user_id IS NOT NULL AND c.user_id NOT IN ({users_known}) AS unsynced_user,
                c.user_id IN ({bad_users}) OR coalesce(p.status = 'waiting', false) AS upstream_problem
            FROM candidates c LEFT JOIN state_pending_events p ON p.key = c.key
            WHERE c.key NOT IN (SELECT key FROM state_sent_events)
        )
        SELECT key, name, user_id, group_id, time, attributes, payload_hash,
            CASE WHEN held THEN 'waiting' WHEN owed = 'failed' THEN 'retry'
                 WHEN owed = 'ambiguous' THEN 'resend' ELSE 'send' END AS action,
            row_number() OVER (ORDER BY time NULLS LAST, key) AS seq,
            -- Why it waits: an upstream problem keeps it waiting until the user is synced; an
            -- unknown user only while the spec says to wait for unknown users.
            CASE WHEN held AND upstream_problem THEN 'waiting' WHEN held THEN 'waiting_unknown' END AS hold
        FROM (
            SELECT *, unsynced_user AND (upstream_problem OR {wait_for_unknown}) AS held FROM classified
        )
        -- At most once: an event that went unanswered is never sent again.
        WHERE {at_least_once} OR owed IS DISTINCT FROM 'ambiguous' OR held
        """
    )


def summarize(con: duckdb.DuckDBPyConnection) -> EventPlanSummary:
    """The plan's counts; `con` holds the state's views (`build_plan` made them)."""
    found = dict(con.execute(f"SELECT action, count(*) FROM {PLAN_TABLE} GROUP BY action").fetchall())
    (already,) = con.execute(
        f"SELECT count(*) FROM {RECORDS_TABLE} WHERE key IN (SELECT key FROM state_sent_events)"
    ).fetchone()
    return EventPlanSummary({a: int(found.get(a, 0)) for a in ACTIONS}, int(already))


def preview(con: duckdb.DuckDBPyConnection, limit: int = 10) -> str:
    rows = con.execute(
        f"SELECT action, key, name, user_id, group_id, time FROM {PLAN_TABLE} ORDER BY seq LIMIT ?", [limit]
    ).fetchall()
    return md_table(["action", "key", "name", "user_id", "group_id", "time"], rows, 60)


def waiting_events(con: duckdb.DuckDBPyConnection) -> list[tuple[Event, str]]:
    """Held events with the status they are kept under (`waiting` or `waiting_unknown`)."""
    rows = con.execute(
        f"SELECT key, name, user_id, group_id, time, attributes, payload_hash, hold FROM {PLAN_TABLE} "
        "WHERE action = 'waiting' ORDER BY seq"
    ).fetchall()
    return [(Event(*row[:7]), row[7]) for row in rows]


def planned_batches(con_factory: ConnectionFactory, batch_size: int) -> Iterator[list[tuple[str, Event]]]:
    """The events to send, `batch_size` at a time, each read with a short-lived connection."""
    after = 0
    while True:
        with con_factory() as con:
            rows = con.execute(
                f"SELECT seq, action, key, name, user_id, group_id, time, attributes, payload_hash "
                f"FROM {PLAN_TABLE} WHERE action IN ('send', 'retry', 'resend') AND seq > ? ORDER BY seq LIMIT ?",
                [after, batch_size],
            ).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield [(row[1], Event(*row[2:])) for row in rows]
