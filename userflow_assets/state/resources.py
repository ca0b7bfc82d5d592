"""The code location's own DuckDB file: staging, transform, plan and sync state."""

from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

# DuckDB takes 80% of the machine's memory by default; beyond this it spills to disk, so a
# million-user sync leaves room for everything else on a laptop.
DEFAULT_CONNECTION_CONFIG: dict[str, Any] = {"memory_limit": "1GB"}


class StateDatabase(DuckDBResource):
    """DuckDBResource whose file's folder is created on first use (DuckDB only creates the file)."""

    connection_config: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_CONNECTION_CONFIG),
        description="DuckDB settings for every connection; memory_limit caps memory before spilling to disk.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
