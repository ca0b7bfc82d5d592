"""The warehouse resource: which source the spec names, and the folder of source queries."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from userflow_assets.settings import project_path
from userflow_assets.warehouse.duckdb_source import DuckDBFileSource
from userflow_assets.warehouse.queries import SourceQuery, load_query
from userflow_assets.warehouse.source import Source, open_source
from userflow_assets.warehouse.staging import STAGING_SCHEMA, StagedTable, stage_rows

__all__ = ["STAGING_SCHEMA", "StagedTable", "WarehouseResource"]


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (a DuckDB file, or a `url`) and the folder of source queries run against it."""

    database: str | None = Field(
        default=None, description="Path of the warehouse DuckDB file; relative paths are from the project folder."
    )
    url: str | None = Field(
        default=None,
        description="Another warehouse: postgresql://user@host:5432/db, or duckdb: for files DuckDB reads.",
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the warehouse password (read at connect time)."
    )
    sql_dir: str = Field(
        default="sql", description="Folder holding the source queries (users.sql, groups.sql, events.sql)."
    )

    def database_path(self) -> Path:
        return project_path(self.database or "data/warehouse.duckdb")

    def source(self) -> Source:
        """The source to read; opened anew per read, so no connection outlives a step."""
        if self.url:
            return open_source(self.url, self.password_env, base_dir=project_path(self.sql_dir))
        return DuckDBFileSource(self.database_path())

    def load_query(self, file_name: str) -> SourceQuery:
        return load_query(project_path(self.sql_dir) / file_name)

    def stage(
        self, con: duckdb.DuckDBPyConnection, query: SourceQuery, table: str, since: datetime | None
    ) -> StagedTable:
        """Run `query` in the warehouse and keep its rows as `staging.<table>` in `con`'s database."""
        return stage_rows(con, self.source(), query.text, query.parameters(since), table, query.path)
