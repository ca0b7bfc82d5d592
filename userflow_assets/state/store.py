"""The sync state: what Userflow has confirmed, what failed, and where each read starts.

It lives in schema `sync` of the code location's own DuckDB file, next to the staged
(`staging`) and transformed (`transform`) tables, so one transaction covers a checkpoint.
Every write here is a transaction: a process killed mid-write leaves the previous state.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

from userflow_assets import failpoints
from userflow_assets.client.ratelimit import LearnedLimits

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
"""

RECORD_COLUMNS = ["id", "payload_hash", "attributes", "memberships", "primary_id", "fallback_id"]


def utcnow() -> datetime:
    """Naive UTC, the convention of every timestamp in the state."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Record:
    """A record as the transform produced it: what is sent and what is remembered."""

    id: str
    payload_hash: str
    attributes: str
    memberships: str | None
    primary_id: str | None
    fallback_id: str | None


@dataclass(frozen=True)
class Failure:
    record: Record
    status: int | None
    code: str | None
    message: str


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _records_frame(records: Sequence[Record]) -> pd.DataFrame:
    return pd.DataFrame(
        [[getattr(r, c) for c in RECORD_COLUMNS] for r in records], columns=RECORD_COLUMNS, dtype=object
    )


def checkpoint(
    con: duckdb.DuckDBPyConnection,
    object_type: str,
    run_id: str,
    confirmed: Sequence[Record],
    failed: Sequence[Failure],
    forget: Sequence[str] = (),
    in_transaction: bool = False,
) -> None:
    """Record one batch's outcome in one transaction.

    `confirmed` are records Userflow answered 2xx for, with exactly the payload sent;
    `failed` are kept with their error and attempt count so the next run retries them;
    `forget` are IDs deleted in Userflow (e.g. a fallback-ID user after migration).
    With `in_transaction`, the caller's open transaction covers it (to add more writes).
    """
    now = utcnow()
    ok = _records_frame(confirmed)
    bad = _records_frame([f.record for f in failed])
    bad["status"] = pd.Series([f.status for f in failed], dtype="Int64")
    bad["code"] = [f.code for f in failed]
    bad["message"] = [f.message for f in failed]
    gone = pd.DataFrame({"id": list(forget)}, dtype=object)
    with nullcontext() if in_transaction else transaction(con):
        con.register("_confirmed", ok)
        con.register("_failed", bad)
        con.register("_forget", gone)
        try:
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
            failpoints.reach("state_write")  # everything written, nothing committed
        finally:
            for name in ("_confirmed", "_failed", "_forget"):
                con.unregister(name)


def record_link(
    con: duckdb.DuckDBPyConnection, object_type: str, fallback_id: str, primary_id: str, decision: str, run_id: str
) -> None:
    con.execute(
        "INSERT OR REPLACE INTO sync.links VALUES (?, ?, ?, ?, ?, ?)",
        [object_type, fallback_id, primary_id, decision, utcnow(), run_id],
    )


def record_read(
    con: duckdb.DuckDBPyConnection,
    object_type: str,
    read_started_at: datetime,
    since: datetime | None,
    spec_hash: str,
    run_id: str,
) -> None:
    """Remember when the staged rows were read, and under which spec; the cursor moves there
    once they are all settled."""
    con.execute(
        "INSERT OR REPLACE INTO sync.reads VALUES (?, ?, ?, ?, ?)",
        [object_type, read_started_at, since, spec_hash, run_id],
    )


def advance_cursor(con: duckdb.DuckDBPyConnection, object_type: str, run_id: str) -> datetime | None:
    """Move the cursor to the start of the staged read: called only when every staged row
    was confirmed, recorded as failed or rejected."""
    row = con.execute(
        "SELECT read_started_at, spec_hash FROM sync.reads WHERE object_type = ?", [object_type]
    ).fetchone()
    if row is None:
        return None
    con.execute("INSERT OR REPLACE INTO sync.cursors VALUES (?, ?, ?, ?)", [object_type, *row, run_id])
    return row[0]


def cursor(con: duckdb.DuckDBPyConnection, object_type: str, spec_hash: str) -> datetime | None:
    """Where the next incremental read starts; none (read everything) when the spec or query
    changed since, because every record may then map differently."""
    row = con.execute(
        "SELECT read_started_at, spec_hash FROM sync.cursors WHERE object_type = ?", [object_type]
    ).fetchone()
    return row[0] if row and row[1] == spec_hash else None


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, object_type: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO sync.runs VALUES (?, ?, ?, NULL, 'started', NULL)", [run_id, object_type, utcnow()]
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, object_type: str, status: str, counts: str) -> None:
    con.execute(
        "UPDATE sync.runs SET finished_at = ?, status = ?, counts = ? WHERE run_id = ? AND object_type = ?",
        [utcnow(), status, counts, run_id, object_type],
    )


def remembered_limits(con: duckdb.DuckDBPyConnection, target: str) -> LearnedLimits | None:
    """What the last run learned of Userflow's rate limits for this URL and key."""
    row = con.execute(
        "SELECT ceiling_per_minute, quota_per_window, noise_share FROM sync.rate_limits WHERE target = ?", [target]
    ).fetchone()
    return None if row is None else LearnedLimits(*row)


def remember_limits(con: duckdb.DuckDBPyConnection, target: str, limits: LearnedLimits) -> None:
    con.execute(
        "INSERT OR REPLACE INTO sync.rate_limits VALUES (?, ?, ?, ?, ?)",
        [target, limits.ceiling_per_minute, limits.quota_per_window, limits.noise_share, utcnow()],
    )
