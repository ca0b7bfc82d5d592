"""Optional write-back of the sync log (`log_writeback: true`) into the user's warehouse.

At the end of each sink step, that run's log rows of the step's object type are appended to
`<schema>.sync_log` in the warehouse: a Postgres warehouse (through ADBC) or a DuckDB
warehouse file. The table is created if missing. Each write first deletes the rows of the
same run and object type, in the same transaction, so a step run again never duplicates.
In that transaction it also adds the rows of every earlier run of that object type still in
the state's log (within its retention) that no write-back has written (`sync.log_written`
marks those that have) and that the table lacks: a write-back that failed is filled in by the
next one that succeeds, and rows the user deleted from the table are not written again.

The warehouse is otherwise only read, in read-only sessions; this is the only writable
connection to it, opened for the write and closed after. A failed write-back never fails
the sync: the caller warns and shows the error in the sink's metadata.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as pg
import duckdb
import pyarrow as pa

from userflow_assets.duckdb_files import open_file
from userflow_assets.redaction import redact
from userflow_assets.sqltext import transaction
from userflow_assets.warehouse.postgres_source import server_message

SUPPORTED_SCHEMES = ("postgresql", "postgres")
TABLE = "sync_log"

_DUCKDB_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    run_id VARCHAR NOT NULL, object_type VARCHAR NOT NULL, record_id VARCHAR NOT NULL, action VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL, http_status INTEGER, error_code VARCHAR, error_message VARCHAR, attempts INTEGER,
    logged_at TIMESTAMP NOT NULL
)
"""
_POSTGRES_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    run_id text NOT NULL, object_type text NOT NULL, record_id text NOT NULL, action text NOT NULL,
    outcome text NOT NULL, http_status integer, error_code text, error_message text, attempts integer,
    logged_at timestamp NOT NULL
)
"""


class LoggedRuns(Protocol):
    """What a write-back reads of the state (`SyncState` has it)."""

    def unwritten_log_runs(self, object_type: str) -> set[str]: ...
    def mark_log_written(self, run_ids: Collection[str], object_type: str) -> None: ...
    def runs_log(self, run_ids: Collection[str], object_type: str) -> pa.Table: ...


class _Table(Protocol):
    """The warehouse's sync_log inside one open transaction, whichever the warehouse."""

    def present(self, object_type: str, run_ids: Collection[str]) -> set[str]: ...
    def replace(self, rows: pa.Table, run_id: str, object_type: str) -> None: ...


@dataclass(frozen=True)
class Written:
    """One write-back: the rows written, and how many earlier runs they filled in."""

    rows: int
    caught_up: int


class NotMarked(Exception):
    """The rows are in the warehouse, but marking their runs written in the state failed (the
    error is the cause). The next write-back finds those runs in the table and marks them."""

    def __init__(self, written: Written) -> None:
        super().__init__(f"{written.rows} rows written, their runs not marked written in the state")
        self.written = written


@dataclass(frozen=True)
class LogWriteback:
    """Where the log goes: a warehouse DuckDB file (`database`) or a Postgres `url` (no password)."""

    schema: str
    database: str | None = None
    url: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr or message

    @property
    def table(self) -> str:
        return f"{self.schema}.{TABLE}"

    def write(self, state: LoggedRuns, run_id: str, object_type: str) -> Written:
        """Replace the rows of (`run_id`, `object_type`) in the table with the state's, and add
        those of every earlier run the state logged but no write-back put in the table (one
        that failed), in one transaction; then mark them all written in the state.

        A run once written is never filled in again, so rows the user deletes from the table
        (a retention of their own, a person's data removed) stay deleted."""
        unwritten = state.unwritten_log_runs(object_type) - {run_id}
        written = 0
        with self._open() as table:
            # A run written before the state kept marks, or whose mark was lost with a failure
            # after the commit, is in the table already: not written twice. Only the runs the
            # state still logs are looked up: the table is the user's history and grows for ever.
            earlier = unwritten - table.present(object_type, unwritten)
            # One run's rows at a time: a full sync of a million users logs a million rows, and
            # several such runs to fill in must not be held at once.
            for each in (run_id, *sorted(earlier)):
                rows = state.runs_log({each}, object_type)
                table.replace(rows, each, object_type)  # an earlier run has no rows there to replace
                written += rows.num_rows
        try:
            state.mark_log_written({run_id, *unwritten}, object_type)
        except Exception as error:
            raise NotMarked(Written(written, len(earlier))) from error
        return Written(written, len(earlier))

    def _open(self) -> AbstractContextManager[_Table]:
        if self.url is not None:
            return self._postgres()
        return self._duckdb()

    @contextmanager
    def _duckdb(self) -> Iterator[_Table]:
        assert self.database is not None
        # Held for the write only, waiting while another process (a sync reading the warehouse) holds it.
        with open_file(self.database) as con, transaction(con):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            con.execute(_DUCKDB_TABLE.format(table=self.table))
            yield _DuckDBTable(con, self.table)

    @contextmanager
    def _postgres(self) -> Iterator[_Table]:
        with pg.connect(_writable_uri(self.url or "", self.password)) as con:
            with con.cursor() as cur:
                # CREATE SCHEMA needs CREATE on the database even when the schema exists: only when missing.
                cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = $1", parameters=(self.schema,))
                (exists,) = cur.fetchone()
                if not exists:
                    cur.execute(f'CREATE SCHEMA "{self.schema}"')
                # So does CREATE TABLE IF NOT EXISTS on the schema: a table an administrator made
                # beforehand, with rights on its rows only, is written as it is.
                cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2", parameters=(self.schema, TABLE))
                (exists,) = cur.fetchone()
                if not exists:
                    cur.execute(_POSTGRES_TABLE.format(table=self.table))
                _index_run_ids(cur, self.schema)
                yield _PostgresTable(cur, self.schema)
            con.commit()


@dataclass(frozen=True)
class _DuckDBTable:
    con: duckdb.DuckDBPyConnection
    table: str

    def present(self, object_type: str, run_ids: Collection[str]) -> set[str]:
        if not run_ids:  # the usual case, every earlier run marked written: the history is not scanned
            return set()
        sql = f"SELECT DISTINCT run_id FROM {self.table} WHERE object_type = ? AND list_contains(?, run_id)"
        return {run_id for (run_id,) in self.con.execute(sql, [object_type, sorted(run_ids)]).fetchall()}

    def replace(self, rows: pa.Table, run_id: str, object_type: str) -> None:
        self.con.execute(f"DELETE FROM {self.table} WHERE run_id = ? AND object_type = ?", [run_id, object_type])
        self.con.register("_log_rows", rows)
        try:
            self.con.execute(f"INSERT INTO {self.table} SELECT * FROM _log_rows")
        finally:
            self.con.unregister("_log_rows")


@dataclass(frozen=True)
class _PostgresTable:
    cur: Any
    schema: str

    def present(self, object_type: str, run_ids: Collection[str]) -> set[str]:
        if not run_ids:
            return set()
        wanted = sorted(run_ids)  # within the state's log retention: hundreds, not millions
        placeholders = ", ".join(f"${i}" for i in range(2, len(wanted) + 2))
        self.cur.execute(
            f"SELECT DISTINCT run_id FROM {self.schema}.{TABLE} WHERE object_type = $1 AND run_id IN ({placeholders})",
            parameters=(object_type, *wanted),
        )
        return {run_id for (run_id,) in self.cur.fetchall()}

    def replace(self, rows: pa.Table, run_id: str, object_type: str) -> None:
        self.cur.execute(
            f"DELETE FROM {self.schema}.{TABLE} WHERE run_id = $1 AND object_type = $2", parameters=(run_id, object_type)
        )
        if rows.num_rows:
            self.cur.adbc_ingest(TABLE, rows, mode="append", db_schema_name=self.schema)


def _index_run_ids(cur: Any, schema: str) -> None:
    """An index on run_id, so finding a run (to replace or to fill in) does not scan the whole
    history. Made when missing by a user who may (the table's owner); where the table belongs
    to someone else, the write-back goes on without it, only slower."""
    cur.execute(
        "SELECT pg_has_role(current_user, t.tableowner, 'USAGE'), "
        "EXISTS (SELECT 1 FROM pg_indexes AS i WHERE i.schemaname = t.schemaname AND i.tablename = t.tablename "
        "AND i.indexdef LIKE '%(run_id%') FROM pg_tables AS t WHERE t.schemaname = $1 AND t.tablename = $2",
        parameters=(schema, TABLE),
    )
    owned, indexed = cur.fetchone()
    if owned and not indexed:
        cur.execute(f'CREATE INDEX IF NOT EXISTS {TABLE}_run_id ON "{schema}".{TABLE} (run_id, object_type)')


def _writable_uri(url: str, password: str | None) -> str:
    """`url` with the password (if any), a connect timeout, and a session that may write even
    where the role defaults to read-only transactions (the README's reader role does)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if password:
        user = quote(parts.username or "", safe="")
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{user}:{quote(password, safe='')}@{parts.hostname or ''}{port}"
    query = dict(parse_qsl(parts.query))
    query["options"] = (query.get("options", "") + " -c default_transaction_read_only=off").strip()
    query.setdefault("connect_timeout", "10")
    query.setdefault("application_name", "userflow_assets_log")
    return urlunsplit(("postgresql", netloc, parts.path, urlencode(query, quote_via=quote), ""))


def failure_text(error: BaseException) -> str:
    """The error in one line (a Postgres error in the server's own words), without a registered secret."""
    if isinstance(error, adbc_driver_manager.Error):
        return server_message(error)
    text = str(error).strip()
    return redact(f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__)
