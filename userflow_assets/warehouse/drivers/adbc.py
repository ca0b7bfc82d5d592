"""The one ADBC code path: Snowflake and BigQuery (and any ADBC driver whose dbapi module it is given).

Connect with the driver's database options, bind the query's parameters as one Arrow row,
and hand on the driver's own Arrow stream (`fetch_record_batch`), closing the connection
when the stream ends. The ADBC drivers return Arrow from their native formats, so no row
passes through Python.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from userflow_assets.warehouse.drivers.common import (
    SelectOneCheck,
    attempt,
    cannot_connect,
    query_failed,
    run_streamed,
)
from userflow_assets.warehouse.params import Style, Translated, translate


def _errors() -> tuple[type, ...]:
    import adbc_driver_manager

    # pyarrow errors too: the driver's stream surfaces a failure mid-read as one.
    return (adbc_driver_manager.Error, pa.ArrowException)


def bind_row(translated: Translated, params: Mapping[str, object]) -> pa.RecordBatch | None:
    """The parameters as a one-row batch: a column per marker, named for drivers that bind by name."""
    values = translated.values(params)
    if not values:
        return None
    return pa.RecordBatch.from_arrays([pa.array([v]) for v in values], names=list(translated.names))


@dataclass(frozen=True)
class AdbcSource(SelectOneCheck):
    """A warehouse reached through an ADBC driver; subclasses give the kind, style and checksum."""

    where: str
    dbapi_module: str  # e.g. "adbc_driver_snowflake.dbapi"
    db_kwargs: Mapping[str, str] = field(repr=False)  # holds the password or key
    statement_options: Mapping[str, str] = field(default_factory=dict)

    kind = "adbc"
    style = Style.QMARK

    def describe(self) -> str:
        return self.where

    def _connect(self):
        module = importlib.import_module(self.dbapi_module)
        # autocommit: every read is one statement; some drivers (BigQuery) have no transactions.
        return attempt(
            lambda: module.connect(db_kwargs=dict(self.db_kwargs), autocommit=True),
            lambda e: cannot_connect(self.kind, self.where, e),
            _errors(),
        )

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        translated = translate(sql, self.style)
        bound = bind_row(translated, params)
        conn = self._connect()
        cursor = conn.cursor()
        failed = lambda e: query_failed(self.kind, self.where, e)

        def close() -> None:
            cursor.close()
            conn.close()

        def execute() -> tuple[pa.Schema, pa.RecordBatchReader]:
            if self.statement_options:
                cursor.adbc_statement.set_options(**self.statement_options)
            cursor.execute(translated.sql, bound)
            reader = cursor.fetch_record_batch()
            return reader.schema, reader

        return run_streamed(execute, close, failed, _errors())

    def check(self) -> None:
        self.fetch("SELECT 1", {}).read_all()
