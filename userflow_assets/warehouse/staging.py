"""Staging: a source's rows kept as `staging.<table>` in the run's DuckDB database.

Whatever the warehouse, its batches are written in one DuckDB transaction: a read that stops
part way (a dropped connection, a type that cannot map) leaves the table as the last complete
read left it, and records no read, so the next run reads the same rows again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from userflow_assets import failpoints
from userflow_assets.sqltext import qualified_parts, scratch_writes, transaction
from userflow_assets.warehouse.arrow_types import normalize_reader
from userflow_assets.warehouse.duckdb_source import DuckDBFileSource
from userflow_assets.warehouse.queries import QueryError
from userflow_assets.warehouse.source import Source, SourceError

STAGING_SCHEMA = "staging"
BATCH_VIEW = "uf_staging_batch"
PREFETCH = 2


@dataclass(frozen=True)
class StagedTable:
    table: str
    row_count: int
    columns: list[tuple[str, str]]
    source: str = ""  # where the rows came from (Source.describe(): no secret)


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
    home = con.execute("SELECT current_database()").fetchall()[0][0]
    target = qualified_parts(home, STAGING_SCHEMA, table)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA}")
    try:
        with scratch_writes(con):
            if isinstance(source, DuckDBFileSource):
                source.stage_into(con, sql, params, target)
            else:
                # One type mapping for every warehouse's Arrow (arrow_types).
                _stream_into(con, normalize_reader(source.fetch(sql, params)), target)
    except SourceError as error:
        raise QueryError(f"{origin}: {error}") from error
    row_count = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [home, STAGING_SCHEMA, table],
    ).fetchall()
    return StagedTable(f"{STAGING_SCHEMA}.{table}", row_count, columns, source.describe())


def _stream_into(con: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader, target: str) -> None:
    """DuckDB scans the batches as they arrive (never all rows at once), all in one transaction."""
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from prefetched(reader)
        except BaseException as error:  # re-raised as itself, not as DuckDB's wrapping of it
            failure.append(error)
            raise

    con.register(BATCH_VIEW, pa.RecordBatchReader.from_batches(reader.schema, batches()))
    try:
        with transaction(con):
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {BATCH_VIEW}")
            failpoints.reach("query")
    except duckdb.Error as error:
        if failure:
            raise failure[0] from None
        raise SourceError(f"the rows could not be staged: {error}") from error
    finally:
        con.unregister(BATCH_VIEW)


def prefetched(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """`reader`'s batches, the next ones read by a thread while DuckDB writes the last: the
    warehouse's transfer and DuckDB's writing overlap. At most PREFETCH batches wait."""
    waiting: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(PREFETCH)
    stop = threading.Event()

    def offer(item: pa.RecordBatch | BaseException | None) -> bool:
        """Put `item` once there is room; False if the consumer stopped meanwhile."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in reader:
                if not offer(batch):
                    return
            offer(None)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            offer(error)

    thread = threading.Thread(target=read, name="userflow-staging-read", daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
