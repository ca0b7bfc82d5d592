"""The sync state: what Userflow has confirmed, what failed, and where each read starts.

This module is the only code that names a state table. Every other stage goes through a
`SyncState`: typed operations for checkpoints, cursors, runs, learned limits, events and
definitions, and `expose_*` to bring what the planner needs into the work database as
views (`state_records`, ...), so the diff runs in DuckDB and nothing is looked up one at a
time. `DuckDBState` keeps the state in schema `sync` of the code location's DuckDB file,
beside the work tables (`staging`, `transform`, `plan`).

Every write is one transaction: a process killed mid-write leaves the previous state.
"""

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd
import pyarrow as pa

from userflow_assets import failpoints
from userflow_assets.sqltext import attach_read_only, literal, transaction
from userflow_assets.state.types import (
    PENDING_STATUSES,
    Failure,
    LearnedLimits,
    Link,
    LogEntry,
    Pending,
    Record,
    Sent,
    utcnow,
)

ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS sync;
CREATE TABLE IF NOT EXISTS sync.records (
    object_type VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    attributes VARCHAR NOT NULL,
    memberships VARCHAR,
    primary_id VARCHAR,
    fallback_id VARCHAR,
    synced_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (object_type, id)
);
CREATE TABLE IF NOT EXISTS sync.failures (
    object_type VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    attributes VARCHAR NOT NULL,
    memberships VARCHAR,
    primary_id VARCHAR,
    fallback_id VARCHAR,
    status INTEGER,
    code VARCHAR,
    message VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed_at TIMESTAMP NOT NULL,
    last_failed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (object_type, id)
);
CREATE TABLE IF NOT EXISTS sync.links (
    object_type VARCHAR NOT NULL,
    fallback_id VARCHAR NOT NULL,
    primary_id VARCHAR NOT NULL,
    decision VARCHAR NOT NULL,
    linked_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (object_type, fallback_id)
);
CREATE TABLE IF NOT EXISTS sync.cursors (
    object_type VARCHAR PRIMARY KEY,
    read_started_at TIMESTAMP NOT NULL,
    spec_hash VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS sync.reads (
    object_type VARCHAR PRIMARY KEY,
    read_started_at TIMESTAMP NOT NULL,
    since TIMESTAMP,
    spec_hash VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS sync.runs (
    run_id VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status VARCHAR NOT NULL,
    counts VARCHAR,
    PRIMARY KEY (run_id, object_type)
);
CREATE TABLE IF NOT EXISTS sync.rate_limits (
    target VARCHAR PRIMARY KEY,  -- base URL and the key's fingerprint, never the key
    ceiling_per_minute DOUBLE,
    quota_per_window INTEGER,
    noise_share DOUBLE NOT NULL,
    saved_at TIMESTAMP NOT NULL
);
-- Every event key that must never be sent again: confirmed (`sent`), or sent without an
-- answer under at-most-once delivery (`possibly_lost`).
CREATE TABLE IF NOT EXISTS sync.sent_events (
    key VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    userflow_id VARCHAR,
    payload_hash VARCHAR NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);
-- Every event still owed, with its payload, so a later run sends it even when its warehouse
-- row is never read again: failed, ambiguous, waiting (its user rejected or failed upstream),
-- waiting_unknown (its user never written, while the spec says to wait).
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
-- Userflow's event and attribute definitions as last read (the event-names check).
CREATE TABLE IF NOT EXISTS sync.userflow_definitions (kind VARCHAR, name VARCHAR);
-- Every request's outcome (the sync log), pruned by the runs after its retention.
CREATE TABLE IF NOT EXISTS sync.log (
    run_id VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    record_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    http_status INTEGER,
    error_code VARCHAR,
    error_message VARCHAR,
    attempts INTEGER,
    logged_at TIMESTAMP NOT NULL
);
-- The runs whose log rows of an object type a write-back put in the warehouse: never filled in again.
CREATE TABLE IF NOT EXISTS sync.log_written (
    run_id VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    written_at TIMESTAMP NOT NULL
);
"""

# Every state table, in the order a copy writes them (`python -m userflow_assets.state copy`).
STATE_TABLES = (
    "records", "failures", "links", "cursors", "reads", "runs", "rate_limits",
    "sent_events", "pending_events", "userflow_definitions", "log", "log_written",
)
RECORD_COLUMNS = ["id", "payload_hash", "attributes", "memberships", "primary_id", "fallback_id"]
# What the diff needs of every confirmed record; payloads are fetched for the records sent only.
RECORD_KEY_COLUMNS = ["id", "payload_hash", "primary_id", "fallback_id"]
LOG_COLUMNS = [
    "run_id", "object_type", "record_id", "action", "outcome",
    "http_status", "error_code", "error_message", "attempts", "logged_at",
]
# The latest request outcomes first: what the sink shows, and the SQL it offers for the rest.
LOG_SQL = f"SELECT {', '.join(LOG_COLUMNS)} FROM sync.log ORDER BY logged_at DESC, record_id"
# The runs with log rows of one object type that no write-back has put in the warehouse, and
# the rows of some runs (the run IDs in a table `_runs`), oldest first: what `log_writeback`
# fills in and copies to the warehouse.
UNWRITTEN_LOG_RUNS_SQL = (
    "SELECT DISTINCT run_id FROM sync.log WHERE object_type = $1 "
    "AND run_id NOT IN (SELECT run_id FROM sync.log_written WHERE object_type = $1)"
)
RUNS_LOG_SQL = (
    f"SELECT {', '.join(LOG_COLUMNS)} FROM sync.log "
    "WHERE object_type = $1 AND run_id IN (SELECT run_id FROM _runs) ORDER BY logged_at, record_id"
)
# Marks the runs in `_runs` written back for object type $1, at $2 (each run once).
MARK_LOG_WRITTEN_SQL = (
    "INSERT INTO sync.log_written SELECT run_id, CAST($1 AS VARCHAR), CAST($2 AS TIMESTAMP) FROM _runs "
    "WHERE run_id NOT IN (SELECT run_id FROM sync.log_written WHERE object_type = $1)"
)
# Pruned with the log's cutoff: a mark is made after its run's rows were logged, so it goes after them.
PRUNE_LOG_WRITTEN_SQL = "DELETE FROM sync.log_written WHERE written_at < $1"
EVENT_COLUMNS = ["key", "name", "user_id", "group_id", "time", "attributes", "payload_hash"]


class SyncState(Protocol):
    """The state boundary: every operation a stage may ask of the durable sync state."""

    def ensure_schema(self) -> list[str]: ...
    def exclusive(self, object_type: str, holder: str) -> AbstractContextManager[None]: ...
    def cursor(self, object_type: str, spec_hash: str) -> datetime | None: ...
    def record_read(
        self, object_type: str, read_started_at: datetime, since: datetime | None, spec_hash: str, run_id: str
    ) -> None: ...
    def advance_cursor(self, object_type: str, run_id: str) -> datetime | None: ...
    def last_read_was_full(self, object_type: str) -> bool: ...
    def start_run(self, run_id: str, object_type: str) -> None: ...
    def finish_run(self, run_id: str, object_type: str, status: str, counts: str) -> None: ...
    def checkpoint(
        self,
        object_type: str,
        run_id: str,
        confirmed: Sequence[Record],
        failed: Sequence[Failure],
        forget: Sequence[str] = (),
        links: Sequence[Link] = (),
        log: Sequence[LogEntry] = (),
    ) -> None: ...
    def record_counts(self, object_type: str) -> tuple[int, int]: ...
    def written_sample(self, object_type: str, run_id: str, share: int, most: int) -> list[tuple[str, str]]: ...
    def failures(self, object_type: str, most: int) -> list[tuple[object, ...]]: ...
    def failures_sql(self, object_type: str) -> str: ...
    def expose_records(self, con: duckdb.DuckDBPyConnection, object_type: str, ids: str | None = None) -> None: ...
    def expose_payloads(self, con: duckdb.DuckDBPyConnection, object_type: str, ids: str) -> None: ...
    def expose_events(self, con: duckdb.DuckDBPyConnection, events: str | None = None) -> None: ...
    def sent_event_names(self) -> list[str]: ...
    def remembered_limits(self, target: str) -> LearnedLimits | None: ...
    def remember_limits(self, target: str, limits: LearnedLimits) -> None: ...
    def checkpoint_events(
        self, run_id: str, sent: Sequence[Sent], pending: Sequence[Pending], log: Sequence[LogEntry] = ()
    ) -> None: ...
    def event_counts(self) -> dict[str, int]: ...
    def definitions(self) -> list[tuple[str, str]]: ...
    def save_definitions(self, rows: Sequence[tuple[str, str]]) -> None: ...
    def prune_log(self, older_than: datetime) -> int: ...
    def log_rows(self, most: int) -> list[tuple[object, ...]]: ...
    def unwritten_log_runs(self, object_type: str) -> set[str]: ...
    def mark_log_written(self, run_ids: Collection[str], object_type: str) -> None: ...
    def runs_log(self, run_ids: Collection[str], object_type: str) -> pa.Table: ...


def _frame(items: Sequence[object], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([[getattr(i, c) for c in columns] for i in items], columns=columns, dtype=object)


class DuckDBState:
    """The sync state in schema `sync` of a DuckDB file; each call opens a short-lived
    connection from `connect`, so the file is not held open while requests are in flight."""

    def __init__(self, connect: ConnectionFactory) -> None:
        self._connect = connect

    def ensure_schema(self) -> list[str]:
        with self._connect() as con:
            con.execute(SCHEMA)
        return []

    @contextmanager
    def exclusive(self, object_type: str, holder: str) -> Iterator[None]:
        """Nothing to take: a DuckDB file lives on one machine, where the pool orders the runs."""
        yield

    # -- reads and cursors -------------------------------------------------------------------

    def cursor(self, object_type: str, spec_hash: str) -> datetime | None:
        """Where the next incremental read starts; none (read everything) when the spec or query
        changed since, because every record may then map differently."""
        with self._connect() as con:
            row = con.execute(
                "SELECT read_started_at, spec_hash FROM sync.cursors WHERE object_type = ?", [object_type]
            ).fetchone()
        return row[0] if row and row[1] == spec_hash else None

    def record_read(
        self, object_type: str, read_started_at: datetime, since: datetime | None, spec_hash: str, run_id: str
    ) -> None:
        """Remember when the staged rows were read, and under which spec; the cursor moves there
        once they are all settled."""
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO sync.reads VALUES (?, ?, ?, ?, ?)",
                [object_type, read_started_at, since, spec_hash, run_id],
            )

    def advance_cursor(self, object_type: str, run_id: str) -> datetime | None:
        """Move the cursor to the start of the staged read: called only when every staged row
        was confirmed, recorded as failed or rejected."""
        with self._connect() as con:
            row = con.execute(
                "SELECT read_started_at, spec_hash FROM sync.reads WHERE object_type = ?", [object_type]
            ).fetchone()
            if row is None:
                return None
            con.execute("INSERT OR REPLACE INTO sync.cursors VALUES (?, ?, ?, ?)", [object_type, *row, run_id])
        return row[0]

    def last_read_was_full(self, object_type: str) -> bool:
        """Whether the last read of `object_type` read every row (only such a read shows deletes)."""
        with self._connect() as con:
            row = con.execute("SELECT since IS NULL FROM sync.reads WHERE object_type = ?", [object_type]).fetchone()
        return bool(row and row[0])

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, run_id: str, object_type: str) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO sync.runs VALUES (?, ?, ?, NULL, 'started', NULL)",
                [run_id, object_type, utcnow()],
            )

    def finish_run(self, run_id: str, object_type: str, status: str, counts: str) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE sync.runs SET finished_at = ?, status = ?, counts = ? WHERE run_id = ? AND object_type = ?",
                [utcnow(), status, counts, run_id, object_type],
            )

    # -- records -----------------------------------------------------------------------------

    def checkpoint(
        self,
        object_type: str,
        run_id: str,
        confirmed: Sequence[Record],
        failed: Sequence[Failure],
        forget: Sequence[str] = (),
        links: Sequence[Link] = (),
        log: Sequence[LogEntry] = (),
    ) -> None:
        """Record one batch's outcome, and its requests' log rows, in one transaction.

        `confirmed` are records Userflow answered 2xx for, with exactly the payload sent;
        `failed` are kept with their error and attempt count so the next run retries them;
        `forget` are IDs deleted in Userflow (e.g. a fallback-ID user after migration);
        `links` are fallback IDs now known under their primary ID.
        """
        now = utcnow()
        bad = _frame([f.record for f in failed], RECORD_COLUMNS)
        bad["status"] = pd.Series([f.status for f in failed], dtype="Int64")
        bad["code"] = [f.code for f in failed]
        bad["message"] = [f.message for f in failed]
        frames = {
            "_confirmed": _frame(confirmed, RECORD_COLUMNS),
            "_failed": bad,
            "_forget": pd.DataFrame({"id": list(forget)}, dtype=object),
            "_links": _frame(links, ["fallback_id", "primary_id", "decision"]),
            "_log": _frame(log, LOG_COLUMNS),
        }
        with self._connect() as con, _registered(con, frames), transaction(con):
            con.execute(
                """
                INSERT OR REPLACE INTO sync.records
                SELECT ?, id, payload_hash, attributes, memberships, primary_id, fallback_id, ?, ?
                FROM _confirmed
                """,
                [object_type, now, run_id],
            )
            con.execute(
                "DELETE FROM sync.failures WHERE object_type = ? AND id IN "
                "(SELECT id FROM _confirmed UNION ALL SELECT id FROM _forget)",
                [object_type],
            )
            con.execute(
                """
                INSERT INTO sync.failures
                SELECT ?, f.id, f.payload_hash, f.attributes, f.memberships, f.primary_id, f.fallback_id,
                       f.status, f.code, f.message, 1, ?, ?, ?
                FROM _failed AS f
                ON CONFLICT (object_type, id) DO UPDATE SET
                    payload_hash = excluded.payload_hash, attributes = excluded.attributes,
                    memberships = excluded.memberships, primary_id = excluded.primary_id,
                    fallback_id = excluded.fallback_id, status = excluded.status, code = excluded.code,
                    message = excluded.message, attempts = sync.failures.attempts + 1,
                    last_failed_at = excluded.last_failed_at, run_id = excluded.run_id
                """,
                [object_type, now, now, run_id],
            )
            con.execute(
                "DELETE FROM sync.records WHERE object_type = ? AND id IN (SELECT id FROM _forget)",
                [object_type],
            )
            con.execute(
                "INSERT OR REPLACE INTO sync.links SELECT ?, fallback_id, primary_id, decision, ?, ? FROM _links",
                [object_type, now, run_id],
            )
            con.execute("INSERT INTO sync.log SELECT * FROM _log")
            failpoints.reach("state_write")  # everything written, nothing committed

    def record_counts(self, object_type: str) -> tuple[int, int]:
        """(synced, failed) records of `object_type`."""
        with self._connect() as con:
            synced, failed = con.execute(
                "SELECT (SELECT count(*) FROM sync.records WHERE object_type = $t), "
                "(SELECT count(*) FROM sync.failures WHERE object_type = $t)",
                {"t": object_type},
            ).fetchone()
        return int(synced), int(failed)

    def written_sample(self, object_type: str, run_id: str, share: int, most: int) -> list[tuple[str, str]]:
        """(id, attributes) of one in `share` records this run confirmed (at least one, at most
        `most`), the same ones on every call."""
        with self._connect() as con:
            return con.execute(
                "SELECT id, attributes FROM sync.records WHERE object_type = $type AND run_id = $run "
                "ORDER BY hash(id) LIMIT least($max, ceil((SELECT count(*) FROM sync.records "
                "WHERE object_type = $type AND run_id = $run) / $share))",
                {"type": object_type, "run": run_id, "max": most, "share": share},
            ).fetchall()

    def failures(self, object_type: str, most: int) -> list[tuple[object, ...]]:
        """(id, status, code, message, attempts, last_failed_at) of the records waiting to be
        retried, most recent first, at most `most`."""
        with self._connect() as con:
            return con.execute(f"{self.failures_sql(object_type)} LIMIT ?", [most]).fetchall()

    def failures_sql(self, object_type: str) -> str:
        """The SQL, runnable on the state, that lists every record of `object_type` waiting to be retried."""
        return (
            "SELECT id, status, code, message, attempts, last_failed_at FROM sync.failures "
            f"WHERE object_type = {literal(object_type)} ORDER BY last_failed_at DESC, id"
        )

    # -- what the planners read, as views in the work database ------------------------------

    def expose_records(self, con: duckdb.DuckDBPyConnection, object_type: str, ids: str | None = None) -> None:
        """Temp views of `object_type`'s state in `con`: `state_records` (every confirmed record's
        ID, hash and IDs; `expose_payloads` gives payloads),
        `state_failures` (every record waiting to be retried) and `state_links` (fallback IDs
        whose switch to a primary ID was decided). `ids` (SQL listing the IDs the plan needs)
        lets a remote state fetch less; views on this file read only what the plan joins anyway."""
        kind = literal(object_type)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP VIEW state_records AS
                SELECT {", ".join(RECORD_KEY_COLUMNS)} FROM sync.records WHERE object_type = {kind};
            CREATE OR REPLACE TEMP VIEW state_failures AS
                SELECT {", ".join(RECORD_COLUMNS)} FROM sync.failures WHERE object_type = {kind};
            CREATE OR REPLACE TEMP VIEW state_links AS
                SELECT fallback_id, primary_id FROM sync.links WHERE object_type = {kind};
            """
        )

    def expose_payloads(self, con: duckdb.DuckDBPyConnection, object_type: str, ids: str) -> None:
        """Temp view `state_payloads` (id, attributes, memberships) in `con`: what Userflow last
        confirmed of the records `ids` (SQL on `con`) lists; here simply every record's."""
        con.execute(
            "CREATE OR REPLACE TEMP VIEW state_payloads AS SELECT id, attributes, memberships FROM sync.records "
            f"WHERE object_type = {literal(object_type)}"
        )

    def expose_events(self, con: duckdb.DuckDBPyConnection, events: str | None = None) -> None:
        """Temp views for the events plan in `con`: `state_sent_events` (keys never to send
        again, with their names), `state_pending_events` (events owed, with payloads),
        `state_synced_users` and `state_failed_users` (user IDs). `events` (SQL listing the
        planned events' key and user_id) lets a remote state fetch only what they need."""
        con.execute(
            """
            CREATE OR REPLACE TEMP VIEW state_sent_events AS SELECT key, name FROM sync.sent_events;
            CREATE OR REPLACE TEMP VIEW state_pending_events AS
                SELECT key, status, name, user_id, group_id, time, attributes, payload_hash FROM sync.pending_events;
            CREATE OR REPLACE TEMP VIEW state_synced_users AS SELECT id FROM sync.records WHERE object_type = 'user';
            CREATE OR REPLACE TEMP VIEW state_failed_users AS SELECT id FROM sync.failures WHERE object_type = 'user';
            """
        )

    def sent_event_names(self) -> list[str]:
        """Every event name ever sent (or possibly sent)."""
        with self._connect() as con:
            return [row[0] for row in con.execute("SELECT DISTINCT name FROM sync.sent_events").fetchall()]

    # -- learned rate limits -----------------------------------------------------------------

    def remembered_limits(self, target: str) -> LearnedLimits | None:
        """What the last run learned of Userflow's rate limits for this URL and key."""
        with self._connect() as con:
            row = con.execute(
                "SELECT ceiling_per_minute, quota_per_window, noise_share FROM sync.rate_limits WHERE target = ?",
                [target],
            ).fetchone()
        return None if row is None else LearnedLimits(*row)

    def remember_limits(self, target: str, limits: LearnedLimits) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO sync.rate_limits VALUES (?, ?, ?, ?, ?)",
                [target, limits.ceiling_per_minute, limits.quota_per_window, limits.noise_share, utcnow()],
            )

    # -- events ------------------------------------------------------------------------------

    def checkpoint_events(
        self, run_id: str, sent: Sequence[Sent], pending: Sequence[Pending], log: Sequence[LogEntry] = ()
    ) -> None:
        """One batch's outcome (and its log rows) in one transaction: settled keys leave the owed events.

        A waiting event keeps its attempt count; a failed or ambiguous one adds an attempt.
        """
        if not sent and not pending:
            return
        now = utcnow()
        done = _frame([s.event for s in sent], EVENT_COLUMNS)
        done["status"] = [s.status for s in sent]
        done["userflow_id"] = [s.userflow_id for s in sent]
        owed = _frame([p.event for p in pending], EVENT_COLUMNS)
        owed["status"] = pd.Series([p.status for p in pending], dtype=object)
        owed["http_status"] = pd.Series([p.http_status for p in pending], dtype="Int64")
        owed["code"] = [p.code for p in pending]
        owed["message"] = [p.message for p in pending]
        frames = {"_sent": done, "_owed": owed, "_log": _frame(log, LOG_COLUMNS)}
        with self._connect() as con, _registered(con, frames), transaction(con):
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
            con.execute("INSERT INTO sync.log SELECT * FROM _log")
            if sent:
                failpoints.reach("events_state_write")  # confirmed events written, nothing committed

    def event_counts(self) -> dict[str, int]:
        """Keys per status across sent and owed events, every status present (0 when none)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT status, count(*) FROM sync.sent_events GROUP BY status "
                "UNION ALL SELECT status, count(*) FROM sync.pending_events GROUP BY status"
            ).fetchall()
        found = {str(status): int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in ("sent", "possibly_lost", *PENDING_STATUSES)}

    # -- Userflow's definitions --------------------------------------------------------------

    def definitions(self) -> list[tuple[str, str]]:
        """(kind, name) rows as last saved; empty when never read."""
        with self._connect() as con:
            return con.execute("SELECT kind, name FROM sync.userflow_definitions").fetchall()

    def save_definitions(self, rows: Sequence[tuple[str, str]]) -> None:
        with self._connect() as con, transaction(con):
            con.execute("DELETE FROM sync.userflow_definitions")
            if rows:
                con.executemany("INSERT INTO sync.userflow_definitions VALUES (?, ?)", list(rows))

    # -- copying a whole state ----------------------------------------------------------------

    def dump(self) -> dict[str, pa.Table]:
        """Every state table's rows as Arrow."""
        with self._connect() as con:
            return {t: con.sql(f"SELECT * FROM sync.{t}").to_arrow_table() for t in STATE_TABLES}

    def load(self, tables: dict[str, pa.Table]) -> None:
        """Replace every state table's rows with `tables`' (a `dump`), in one transaction."""
        with self._connect() as con, transaction(con):
            for name, table in tables.items():
                con.register("_copy", table)
                try:
                    columns = ", ".join(table.column_names)
                    con.execute(f"DELETE FROM sync.{name}")
                    con.execute(f"INSERT INTO sync.{name} ({columns}) SELECT {columns} FROM _copy")
                finally:
                    con.unregister("_copy")

    # -- the sync log ------------------------------------------------------------------------

    def prune_log(self, older_than: datetime) -> int:
        """Delete log rows written before `older_than`, and the marks of write-backs made before
        then (a run is marked after it was logged); how many log rows went."""
        with self._connect() as con:
            (n,) = con.execute("DELETE FROM sync.log WHERE logged_at < ?", [older_than]).fetchone()
            con.execute(PRUNE_LOG_WRITTEN_SQL, [older_than])
        return int(n)

    def log_rows(self, most: int) -> list[tuple[object, ...]]:
        """The latest `most` request outcomes, newest first (LOG_SQL)."""
        with self._connect() as con:
            return con.execute(f"{LOG_SQL} LIMIT ?", [most]).fetchall()

    def unwritten_log_runs(self, object_type: str) -> set[str]:
        """The runs with log rows of `object_type` that no write-back has marked written."""
        with self._connect() as con:
            return {run_id for (run_id,) in con.execute(UNWRITTEN_LOG_RUNS_SQL, [object_type]).fetchall()}

    def mark_log_written(self, run_ids: Collection[str], object_type: str) -> None:
        """Mark `run_ids` written back for `object_type`: `unwritten_log_runs` no longer lists them."""
        with self._connect() as con, _registered(con, {"_runs": run_ids_table(run_ids)}):
            con.execute(MARK_LOG_WRITTEN_SQL, [object_type, utcnow()])

    def runs_log(self, run_ids: Collection[str], object_type: str) -> pa.Table:
        """Every log row of those runs and `object_type`, oldest first (what `log_writeback` appends)."""
        with self._connect() as con, _registered(con, {"_runs": run_ids_table(run_ids)}):
            return con.sql(RUNS_LOG_SQL, params=[object_type]).to_arrow_table()


def run_ids_table(run_ids: Collection[str]) -> pa.Table:
    """The `_runs` table RUNS_LOG_SQL reads."""
    return pa.table({"run_id": pa.array(sorted(run_ids), pa.string())})


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame | pa.Table]) -> Iterator[None]:
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        yield
    finally:
        for name in frames:
            con.unregister(name)


def synced_records_sql(con: duckdb.DuckDBPyConnection, state_path: Path, alias: str) -> str | None:
    """Attach a state file read-only to `con` as `alias`; the SQL of its confirmed records
    (object_type, id, attributes, synced_at), or None when it holds none yet."""
    if not state_path.is_file():
        return None
    attach_read_only(con, state_path, alias)
    (has_records,) = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_catalog = ? AND table_schema = 'sync' AND table_name = 'records'",
        [alias],
    ).fetchone()
    return f"SELECT object_type, id, attributes, synced_at FROM {alias}.sync.records" if has_records else None
