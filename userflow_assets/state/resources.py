"""The code location's own DuckDB file (the work tables: staging, transform, plan) and the sync
state: in that same file, or in Postgres when `state_url` is set."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from userflow_assets.duckdb_files import open_file
from userflow_assets.state.postgres import PostgresState, password_from_env
from userflow_assets.state.store import DuckDBState, SyncState
from userflow_assets.state.writeback import LogWriteback
from userflow_assets.warehouse.source import password_from


class StateDatabase(DuckDBResource):
    """DuckDBResource whose file's folder is created on first use (DuckDB only creates the file),
    with a memory cap."""

    memory_limit: str = Field(
        default="1GB",
        description="DuckDB's memory cap on this file (it spills to disk beyond); DuckDB's own default "
        "is 80% of the machine.",
    )

    state_url: str | None = Field(
        default=None,
        description="postgresql://user@host:port/db of the sync state; unset keeps it in this DuckDB file. "
        "Never with a password: that comes from `state_password_env` (or libpq's PGPASSWORD).",
    )
    state_password_env: str | None = Field(
        default=None, description="The environment variable holding the state database's password."
    )
    log_retention_days: int = Field(default=30, description="Days the sync log keeps each request's outcome.")
    log_writeback_database: str | None = Field(
        default=None, description="log_writeback: the warehouse DuckDB file each sink appends its run's log to."
    )
    log_writeback_url: str | None = Field(
        default=None, description="log_writeback: the Postgres warehouse (postgresql://, no password) instead."
    )
    log_writeback_password_env: str | None = Field(
        default=None, description="log_writeback: the environment variable holding that warehouse's password."
    )
    log_writeback_schema: str = Field(default="userflow_sync", description="Schema of the warehouse's sync_log.")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own (own transactions and temp tables) on the file. The file is
        attached for the block and let go after it, unless another block still uses it."""
        with open_file(self.database, self.memory_limit, self.connection_config) as con:
            yield con

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open for the block: each connection in it is then a cursor on the open
        database, instead of attaching the file and checkpointing it at every close. Other
        processes wait for the file meanwhile, so hold it only around work that sends no request.
        Re-entrant."""
        with self.get_connection():
            yield

    def log_writeback(self) -> LogWriteback | None:
        """Where each sink appends its run's log (`log_writeback: true`), or None."""
        if self.log_writeback_url:
            password = password_from(self.log_writeback_password_env)
            return LogWriteback(self.log_writeback_schema, url=self.log_writeback_url, password=password)
        if self.log_writeback_database:
            return LogWriteback(self.log_writeback_schema, database=self.log_writeback_database)
        return None

    def ready_state(self) -> SyncState:
        """The sync state with its schema created or upgraded; what was done goes to the run's
        log (Dagster's logger, inside a step), so an upgrade in place is never silent."""
        state = self.state()
        for note in state.ensure_schema():
            dg.get_dagster_logger().info(note)
        return state

    def state(self) -> SyncState:
        """The sync state: in Postgres when `state_url` is set, else in this file (schema `sync`)."""
        if self.state_url:
            return PostgresState(self.state_url, password_from_env(self.state_password_env))
        return DuckDBState(self.get_connection)
