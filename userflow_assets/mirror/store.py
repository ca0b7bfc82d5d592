"""Writing the mirror into the warehouse: short connections, staged tables, one-transaction swaps.

Rows arrive a page at a time from the API. They are buffered up to `CHUNK_ROWS` per table
and appended to a staging table (`<schema>._load_<table>_<run>`) through a connection opened
for that chunk only, so the warehouse file is never held for the length of a slow API walk
and memory stays bounded whatever the number of users. When the walk is complete the
staging tables replace (or are merged into) the real ones in one transaction: a failed or
killed read leaves the previous tables as they were.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Self

import dagster as dg
import duckdb
import pandas as pd

from userflow_assets.duckdb_files import open_file
from userflow_assets.mirror.tables import Row, Table
from userflow_assets.settings import project_path
from userflow_assets.sqltext import ident, qualified_parts, transaction

CHUNK_ROWS = 5000


class MirrorDatabase(dg.ConfigurableResource):
    """The warehouse DuckDB file the mirror writes into, opened read-write for short spells."""

    database: str

    def path(self) -> Path:
        return project_path(self.database)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.path().parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-write connection, waiting while another process holds the file; the file is
        let go after the block."""
        return open_file(str(self.path()))


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def create_table_sql(name: str, table: Table) -> str:
    columns = ", ".join(f"{ident(c)} {t}" for c, t in table.columns)
    return f"CREATE TABLE {name} ({columns})"


class StagedTables:
    """Staging tables for one read; use as a context manager, then `replace()` or `merge()`.

    Leaving the block without either drops the staging tables and keeps the old ones.
    """

    def __init__(
        self, db: MirrorDatabase, schema: str, tables: Sequence[Table], run_id: str, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        self.db = db
        self.schema = schema
        self.tables = {t.name: t for t in tables}
        self.chunk_rows = chunk_rows
        self._tag = re.sub(r"[^0-9a-zA-Z]", "", run_id)[:12] or "run"
        self._buffers: dict[str, list[Row]] = {name: [] for name in self.tables}
        self.counts: dict[str, int] = {name: 0 for name in self.tables}
        self.chunks_written = 0
        self._done = False

    def staging(self, table: str) -> str:
        return qualified_parts(self.schema, f"_load_{table}_{self._tag}")

    def target(self, table: str) -> str:
        return qualified_parts(self.schema, table)

    def __enter__(self) -> Self:
        with self.db.connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
            for name, table in self.tables.items():
                self._drop_leftovers(con, name)
                con.execute(create_table_sql(self.staging(name), table))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            with self.db.connect() as con:
                for name in self.tables:
                    con.execute(f"DROP TABLE IF EXISTS {self.staging(name)}")

    def _drop_leftovers(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        # Staging tables of a read that was killed before it could clean up.
        leftovers = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ? AND starts_with(table_name, ?)",
            [self.schema, f"_load_{name}_"],
        ).fetchall()
        for (leftover,) in leftovers:
            con.execute(f"DROP TABLE IF EXISTS {qualified_parts(self.schema, leftover)}")

    def add(self, table: str, rows: Iterable[Row]) -> None:
        buffer = self._buffers[table]
        for row in rows:
            buffer.append(row)
            self.counts[table] += 1
        if len(buffer) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        pending = {name: rows for name, rows in self._buffers.items() if rows}
        if not pending:
            return
        with self.db.connect() as con:
            for name, rows in pending.items():
                table = self.tables[name]
                frame = pd.DataFrame(rows, columns=table.column_names, dtype=object)
                casts = ", ".join(f"CAST({ident(c)} AS {t})" for c, t in table.columns)
                con.register("_mirror_chunk", frame)
                try:
                    con.execute(f"INSERT INTO {self.staging(name)} SELECT {casts} FROM _mirror_chunk")
                finally:
                    con.unregister("_mirror_chunk")
                rows.clear()
        self.chunks_written += 1

    def replace(self) -> dict[str, int]:
        """Every staged table takes the place of its real table, all in one transaction."""
        self.flush()
        with self.db.connect() as con, transaction(con):
            for name in self.tables:
                con.execute(f"DROP TABLE IF EXISTS {self.target(name)}")
                con.execute(f"ALTER TABLE {self.staging(name)} RENAME TO {ident(name)}")
        self._done = True
        return self.totals()

    def merge(self, keys: Mapping[str, str], key_table: str, key_column: str) -> dict[str, int]:
        """Staged rows replace the rows they re-read, in one transaction.

        Rows of table `t` whose `keys[t]` is among the staged `key_table.key_column` values are
        deleted first, so a re-read object whose child rows vanished loses them too.
        """
        self.flush()
        staged_keys = f"(SELECT {ident(key_column)} FROM {self.staging(key_table)})"
        with self.db.connect() as con, transaction(con):
            for name, table in self.tables.items():
                if not table_exists(con, self.schema, name):
                    con.execute(create_table_sql(self.target(name), table))
                con.execute(f"DELETE FROM {self.target(name)} WHERE {ident(keys[name])} IN {staged_keys}")
                con.execute(f"INSERT INTO {self.target(name)} SELECT * FROM {self.staging(name)}")
            for name in self.tables:
                con.execute(f"DROP TABLE IF EXISTS {self.staging(name)}")
        self._done = True
        return self.totals()

    def totals(self) -> dict[str, int]:
        """Rows now in each real table."""
        with self.db.connect() as con:
            return {name: con.execute(f"SELECT count(*) FROM {self.target(name)}").fetchone()[0] for name in self.tables}
