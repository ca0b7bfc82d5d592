"""Staging: a source's rows kept as `staging.<table>` in the run's DuckDB database.

Whatever the warehouse, its batches are written in one DuckDB transaction: a read that stops
part way (a dropped connection, a type that cannot map) leaves the table as the last complete
read left it, and records no read, so the next run reads the same rows again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from userflow_assets import failpoints
from userflow_assets.sqltext import qualified_parts, transaction
from userflow_assets.warehouse.duckdb_source import DuckDBFileSource
from userflow_assets.warehouse.queries import QueryError
from userflow_assets.warehouse.source import Source, SourceError

STAGING_SCHEMA = "staging"
BATCH_VIEW = "uf_staging_batch"


@dataclass(frozen=True)
class StagedTable:
    table: str
    row_count: int
    columns: list[tuple[str, str]]


def stage_rows(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    sql: str,
    params: Mapping[str, object],
    table: str,
    origin: Path | str,
) -> StagedTable:
    """Run `sql` in `source` and keep its rows as `staging.<table>` in `con`'s database.

    A DuckDB warehouse file is copied inside DuckDB; any other source streams its Arrow
    batches in. Errors name `origin` (the SQL file) and quote the warehouse's own message.
    """
    home = con.execute("SELECT current_database()").fetchone()[0]
    target = qualified_parts(home, STAGING_SCHEMA, table)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA}")
    try:
        if isinstance(source, DuckDBFileSource):
            source.stage_into(con, sql, params, target)
        else:
            _stream_into(con, source.fetch(sql, params), target)
    except SourceError as error:
        raise QueryError(f"{origin}: {error}") from error
    row_count = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [home, STAGING_SCHEMA, table],
    ).fetchall()
    return StagedTable(table=f"{STAGING_SCHEMA}.{table}", row_count=row_count, columns=columns)


def _stream_into(con: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader, target: str) -> None:
    """Each batch appended as it arrives (never all rows at once), all in one transaction."""
    with transaction(con):
        _insert(con, f"CREATE OR REPLACE TABLE {target} AS", pa.Table.from_batches([], reader.schema))
        for batch in reader:
            _insert(con, f"INSERT INTO {target}", pa.Table.from_batches([batch]))
        failpoints.reach("query")


def _insert(con: duckdb.DuckDBPyConnection, statement: str, rows: pa.Table) -> None:
    con.register(BATCH_VIEW, rows)
    try:
        con.execute(f"{statement} SELECT * FROM {BATCH_VIEW}")
    except duckdb.Error as error:
        raise SourceError(f"the rows could not be staged: {error}") from error
    finally:
        con.unregister(BATCH_VIEW)
