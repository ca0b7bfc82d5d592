"""The sync state in PostgreSQL, for runs in fresh containers or on several machines.

Same operations as `DuckDBState` (the `SyncState` protocol), through ADBC; a session whose
transaction committed is kept for the next one (`_IDLE`). The planner's
views are brought into the work database as Arrow: every row of one object type, or only
those of the IDs a read staged. Each checkpoint is one Postgres transaction; a sink step
holds an advisory lock per object type, so a second writer is refused, not interleaved.
The schema is created and upgraded by `MIGRATIONS`, recorded in `sync.schema_version`.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as pg
import duckdb
import pyarrow as pa

from userflow_assets import failpoints
from userflow_assets.redaction import redact, register_secret
from userflow_assets.sqltext import literal
from userflow_assets.state import types
from userflow_assets.state.store import (
    EVENT_COLUMNS,
    LOG_COLUMNS,
    LOG_SQL,
    MARK_LOG_WRITTEN_SQL,
    PRUNE_LOG_WRITTEN_SQL,
    RECORD_COLUMNS,
    RECORD_KEY_COLUMNS,
    RUNS_LOG_SQL,
    STATE_TABLES,
    UNWRITTEN_LOG_RUNS_SQL,
    run_ids_table,
)
from userflow_assets.state.types import (
    PENDING_STATUSES,
    Failure,
    LearnedLimits,
    Link,
    LogEntry,
    Pending,
    Record,
    Sent,
)

SCHEMES = ("postgresql", "postgres")

_V1 = """
CREATE SCHEMA IF NOT EXISTS sync;
CREATE TABLE sync.records (
    object_type text NOT NULL, id text NOT NULL, payload_hash text NOT NULL, attributes text NOT NULL,
    memberships text, primary_id text, fallback_id text, synced_at timestamp NOT NULL, run_id text NOT NULL,
    PRIMARY KEY (object_type, id)
);
CREATE TABLE sync.failures (
    object_type text NOT NULL, id text NOT NULL, payload_hash text NOT NULL, attributes text NOT NULL,
    memberships text, primary_id text, fallback_id text, status integer, code text, message text NOT NULL,
    attempts integer NOT NULL, first_failed_at timestamp NOT NULL, last_failed_at timestamp NOT NULL,
    run_id text NOT NULL, PRIMARY KEY (object_type, id)
);
CREATE TABLE sync.links (
    object_type text NOT NULL, fallback_id text NOT NULL, primary_id text NOT NULL, decision text NOT NULL,
    linked_at timestamp NOT NULL, run_id text NOT NULL, PRIMARY KEY (object_type, fallback_id)
);
CREATE TABLE sync.cursors (
    object_type text PRIMARY KEY, read_started_at timestamp NOT NULL, spec_hash text NOT NULL, run_id text NOT NULL
);
CREATE TABLE sync.reads (
    object_type text PRIMARY KEY, read_started_at timestamp NOT NULL, since timestamp,
    spec_hash text NOT NULL, run_id text NOT NULL
);
CREATE TABLE sync.runs (
    run_id text NOT NULL, object_type text NOT NULL, started_at timestamp NOT NULL, finished_at timestamp,
    status text NOT NULL, counts text, PRIMARY KEY (run_id, object_type)
);
CREATE TABLE sync.rate_limits (
    target text PRIMARY KEY, ceiling_per_minute double precision, quota_per_window integer,
    noise_share double precision NOT NULL, saved_at timestamp NOT NULL
);
CREATE TABLE sync.sent_events (
    key text PRIMARY KEY, status text NOT NULL, name text NOT NULL, userflow_id text,
    payload_hash text NOT NULL, sent_at timestamp NOT NULL, run_id text NOT NULL
);
CREATE TABLE sync.pending_events (
    key text PRIMARY KEY, status text NOT NULL, name text NOT NULL, user_id text, group_id text, time text,
    attributes text NOT NULL, payload_hash text NOT NULL, http_status integer, code text, message text,
    attempts integer NOT NULL, first_at timestamp NOT NULL, last_at timestamp NOT NULL, run_id text NOT NULL
);
CREATE TABLE sync.userflow_definitions (kind text, name text);
"""

_V2 = """
CREATE TABLE sync.log (
    run_id text NOT NULL, object_type text NOT NULL, record_id text NOT NULL, action text NOT NULL,
    outcome text NOT NULL, http_status integer, error_code text, error_message text, attempts integer,
    logged_at timestamp NOT NULL
);
CREATE INDEX log_at ON sync.log (logged_at);
CREATE INDEX log_record ON sync.log (object_type, record_id, logged_at);
"""

_V3 = """
CREATE TABLE sync.log_written (
    run_id text NOT NULL, object_type text NOT NULL, written_at timestamp NOT NULL, PRIMARY KEY (object_type, run_id)
);
"""

# Version -> what it adds. A newer version of this code appends; never edit a released step.
MIGRATIONS: dict[int, tuple[str, str]] = {
    1: ("records, failures, links, cursors, runs, limits and events", _V1),
    2: ("the sync log, sync.log", _V2),
    3: ("the runs written back to the warehouse, sync.log_written", _V3),
}
SCHEMA_VERSION = max(MIGRATIONS)
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS sync.schema_version (version integer PRIMARY KEY, applied_at timestamp NOT NULL)"
)
_LOCK_SQL = "hashtextextended('userflow_assets ' || $1, 0)"


class StateUnavailable(RuntimeError):
    """The Postgres state could not be reached or answered with an error; nothing was half-written."""


class StateBusy(RuntimeError):
    """Another process holds the sync state of this object type."""


def is_postgres_url(value: str) -> bool:
    return urlsplit(value).scheme in SCHEMES


def describe(url: str) -> str:
    """host:port/database of `url`: what messages show, never the user or password."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{parts.hostname or 'localhost'}{port}{parts.path or '/'}"


def _with_password(url: str, password: str | None) -> str:
    """`url` with `password` set (libpq reads PGPASSWORD itself when none is given)."""
    if not password:
        return url
    parts = urlsplit(url)
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _arrow(columns: dict[str, list[Any]], types_: dict[str, pa.DataType] | None = None) -> pa.Table:
    types_ = types_ or {}
    return pa.table({name: pa.array(values, types_.get(name, pa.string())) for name, values in columns.items()})


def _records_table(records: Sequence[Record]) -> pa.Table:
    return _arrow({c: [getattr(r, c) for r in records] for c in RECORD_COLUMNS})


# Lock sessions this process holds: (where, object type) -> the connection holding the lock.
# Checkpoints of that object type go through it, so a lost session fails the write, never
# lets it through unguarded.
_HELD: dict[tuple[str, str], Any] = {}


# Sessions whose transaction committed, per process and state URL, for the next transaction:
# opening an ADBC connection takes about 60 ms (the driver reads the server's types), a kept
# one answers in under a millisecond. A step makes dozens of state calls.
_IDLE: dict[tuple[int, str], list[Any]] = {}
_IDLE_LOCK = threading.Lock()
IDLE_MOST = 2  # kept per process and URL; the sink's batches may write from two threads


def _close_quietly(con: Any) -> None:
    try:
        con.close()
    except adbc_driver_manager.Error:
        pass  # already gone on the server's side


def _alive(con: Any) -> bool:
    """Whether a kept session still answers (the server may have ended it meanwhile)."""
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        con.commit()
        return True
    except adbc_driver_manager.Error:
        return False


@atexit.register
def _close_idle() -> None:
    """Close this process's kept sessions (never a parent's, inherited by a fork)."""
    with _IDLE_LOCK:
        mine = [key for key in _IDLE if key[0] == os.getpid()]
        cons = [con for key in mine for con in _IDLE.pop(key)]
    for con in cons:
        _close_quietly(con)


class PostgresState:
    """The sync state in schema `sync` of a Postgres database, through ADBC sessions kept per process."""

    def __init__(self, url: str, password: str | None = None) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"not a postgresql:// URL: {describe(url)}")
        if urlsplit(url).password:
            raise ValueError(
                f"the state URL {describe(url)} carries a password; put it in the environment "
                "(state_password_env, or PGPASSWORD) instead"
            )
        if password:
            register_secret(password)
        self._uri = _with_password(url, password)
        self.where = describe(url)

    # -- connections -------------------------------------------------------------------------

    def _open(self) -> Any:
        try:
            return pg.connect(self._uri, autocommit=False)
        except adbc_driver_manager.Error as error:
            raise StateUnavailable(f"could not connect to the sync state at {self.where}: {_reason(error)}") from None

    def _take(self) -> Any:
        """A kept session of this process that still answers, else a new one."""
        key = (os.getpid(), self._uri)
        while True:
            with _IDLE_LOCK:
                kept = _IDLE.get(key)
                con = kept.pop() if kept else None
            if con is None:
                return self._open()
            if _alive(con):
                return con
            _close_quietly(con)

    def _keep(self, con: Any) -> None:
        """Keep a session whose transaction committed, unless IDLE_MOST are kept already."""
        with _IDLE_LOCK:
            kept = _IDLE.setdefault((os.getpid(), self._uri), [])
            if len(kept) < IDLE_MOST:
                kept.append(con)
                return
        con.close()

    @contextmanager
    def _tx(self, object_type: str | None = None) -> Iterator[Any]:
        """A cursor in one transaction, committed on leaving; on the held lock session if any.
        A session is kept for the next transaction only after a commit; any failure closes it."""
        held = _HELD.get((self.where, object_type)) if object_type else None
        con = held or self._take()
        committed = False
        try:
            with con.cursor() as cur:
                yield cur
            con.commit()
            committed = True
        except adbc_driver_manager.Error as error:
            _rollback(con)
            raise StateUnavailable(
                f"the sync state at {self.where} failed mid-write, nothing of it was kept: {_reason(error)}"
            ) from None
        except BaseException:
            _rollback(con)
            raise
        finally:
            if held is None and committed:
                self._keep(con)
            elif held is None:
                _close_quietly(con)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(sql, parameters=tuple(params) if params else None)
            return list(cur.fetchall())

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._tx() as cur:
            cur.execute(sql, parameters=tuple(params) if params else None)

    # -- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The version of the schema in the database; 0 when there is none."""
        rows = self._rows("SELECT to_regclass('sync.schema_version') IS NOT NULL")
        if not rows[0][0]:
            return 0
        return int(self._rows("SELECT coalesce(max(version), 0) FROM sync.schema_version")[0][0])

    def ensure_schema(self) -> list[str]:
        """Create or upgrade the schema in one transaction (concurrent callers wait on a lock);
        what was done, for the run's log (nothing when the schema is current)."""
        with self._tx() as cur:
            cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK_SQL})", parameters=("schema",))
            cur.execute("CREATE SCHEMA IF NOT EXISTS sync")
            cur.execute(_VERSION_TABLE)
            cur.execute("SELECT coalesce(max(version), 0) FROM sync.schema_version")
            (current,) = cur.fetchone()
            steps = sorted(v for v in MIGRATIONS if v > current)
            for version in steps:
                for statement in filter(str.strip, MIGRATIONS[version][1].split(";")):
                    cur.execute(statement)  # one at a time: ADBC prepares each
                cur.execute("INSERT INTO sync.schema_version VALUES ($1, $2)", parameters=(version, types.utcnow()))
        if not steps:
            return []
        if current == 0:
            return [f"sync state at {self.where}: schema created (version {SCHEMA_VERSION})"]
        added = "; ".join(MIGRATIONS[v][0] for v in steps)
        return [f"sync state at {self.where}: schema upgraded in place from version {current} to {SCHEMA_VERSION} ({added})"]

    # -- exclusive writing ---------------------------------------------------------------------

    @contextmanager
    def exclusive(self, object_type: str, holder: str) -> Iterator[None]:
        """Hold the advisory lock of `object_type`'s state for the block; StateBusy if another
        session holds it. `holder` (e.g. the run ID) is what the refused writer is told."""
        key = (self.where, object_type)
        con = self._open()  # a session of its own: even this process's other sessions are refused
        try:
            with con.cursor() as cur:
                name = f"userflow_assets {holder}"  # what a refused writer is told holds the lock
                cur.execute("SELECT set_config('application_name', $1, false)", parameters=(name,))
                cur.execute(f"SELECT pg_try_advisory_lock({_LOCK_SQL})", parameters=(object_type,))
                (got,) = cur.fetchone()
                other = None if got else self._lock_holder(cur, object_type)
            con.commit()
            if not got:
                raise StateBusy(
                    f"another process is writing the {object_type}s' sync state at {self.where} "
                    f"({other or 'holder unknown'}); this run stopped before any request. Syncs of one "
                    "state must take turns: check the Dagster concurrency pool and the runs in progress."
                )
            _HELD[key] = con
            try:
                yield
            finally:
                _HELD.pop(key, None)
        finally:
            con.close()  # closing the session releases its lock

    def _lock_holder(self, cur: Any, object_type: str) -> str | None:
        cur.execute(
            f"""
            SELECT a.application_name, a.client_addr::text, a.backend_start
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND ((l.classid::bigint << 32) | l.objid::bigint) = {_LOCK_SQL}
            """,
            parameters=(object_type,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        name, addr, since = row
        return f"{name or 'a session'} from {addr or 'a local socket'} since {since:%Y-%m-%d %H:%M:%S}"

    # -- reads and cursors -------------------------------------------------------------------

    def cursor(self, object_type: str, spec_hash: str) -> datetime | None:
        rows = self._rows("SELECT read_started_at, spec_hash FROM sync.cursors WHERE object_type = $1", [object_type])
        return rows[0][0] if rows and rows[0][1] == spec_hash else None

    def record_read(
        self, object_type: str, read_started_at: datetime, since: datetime | None, spec_hash: str, run_id: str
    ) -> None:
        self._exec(
            "INSERT INTO sync.reads VALUES ($1, $2, $3, $4, $5) ON CONFLICT (object_type) DO UPDATE SET "
            "read_started_at = excluded.read_started_at, since = excluded.since, spec_hash = excluded.spec_hash, "
            "run_id = excluded.run_id",
            [object_type, read_started_at, since, spec_hash, run_id],
        )

    def advance_cursor(self, object_type: str, run_id: str) -> datetime | None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO sync.cursors SELECT object_type, read_started_at, spec_hash, $2 FROM sync.reads "
                "WHERE object_type = $1 ON CONFLICT (object_type) DO UPDATE SET "
                "read_started_at = excluded.read_started_at, spec_hash = excluded.spec_hash, run_id = excluded.run_id "
                "RETURNING read_started_at",
                parameters=(object_type, run_id),
            )
            row = cur.fetchone()
        return row[0] if row else None

    def last_read_was_full(self, object_type: str) -> bool:
        rows = self._rows("SELECT since IS NULL FROM sync.reads WHERE object_type = $1", [object_type])
        return bool(rows and rows[0][0])

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, run_id: str, object_type: str) -> None:
        self._exec(
            "INSERT INTO sync.runs VALUES ($1, $2, $3, NULL, 'started', NULL) ON CONFLICT (run_id, object_type) "
            "DO UPDATE SET started_at = excluded.started_at, finished_at = NULL, status = 'started', counts = NULL",
            [run_id, object_type, types.utcnow()],
        )

    def finish_run(self, run_id: str, object_type: str, status: str, counts: str) -> None:
        self._exec(
            "UPDATE sync.runs SET finished_at = $1, status = $2, counts = $3 WHERE run_id = $4 AND object_type = $5",
            [types.utcnow(), status, counts, run_id, object_type],
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
        """One batch's outcome in one transaction (see `DuckDBState.checkpoint`)."""
        now = types.utcnow()
        bad = _records_table([f.record for f in failed])
        bad = bad.append_column("status", pa.array([f.status for f in failed], pa.int32()))
        bad = bad.append_column("code", pa.array([f.code for f in failed], pa.string()))
        bad = bad.append_column("message", pa.array([f.message for f in failed], pa.string()))
        frames = {
            "_confirmed": _records_table(confirmed),
            "_failed": bad,
            "_forget": _arrow({"id": list(forget)}),
            "_links": _arrow({c: [getattr(k, c) for k in links] for c in ("fallback_id", "primary_id", "decision")}),
        }
        with self._tx(object_type) as cur:
            _ingest(cur, frames)
            cur.execute(
                """
                INSERT INTO sync.records
                SELECT $1, id, payload_hash, attributes, memberships, primary_id, fallback_id, $2, $3 FROM _confirmed
                ON CONFLICT (object_type, id) DO UPDATE SET
                    payload_hash = excluded.payload_hash, attributes = excluded.attributes,
                    memberships = excluded.memberships, primary_id = excluded.primary_id,
                    fallback_id = excluded.fallback_id, synced_at = excluded.synced_at, run_id = excluded.run_id
                """,
                parameters=(object_type, now, run_id),
            )
            cur.execute(
                "DELETE FROM sync.failures WHERE object_type = $1 AND id IN "
                "(SELECT id FROM _confirmed UNION ALL SELECT id FROM _forget)",
                parameters=(object_type,),
            )
            cur.execute(
                """
                INSERT INTO sync.failures
                SELECT $1, f.id, f.payload_hash, f.attributes, f.memberships, f.primary_id, f.fallback_id,
                       f.status, f.code, f.message, 1, $2, $2, $3
                FROM _failed AS f
                ON CONFLICT (object_type, id) DO UPDATE SET
                    payload_hash = excluded.payload_hash, attributes = excluded.attributes,
                    memberships = excluded.memberships, primary_id = excluded.primary_id,
                    fallback_id = excluded.fallback_id, status = excluded.status, code = excluded.code,
                    message = excluded.message, attempts = sync.failures.attempts + 1,
                    last_failed_at = excluded.last_failed_at, run_id = excluded.run_id
                """,
                parameters=(object_type, now, run_id),
            )
            cur.execute(
                "DELETE FROM sync.records WHERE object_type = $1 AND id IN (SELECT id FROM _forget)",
                parameters=(object_type,),
            )
            cur.execute(
                "INSERT INTO sync.links SELECT $1, fallback_id, primary_id, decision, $2, $3 FROM _links "
                "ON CONFLICT (object_type, fallback_id) DO UPDATE SET primary_id = excluded.primary_id, "
                "decision = excluded.decision, linked_at = excluded.linked_at, run_id = excluded.run_id",
                parameters=(object_type, now, run_id),
            )
            self._write_log(cur, log)
            failpoints.reach("state_write")  # everything written, nothing committed

    def record_counts(self, object_type: str) -> tuple[int, int]:
        (synced, failed), = self._rows(
            "SELECT (SELECT count(*) FROM sync.records WHERE object_type = $1), "
            "(SELECT count(*) FROM sync.failures WHERE object_type = $1)",
            [object_type],
        )
        return int(synced), int(failed)

    def written_sample(self, object_type: str, run_id: str, share: int, most: int) -> list[tuple[str, str]]:
        return [
            (row[0], row[1])
            for row in self._rows(
                "SELECT id, attributes FROM sync.records WHERE object_type = $1 AND run_id = $2 "
                "ORDER BY md5(id) LIMIT least($3, ceil((SELECT count(*) FROM sync.records "
                "WHERE object_type = $1 AND run_id = $2)::numeric / $4))",
                [object_type, run_id, most, share],
            )
        ]

    def failures(self, object_type: str, most: int) -> list[tuple[object, ...]]:
        return self._rows(f"{self.failures_sql(object_type)} LIMIT $1", [most])

    def failures_sql(self, object_type: str) -> str:
        return (
            "SELECT id, status, code, message, attempts, last_failed_at FROM sync.failures "
            f"WHERE object_type = {literal(object_type)} ORDER BY last_failed_at DESC, id"
        )

    # -- what the planners read, copied into the work database ------------------------------

    def expose_records(self, con: duckdb.DuckDBPyConnection, object_type: str, ids: str | None = None) -> None:
        """Temp tables `state_records`, `state_failures`, `state_links` in `con` (as the
        DuckDB views). With `ids` (SQL on `con` listing IDs), only the records and links of
        those IDs and of the failures are fetched; failures always whole."""
        kind = _kind(object_type)
        with self._tx() as cur:
            if ids is None:
                wanted = f"SELECT id FROM sync.records WHERE object_type = {kind}"
            else:
                _ingest(cur, {"_wanted": con.sql(f"SELECT DISTINCT id::VARCHAR AS id FROM ({ids})").to_arrow_table()})
                cur.execute("ANALYZE _wanted")
                wanted = (
                    f"SELECT id FROM _wanted UNION SELECT id FROM sync.failures WHERE object_type = {kind} "
                    f"UNION SELECT fallback_id FROM sync.failures WHERE object_type = {kind}"
                )
            keys, columns = ", ".join(RECORD_KEY_COLUMNS), ", ".join(RECORD_COLUMNS)
            where = "" if ids is None else f" AND id IN ({wanted})"
            links = "" if ids is None else f" AND fallback_id IN ({wanted})"
            fetches = {
                "state_records": f"SELECT {keys} FROM sync.records WHERE object_type = {kind}{where}",
                "state_failures": f"SELECT {columns} FROM sync.failures WHERE object_type = {kind}",
                "state_links": f"SELECT fallback_id, primary_id FROM sync.links WHERE object_type = {kind}{links}",
            }
            for name, sql in fetches.items():
                _copy_into(con, cur, name, sql)

    def expose_payloads(self, con: duckdb.DuckDBPyConnection, object_type: str, ids: str) -> None:
        """Temp table `state_payloads` (id, attributes, memberships) of the records `ids` lists."""
        with self._tx() as cur:
            _ingest(cur, {"_wanted": con.sql(f"SELECT DISTINCT id::VARCHAR AS id FROM ({ids})").to_arrow_table()})
            sql = (
                "SELECT r.id, r.attributes, r.memberships FROM sync.records AS r JOIN _wanted AS w ON w.id = r.id "
                f"WHERE r.object_type = {_kind(object_type)}"
            )
            _copy_into(con, cur, "state_payloads", sql)

    def expose_synced(self, con: duckdb.DuckDBPyConnection) -> str:
        """Temp table `state_synced` in `con` (any DuckDB database, e.g. the mirror's): every
        confirmed record's object type, ID, attributes and time; returns its SQL."""
        with self._tx() as cur:
            _copy_into(con, cur, "state_synced", "SELECT object_type, id, attributes, synced_at FROM sync.records")
        return "SELECT object_type, id, attributes, synced_at FROM state_synced"

    def expose_events(self, con: duckdb.DuckDBPyConnection, events: str | None = None) -> None:
        """As `DuckDBState.expose_events`; with `events`, only the sent keys among them and
        the synced users among theirs and the owed events' users."""
        with self._tx() as cur:
            sent, users = "", ""
            if events is not None:
                planned = con.sql(f"SELECT DISTINCT key::VARCHAR AS key, user_id::VARCHAR AS user_id FROM ({events})")
                _ingest(cur, {"_events": planned.to_arrow_table()})
                sent = " WHERE key IN (SELECT key FROM _events)"
                users = " AND id IN (SELECT user_id FROM _events UNION SELECT user_id FROM sync.pending_events)"
            _copy_into(con, cur, "state_sent_events", f"SELECT key, name FROM sync.sent_events{sent}")
            _copy_into(
                con, cur, "state_pending_events",
                "SELECT key, status, name, user_id, group_id, time, attributes, payload_hash FROM sync.pending_events",
            )
            _copy_into(con, cur, "state_synced_users", f"SELECT id FROM sync.records WHERE object_type = 'user'{users}")
            _copy_into(con, cur, "state_failed_users", "SELECT id FROM sync.failures WHERE object_type = 'user'")

    def sent_event_names(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT DISTINCT name FROM sync.sent_events")]

    # -- learned rate limits -----------------------------------------------------------------

    def remembered_limits(self, target: str) -> LearnedLimits | None:
        rows = self._rows(
            "SELECT ceiling_per_minute, quota_per_window, noise_share FROM sync.rate_limits WHERE target = $1", [target]
        )
        return LearnedLimits(*rows[0]) if rows else None

    def remember_limits(self, target: str, limits: LearnedLimits) -> None:
        self._exec(
            "INSERT INTO sync.rate_limits VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target) DO UPDATE SET "
            "ceiling_per_minute = excluded.ceiling_per_minute, quota_per_window = excluded.quota_per_window, "
            "noise_share = excluded.noise_share, saved_at = excluded.saved_at",
            [target, limits.ceiling_per_minute, limits.quota_per_window, limits.noise_share, types.utcnow()],
        )

    # -- events ------------------------------------------------------------------------------

    def checkpoint_events(
        self, run_id: str, sent: Sequence[Sent], pending: Sequence[Pending], log: Sequence[LogEntry] = ()
    ) -> None:
        """One batch's outcome in one transaction (see `DuckDBState.checkpoint_events`)."""
        if not sent and not pending:
            return
        now = types.utcnow()
        done = _arrow(
            {
                **{c: [getattr(s.event, c) for s in sent] for c in EVENT_COLUMNS},
                "status": [s.status for s in sent],
                "userflow_id": [s.userflow_id for s in sent],
            }
        )
        owed = _arrow(
            {
                **{c: [getattr(p.event, c) for p in pending] for c in EVENT_COLUMNS},
                "status": [p.status for p in pending],
                "http_status": [p.http_status for p in pending],
                "code": [p.code for p in pending],
                "message": [p.message for p in pending],
            },
            {"http_status": pa.int32()},
        )
        with self._tx("event") as cur:
            _ingest(cur, {"_sent": done, "_owed": owed})
            cur.execute(
                "INSERT INTO sync.sent_events SELECT key, status, name, userflow_id, payload_hash, $1, $2 FROM _sent "
                "ON CONFLICT (key) DO UPDATE SET status = excluded.status, name = excluded.name, "
                "userflow_id = excluded.userflow_id, payload_hash = excluded.payload_hash, "
                "sent_at = excluded.sent_at, run_id = excluded.run_id",
                parameters=(now, run_id),
            )
            cur.execute("DELETE FROM sync.pending_events WHERE key IN (SELECT key FROM _sent)")
            cur.execute(
                """
                INSERT INTO sync.pending_events
                SELECT key, status, name, user_id, group_id, time, attributes, payload_hash,
                       http_status, code, message, CASE WHEN status LIKE 'waiting%' THEN 0 ELSE 1 END, $1, $1, $2
                FROM _owed
                ON CONFLICT (key) DO UPDATE SET
                    status = excluded.status, name = excluded.name, user_id = excluded.user_id,
                    group_id = excluded.group_id, time = excluded.time, attributes = excluded.attributes,
                    payload_hash = excluded.payload_hash, http_status = excluded.http_status,
                    code = excluded.code, message = excluded.message,
                    attempts = sync.pending_events.attempts + excluded.attempts,
                    last_at = excluded.last_at, run_id = excluded.run_id
                """,
                parameters=(now, run_id),
            )
            self._write_log(cur, log)
            if sent:
                failpoints.reach("events_state_write")  # confirmed events written, nothing committed

    def event_counts(self) -> dict[str, int]:
        rows = self._rows(
            "SELECT status, count(*) FROM sync.sent_events GROUP BY status "
            "UNION ALL SELECT status, count(*) FROM sync.pending_events GROUP BY status"
        )
        found = {str(status): int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in ("sent", "possibly_lost", *PENDING_STATUSES)}

    # -- Userflow's definitions --------------------------------------------------------------

    def definitions(self) -> list[tuple[str, str]]:
        return [(kind, name) for kind, name in self._rows("SELECT kind, name FROM sync.userflow_definitions")]

    def save_definitions(self, rows: Sequence[tuple[str, str]]) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM sync.userflow_definitions")
            if rows:
                _ingest(cur, {"_definitions": _arrow({"kind": [r[0] for r in rows], "name": [r[1] for r in rows]})})
                cur.execute("INSERT INTO sync.userflow_definitions SELECT kind, name FROM _definitions")

    # -- copying a whole state ----------------------------------------------------------------

    def dump(self) -> dict[str, pa.Table]:
        with self._tx() as cur:
            return {t: _fetch(cur, f"SELECT * FROM sync.{t}") for t in STATE_TABLES}

    def load(self, tables: dict[str, pa.Table]) -> None:
        """Replace every state table's rows with `tables`' (a `dump`), in one transaction."""
        with self._tx() as cur:
            for name, table in tables.items():
                columns = ", ".join(table.column_names)
                _ingest(cur, {"_copy": table})
                cur.execute(f"DELETE FROM sync.{name}")
                cur.execute(f"INSERT INTO sync.{name} ({columns}) SELECT {columns} FROM _copy")

    # -- the sync log ------------------------------------------------------------------------

    def _write_log(self, cur: Any, log: Sequence[LogEntry]) -> None:
        if not log:
            return
        _ingest(cur, {"_log": log_table(log)})
        cur.execute("INSERT INTO sync.log SELECT * FROM _log")

    def prune_log(self, older_than: datetime) -> int:
        with self._tx() as cur:
            # Counted by the statement: ADBC gives no row count for a DELETE.
            cur.execute(
                "WITH gone AS (DELETE FROM sync.log WHERE logged_at < $1 RETURNING 1) SELECT count(*) FROM gone",
                parameters=(older_than,),
            )
            (pruned,) = cur.fetchone()
            cur.execute(PRUNE_LOG_WRITTEN_SQL, parameters=(older_than,))
            return int(pruned)

    def log_rows(self, most: int) -> list[tuple[object, ...]]:
        return self._rows(f"{LOG_SQL} LIMIT $1", [most])

    def unwritten_log_runs(self, object_type: str) -> set[str]:
        return {run_id for (run_id,) in self._rows(UNWRITTEN_LOG_RUNS_SQL, [object_type])}

    def mark_log_written(self, run_ids: Collection[str], object_type: str) -> None:
        with self._tx() as cur:
            _ingest(cur, {"_runs": run_ids_table(run_ids)})
            cur.execute(MARK_LOG_WRITTEN_SQL, parameters=(object_type, types.utcnow()))

    def runs_log(self, run_ids: Collection[str], object_type: str) -> pa.Table:
        with self._tx() as cur:
            _ingest(cur, {"_runs": run_ids_table(run_ids)})
            return _fetch(cur, RUNS_LOG_SQL, object_type)



def log_table(log: Sequence[LogEntry]) -> pa.Table:
    return _arrow(
        {c: [getattr(e, c) for e in log] for c in LOG_COLUMNS},
        {"http_status": pa.int32(), "attempts": pa.int32(), "logged_at": pa.timestamp("us")},
    )


def _ingest(cur: Any, tables: dict[str, pa.Table]) -> None:
    """Each Arrow table as a temp table of this session (replacing one of that name)."""
    for name, table in tables.items():
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.adbc_ingest(name, table, mode="create", temporary=True)


def _kind(object_type: str) -> str:
    """The object type (`user`, `group`: the code's own, never data) as a literal for the SQL
    of `_copy_into`, which takes no bound parameters."""
    return literal(object_type)


def _fetch(cur: Any, sql: str, *params: Any) -> pa.Table:
    cur.execute(sql, parameters=params or None)
    return cur.fetch_arrow_table()


def _copy_into(con: duckdb.DuckDBPyConnection, cur: Any, name: str, sql: str) -> None:
    """Temp table `name` in the work database with the rows of `sql`, streamed batch by batch
    (never the whole result in memory twice). `sql` has no bound parameters: ADBC reads such a
    query through COPY, about twice as fast for a million rows."""
    cur.execute(sql)
    con.register("_fetched", cur.fetch_record_batch())
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _fetched")
    finally:
        con.unregister("_fetched")


def _rollback(con: Any) -> None:
    try:
        con.rollback()
    except adbc_driver_manager.Error:
        pass  # the session is gone: the server already dropped the transaction


def _reason(error: BaseException) -> str:
    return redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


def password_from_env(variable: str | None) -> str | None:
    """The state's password from `variable`; None (unset) leaves it to libpq: PGPASSWORD, ~/.pgpass."""
    return os.environ.get(variable) or None if variable else None
