"""The code location's own DuckDB file: the work tables (staging, transform, plan) and the sync state."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from userflow_assets.state.store import DuckDBState


class StateDatabase(DuckDBResource):
    """DuckDBResource whose file's folder is created on first use (DuckDB only creates the file),
    with a memory cap."""

    memory_limit: str = Field(
        default="1GB",
        description="DuckDB's memory cap on this file (it spills to disk beyond); DuckDB's own default "
        "is 80% of the machine.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # Set after connecting, not as connection config: DuckDB refuses a second connection to
        # the same file in one process whose config differs, and other code opens this file too.
        with super().get_connection() as con:
            con.execute("SET memory_limit = ?", [self.memory_limit])
            yield con

    def state(self) -> DuckDBState:
        """The sync state kept in this file (schema `sync`), beside the run's work tables."""
        return DuckDBState(self.get_connection)
