"""Warehouse assets: each source query's rows, staged in the code location's own DuckDB file."""

import hashlib
from datetime import timedelta

import dagster as dg
import duckdb

from userflow_assets import recovery
from userflow_assets.settings import SHIPPED, Names
from userflow_assets.sqltext import ident, md_table
from userflow_assets.state.resources import StateDatabase
from userflow_assets.state.types import utcnow
from userflow_assets.warehouse.resources import WarehouseResource

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 60


class WarehouseReadConfig(dg.Config):
    full_refresh: bool = False
    """Read every row, as on the first run, instead of the rows changed since the last sync."""


def markdown_preview(con: duckdb.DuckDBPyConnection, table: str, limit: int = PREVIEW_ROWS) -> str:
    cursor = con.execute(f"SELECT * FROM {table} LIMIT {int(limit)}")
    return md_table([d[0] for d in cursor.description], cursor.fetchall(), PREVIEW_CELL_CHARS)


def build_warehouse_asset(
    object_type: str,
    sql_file: str,
    late_arrival: timedelta,
    spec_json: str,
    description: str,
    names: Names = SHIPPED,
    kind: str = "duckdb",
) -> dg.AssetsDefinition:
    """`warehouse_<object>s`: the query's rows as they are, read incrementally.

    `$LAST_SYNC_TIMESTAMP` is the start of the last read whose rows were all settled,
    minus `late_arrival` for rows that land in the warehouse late; the first run and a
    `full_refresh` run read everything, and so does the first run after the object's spec
    (`spec_json`) or its query changed.
    """
    table = f"warehouse_{object_type}s"

    @dg.asset(
        name=table,
        key_prefix=names.key_prefix,
        group_name=names("warehouse"),
        kinds={kind, "sql"},  # the warehouse read: duckdb, postgres, snowflake, ...
        description=description,
        required_resource_keys=names.resource_keys("warehouse", "sync_db"),
    )
    def _warehouse_asset(context: dg.AssetExecutionContext, config: WarehouseReadConfig) -> dg.MaterializeResult:
        warehouse: WarehouseResource = names.resource(context, "warehouse")
        sync_db: StateDatabase = names.resource(context, "sync_db")
        # Step one of every sync run, before reading: the warehouse steps run before any step
        # of the API pool, and a run killed outright still holds its slot, so this run would
        # wait for it forever.
        recovered = recovery.free_pool_slots_of_dead_runs(context)
        query = warehouse.load_query(sql_file)
        with sync_db.held():
            state = sync_db.ready_state()
            spec_hash = hashlib.md5((spec_json + "\n" + query.text).encode()).hexdigest()
            last = None if config.full_refresh else state.cursor(object_type, spec_hash)
            since = last - late_arrival if last else None
            read_started_at = utcnow()
            with sync_db.get_connection() as con:
                staged = warehouse.stage(con, query, table, since=since)
                preview = markdown_preview(con, f"staging.{ident(table)}")
            state.record_read(object_type, read_started_at, since, spec_hash, context.run.run_id)
        if not query.uses_cursor:
            cursor_text = "query has no $LAST_SYNC_TIMESTAMP: full read"
        else:
            cursor_text = f"rows changed after {since.isoformat()}" if since else "full read"
        context.log.info(f"{query.path.name}: {staged.row_count} rows staged as {staged.table} ({cursor_text})")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": staged.row_count,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, kind) for name, kind in staged.columns]
                ),
                "query": dg.MetadataValue.path(str(query.path)),
                "staged_table": staged.table,
                "warehouse": staged.source,
                "cursor": cursor_text,
                "full_refresh": config.full_refresh,
                "preview": dg.MetadataValue.md(preview),
                **(
                    {"recovered_runs": dg.MetadataValue.md("\n".join(f"- {r.describe()}" for r in recovered))}
                    if recovered
                    else {}
                ),
            }
        )

    return _warehouse_asset
