"""The code location's own DuckDB file: staging, transform, plan and sync state."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource


class StateDatabase(DuckDBResource):
    """DuckDBResource whose file's folder is created on first use (DuckDB only creates the file)."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
