"""Warehouse assets: each source query's rows, staged in the code location's own DuckDB file."""


from dataclasses import dataclass

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from userflow_assets.warehouse.resources import WarehouseResource, quote_identifier

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 60


@dataclass(frozen=True)
class Source:
    name: str
    sql_file: str
    description: str


SOURCES = (
    Source("users", "users.sql", "Users with their company memberships, as sql/users.sql returns them."),
    Source("groups", "groups.sql", "Companies (Userflow groups), as sql/groups.sql returns them."),
    Source("events", "events.sql", "Product events, as sql/events.sql returns them."),
)


def markdown_preview(con: duckdb.DuckDBPyConnection, table: str, limit: int = PREVIEW_ROWS) -> str:
    cursor = con.execute(f"SELECT * FROM {table} LIMIT {int(limit)}")
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def build_warehouse_asset(source: Source) -> dg.AssetsDefinition:
    table = f"warehouse_{source.name}"

    @dg.asset(name=table, group_name="warehouse", kinds={"duckdb", "sql"}, description=source.description)
    def _warehouse_asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, sync_db: DuckDBResource
    ) -> dg.MaterializeResult:
        query = warehouse.load_query(source.sql_file)
        with sync_db.get_connection() as con:
            staged = warehouse.stage(con, query, table, since=None)
            preview = markdown_preview(con, f"staging.{quote_identifier(table)}")
        context.log.info(f"{query.path.name}: {staged.row_count} rows staged as {staged.table}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": staged.row_count,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, kind) for name, kind in staged.columns]
                ),
                "query": dg.MetadataValue.path(str(query.path)),
                "staged_table": staged.table,
                "cursor": "full read" if query.uses_cursor else "query has no $LAST_SYNC_TIMESTAMP",
                "preview": dg.MetadataValue.md(preview),
            }
        )

    return _warehouse_asset


warehouse_assets = [build_warehouse_asset(source) for source in SOURCES]
