"""MySQL (and MariaDB), through `mysql-connector-python` (`pip install 'userflow-assets[mysql]'`).

URL: `mysql://USER@HOST:3306/DATABASE`; the password from the environment variable the spec
names. `ssl_disabled=true` only for a tunnel that is itself encrypted.

The driver: Oracle's connector binds parameters server-side (a prepared statement, `?`),
where PyMySQL and mysqlclient paste escaped values into the text; and its prepared cursor is
unbuffered, so rows come off the socket as they are fetched, BATCH_ROWS per Arrow batch.
ConnectorX returns Arrow but takes no parameters at all. The read runs in a
`READ ONLY` transaction with the session in UTC, so TIMESTAMP columns arrive in UTC.

MySQL's driver does not report a DECIMAL's scale, so DECIMAL arrives as DOUBLE; cast it to
CHAR in the query to keep every digit, or to SIGNED for an integer ID.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from userflow_assets.warehouse.arrow_types import JSON
from userflow_assets.warehouse.drivers.common import (
    BATCH_ROWS,
    SelectOneCheck,
    attempt,
    cannot_connect,
    keep_secret,
    parse_url,
    query_failed,
    rollback_then_close,
    rows_batch,
    run_streamed,
)
from userflow_assets.warehouse.params import Style, translate
from userflow_assets.warehouse.source import count_and

DEFAULT_PORT = 3306
UNSIGNED_FLAG = 32
BINARY_CHARSET = 63

# mysql.connector.constants.FieldType code -> Arrow type.
_INTEGER = {1, 2, 3, 9, 13}  # TINY, SHORT, LONG, INT24, YEAR
_TEXT_OR_BLOB = {15, 249, 250, 251, 252, 253, 254}  # VARCHAR, *BLOB/*TEXT, VAR_STRING, STRING
TYPES: dict[int, pa.DataType] = {
    0: pa.float64(),  # DECIMAL
    246: pa.float64(),  # NEWDECIMAL
    4: pa.float64(),  # FLOAT
    5: pa.float64(),  # DOUBLE
    6: pa.null(),
    7: pa.timestamp("us"),  # TIMESTAMP, in the session's UTC
    12: pa.timestamp("us"),  # DATETIME
    10: pa.date32(),
    14: pa.date32(),
    11: pa.duration("us"),  # TIME is a span (-838:59:59 .. 838:59:59), not a time of day
    245: JSON,
}


def arrow_type(column: Sequence[object]) -> pa.DataType:
    """The Arrow type of one `cursor.description` entry (name, type code, ..., flags, charset)."""
    code, flags = int(column[1]), int(column[7] or 0)
    charset = column[8] if len(column) > 8 else None
    if code == 8:  # LONGLONG
        return pa.uint64() if flags & UNSIGNED_FLAG else pa.int64()
    if code in _INTEGER:
        return pa.int64()
    if code in _TEXT_OR_BLOB:
        return pa.binary() if charset == BINARY_CHARSET else pa.string()
    if code == 16:  # BIT(n) arrives as an integer
        return pa.uint64()
    return TYPES.get(code, pa.string())  # ENUM, SET, GEOMETRY, VECTOR...: their text


def arrow_schema(description: Sequence[Sequence[object]]) -> pa.Schema:
    return pa.schema([pa.field(str(column[0]), arrow_type(column)) for column in description])


def _errors() -> tuple[type, ...]:
    import mysql.connector

    return (mysql.connector.Error, OSError)


@dataclass(frozen=True)
class MySQLSource(SelectOneCheck):
    host: str
    port: int
    database: str | None
    user: str | None
    password: str | None = field(repr=False)
    ssl_disabled: bool = False
    connect_timeout: int = 30

    kind = "mysql"

    def describe(self) -> str:
        return f"{self.host}:{self.port}" + (f" (database {self.database})" if self.database else "")

    def _connect(self):
        import mysql.connector

        def connect():
            conn = mysql.connector.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password or "",
                database=self.database,
                connection_timeout=self.connect_timeout,
                ssl_disabled=self.ssl_disabled,
                time_zone="+00:00",
            )
            # As SQL, not start_transaction(readonly=True): that refuses MariaDB by its version string.
            with conn.cursor() as cursor:
                cursor.execute("START TRANSACTION READ ONLY")
            return conn

        return attempt(connect, lambda e: cannot_connect(self.kind, self.describe(), e), _errors())

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        translated = translate(sql, Style.QMARK)
        values = translated.values(params)
        failed = lambda e: query_failed(self.kind, self.describe(), e)
        conn = self._connect()
        cursor = conn.cursor(prepared=True)

        def execute() -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
            cursor.execute(translated.sql, tuple(values))
            schema = arrow_schema(cursor.description or ())
            return schema, batches(schema)

        def batches(schema: pa.Schema) -> Iterator[pa.RecordBatch]:
            while rows := cursor.fetchmany(BATCH_ROWS):
                yield rows_batch(rows, schema)

        close = rollback_then_close(conn)
        return run_streamed(execute, close, failed, _errors())

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """Row count and an order-independent XOR of row hashes; QUOTE tells NULL from 'NULL'."""
        cells = ", ".join(f"QUOTE({_quote(c)})" for c in columns) or "''"
        row_hash = f"CAST(CONV(LEFT(MD5(CONCAT_WS(',', {cells})), 16), 16, 10) AS UNSIGNED)"
        return count_and(f"BIT_XOR({row_hash})", source_sql)


def _quote(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def mysql_source(
    url: str, *, password: str | None = None, base_dir: Path | None = None
) -> MySQLSource:
    keep_secret(password)
    parsed = parse_url(url, "mysql", {"ssl_disabled"}, ("database",))
    return MySQLSource(
        host=parsed.host,
        port=parsed.port or DEFAULT_PORT,
        database=parsed.path[0] if parsed.path else None,
        user=parsed.user,
        password=password,
        ssl_disabled=parsed.options.get("ssl_disabled", "false").lower() == "true",
        connect_timeout=parsed.connect_timeout(),
    )
