"""DuckDB as the warehouse: a DuckDB file (the embedded default), or files DuckDB reads.

- `DuckDBFileSource`: the `warehouse.database` file, attached read-only, so a warehouse in
  use by other readers is never locked for writing. Staging it copies inside DuckDB
  (`stage_into`), without rows passing through Arrow: about twice as fast (README, "Warehouses").
- `DuckDBFilesSource` (`warehouse.url: "duckdb:"`): an in-memory DuckDB with no tables of its
  own; the queries read Parquet, CSV or JSON files and globs (`read_parquet('users/*.parquet')`).
  Relative paths are taken from the folder of the queries.

Either way the user's SQL runs as a subquery, so a statement that writes (`COPY ... TO`,
`CREATE`) is a syntax error, never a write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from userflow_assets import failpoints
from userflow_assets.sqltext import attach_read_only, ident, literal, transaction
from userflow_assets.warehouse.source import SourceError, count_and

ALIAS = "warehouse"
BATCH_ROWS = 122_880  # DuckDB's row group: batches line up with its own vectors


def as_subquery(sql: str) -> str:
    # The newline keeps a trailing line comment in the file from swallowing the parenthesis.
    return f"SELECT * FROM (\n{sql}\n) AS uf_rows"


def _streamed(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
    """The result as a reader that closes `con` once read (or dropped)."""
    try:
        reader = con.sql(as_subquery(sql), params=dict(params)).to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as error:
        con.close()
        raise SourceError(str(error)) from error

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (duckdb.Error, pa.ArrowException, OSError) as error:  # raised while running, past binding
            raise SourceError(str(error)) from error
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def duckdb_checksum_sql(source_sql: str, columns: Sequence[str]) -> str:
    """Both DuckDB sources' probe: `hash` of the whole row is NULL-safe and order-free under bit_xor."""
    return count_and("bit_xor(hash(src))", source_sql)


class DuckDBFileSource:
    """A DuckDB warehouse file, only ever attached read-only."""

    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def _require_file(self) -> None:
        if not self.path.is_file():
            raise SourceError(
                f"Warehouse file not found: {self.path} (resource 'warehouse', setting 'database'; "
                "create the sample with `python -m userflow_assets.sample`)"
            )

    def _connect(self) -> duckdb.DuckDBPyConnection:
        self._require_file()
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone='UTC'")
            attach_read_only(con, self.path, ALIAS)
            con.execute(f"USE {ALIAS}")
        except duckdb.Error as error:
            con.close()
            raise SourceError(f"cannot open the warehouse {self.path}: {error}") from error
        return con

    def check(self) -> None:
        self._connect().close()

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        return _streamed(self._connect(), sql, params)

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        return duckdb_checksum_sql(source_sql, columns)

    def stage_into(
        self, con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object], target: str
    ) -> None:
        """`CREATE OR REPLACE TABLE target AS (sql)` in `con` itself, in one transaction."""
        self._require_file()
        home = con.execute("SELECT current_database()").fetchall()[0][0]
        try:
            attach_read_only(con, self.path, ALIAS)
        except duckdb.Error as error:
            raise SourceError(f"cannot open the warehouse {self.path}: {error}") from error
        try:
            con.execute(f"USE {ALIAS}")
            with transaction(con):
                con.execute(f"CREATE OR REPLACE TABLE {target} AS (\n{sql}\n)", dict(params))
                failpoints.reach("query")
        except duckdb.Error as error:
            raise SourceError(str(error)) from error
        finally:
            con.execute(f"USE {ident(home)}")
            con.execute(f"DETACH {ALIAS}")


class DuckDBFilesSource:
    """An in-memory DuckDB whose queries read files: `read_parquet`, `read_csv`, `read_json`, globs."""

    kind = "duckdb"

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def describe(self) -> str:
        return f"files read by DuckDB (relative to {self.base_dir})"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        con.execute(f"SET file_search_path = {literal(str(self.base_dir))}")
        return con

    def check(self) -> None:
        if not self.base_dir.is_dir():
            raise SourceError(f"the folder of the queries does not exist: {self.base_dir}")

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        return _streamed(self._connect(), sql, params)

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        return duckdb_checksum_sql(source_sql, columns)


def files_source(url: str, *, password: str | None = None, base_dir: Path | None = None) -> DuckDBFilesSource:
    """`duckdb:`: the files mode. A DuckDB file is named by `warehouse.database`, not by a URL."""
    rest = url.split(":", 1)[1]
    if rest.strip("/"):
        raise SourceError(
            f"warehouse.url {url!r}: write `duckdb:` for files DuckDB reads; a DuckDB file goes in warehouse.database"
        )
    return DuckDBFilesSource(base_dir or Path.cwd())
