"""Databricks SQL, through `databricks-sql-connector` (`pip install 'userflow-assets[databricks]'`).

URL: `databricks://WORKSPACE_HOST/HTTP_PATH?catalog=CATALOG&schema=SCHEMA`, the HTTP path as
the SQL warehouse's connection details show it (`/sql/1.0/warehouses/ID`); a personal access
token (or service principal's token) from the environment variable the spec names.
Parameters are Databricks' native named parameters (`:NAME`), bound by the server. Results
arrive as Arrow (`fetchmany_arrow`), BATCH_ROWS rows at a time.

Databricks has no read-only session: Unity Catalog grants keep the read a read (README).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from userflow_assets.warehouse.drivers.common import (
    BATCH_ROWS,
    SelectOneCheck,
    attempt,
    cannot_connect,
    keep_secret,
    parse_url,
    query_failed,
    run_streamed,
)
from userflow_assets.warehouse.params import Style, translate
from userflow_assets.warehouse.source import SourceError, count_and

DEFAULT_PORT = 443


def _errors() -> tuple[type, ...]:
    import databricks.sql
    import urllib3

    # The connector lets urllib3's errors through when the workspace cannot be reached.
    return (databricks.sql.Error, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class DatabricksSource(SelectOneCheck):
    host: str
    port: int
    http_path: str
    catalog: str | None
    schema: str | None
    token: str | None = field(repr=False)
    retry_seconds: int | None = None  # URL `connect_timeout`: how long the connector keeps retrying

    kind = "databricks"

    def describe(self) -> str:
        where = f"{self.host}:{self.port}{self.http_path}"
        return where + (f" (catalog {self.catalog})" if self.catalog else "")

    def connect_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "server_hostname": self.host,
            "http_path": self.http_path,
            "access_token": self.token,
            "catalog": self.catalog,
            "schema": self.schema,
            "_port": self.port,
            "enable_telemetry": False,
            "user_agent_entry": "userflow-assets",
        }
        if self.retry_seconds is not None:
            kwargs["_retry_stop_after_attempts_duration"] = self.retry_seconds
        return kwargs

    def _connect(self):
        import databricks.sql

        return attempt(
            lambda: databricks.sql.connect(**self.connect_kwargs()),
            lambda e: cannot_connect(self.kind, self.describe(), e),
            _errors(),
        )

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        translated = translate(sql, Style.COLON)
        bound = dict(zip(translated.names, translated.values(params), strict=True))
        failed = lambda e: query_failed(self.kind, self.describe(), e)
        conn = self._connect()
        cursor = conn.cursor()

        def first() -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
            cursor.execute(translated.sql, bound or None)
            table = cursor.fetchmany_arrow(BATCH_ROWS)
            return table.schema, batches(table)

        def batches(chunk: pa.Table) -> Iterator[pa.RecordBatch]:
            while chunk.num_rows:
                yield from chunk.to_batches()
                chunk = cursor.fetchmany_arrow(BATCH_ROWS)

        def close() -> None:
            cursor.close()
            conn.close()

        return run_streamed(first, close, failed, _errors())

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """Row count and an order-independent hash of every row."""
        return count_and("bit_xor(xxhash64(*))", source_sql)


def databricks_source(
    url: str, *, password: str | None = None, base_dir: Path | None = None
) -> DatabricksSource:
    keep_secret(password)
    parsed = parse_url(url, "databricks", {"catalog", "schema"}, None)
    if not parsed.path:
        raise SourceError("the databricks warehouse URL names no HTTP path: databricks://HOST/sql/1.0/warehouses/ID")
    return DatabricksSource(
        host=parsed.host,
        port=parsed.port or DEFAULT_PORT,
        http_path="/" + "/".join(parsed.path),
        catalog=parsed.options.get("catalog"),
        schema=parsed.options.get("schema"),
        token=password,
        retry_seconds=parsed.connect_timeout() if "connect_timeout" in parsed.options else None,
    )
