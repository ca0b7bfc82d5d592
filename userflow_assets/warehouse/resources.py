"""The warehouse: a DuckDB file the code location only ever reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from userflow_assets import failpoints
from userflow_assets.settings import project_path
from userflow_assets.sqltext import attach_read_only, ident, qualified_parts, transaction
from userflow_assets.warehouse.queries import QueryError, SourceQuery, load_query

STAGING_SCHEMA = "staging"


@dataclass(frozen=True)
class StagedTable:
    table: str
    row_count: int
    columns: list[tuple[str, str]]


class WarehouseResource(dg.ConfigurableResource):
    """A DuckDB warehouse file and the folder of source queries run against it."""

    database: str = Field(description="Path of the warehouse DuckDB file; relative paths are from the project folder.")
    sql_dir: str = Field(
        default="sql", description="Folder holding the source queries (users.sql, groups.sql, events.sql)."
    )

    def database_path(self) -> Path:
        return project_path(self.database)

    def load_query(self, file_name: str) -> SourceQuery:
        return load_query(project_path(self.sql_dir) / file_name)

    def stage(
        self, con: duckdb.DuckDBPyConnection, query: SourceQuery, table: str, since: datetime | None
    ) -> StagedTable:
        """Run `query` in the warehouse and keep its rows as `staging.<table>` in `con`'s database.

        The warehouse is attached read-only, so the copy happens inside DuckDB without rows
        passing through Python, and a warehouse in use by other readers is never locked for writing.
        """
        path = self.database_path()
        if not path.is_file():
            raise QueryError(
                f"Warehouse file not found: {path} (resource 'warehouse', setting 'database'; "
                "create the sample with `python -m userflow_assets.sample`)"
            )
        home = con.execute("SELECT current_database()").fetchone()[0]
        target = qualified_parts(home, STAGING_SCHEMA, table)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA}")
        attach_read_only(con, path, "warehouse")
        try:
            con.execute("USE warehouse")
            # The newline keeps a trailing line comment in the file from swallowing the parenthesis.
            with transaction(con):
                con.execute(f"CREATE OR REPLACE TABLE {target} AS (\n{query.text}\n)", query.parameters(since))
                failpoints.reach("query")
        except duckdb.Error as error:
            raise QueryError(f"{query.path}: {error}") from error
        finally:
            con.execute(f"USE {ident(home)}")
            con.execute("DETACH warehouse")
        row_count = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [home, STAGING_SCHEMA, table],
        ).fetchall()
        return StagedTable(table=f"{STAGING_SCHEMA}.{table}", row_count=row_count, columns=columns)
