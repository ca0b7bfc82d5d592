"""Redshift, through `redshift_connector` (`pip install 'userflow-assets[redshift]'`).

URL: `redshift://USER@HOST:5439/DATABASE`; the password from the environment variable the
spec names. `ssl=false` only for a tunnel that is itself encrypted.

Not the ADBC Postgres driver: Redshift speaks an older Postgres protocol without binary
COPY, which that driver needs. redshift_connector reads a whole result into memory on
`execute`, so the query runs as a cursor (`DECLARE ... CURSOR`) inside a `READ ONLY`
transaction and is fetched 1,000 rows at a time (the most a single-node cluster allows),
each BATCH_ROWS becoming one Arrow batch. Redshift materialises a cursor's result on its
leader node; that is the price of not holding it all here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from userflow_assets.warehouse.arrow_types import JSON, numeric_from_typmod
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

CURSOR = "userflow_read"
FETCH_ROWS = 1_000
DEFAULT_PORT = 5439

# Postgres/Redshift type OID -> Arrow type; any other type is read as its text.
OID_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", "UTC"),
    17: pa.binary(),
    6551: pa.binary(),  # VARBYTE
    114: JSON,
    3802: JSON,
    4000: JSON,  # SUPER, sent as JSON text
}
NUMERIC_OID = 1700


def numeric_type(type_modifier: int) -> pa.DataType:
    """NUMERIC(p, s) from its type modifier; an unconstrained NUMERIC as DOUBLE, as from Postgres."""
    return numeric_from_typmod(type_modifier) or pa.float64()


def arrow_schema(row_desc: Sequence[Mapping[str, object]], names: Sequence[str]) -> pa.Schema:
    """The Arrow schema of a result, from the protocol's row description."""
    fields = []
    for name, col in zip(names, row_desc, strict=True):
        oid = int(col["type_oid"])
        kind = numeric_type(int(col.get("type_modifier", -1))) if oid == NUMERIC_OID else OID_TYPES.get(oid, pa.string())
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _errors() -> tuple[type, ...]:
    import redshift_connector

    # OSError: a socket that fails mid-fetch surfaces as one.
    return (redshift_connector.Error, OSError)


@dataclass(frozen=True)
class RedshiftSource(SelectOneCheck):
    host: str
    port: int
    database: str
    user: str | None
    password: str | None = field(repr=False)
    ssl: bool = True
    connect_timeout: int = 30

    kind = "redshift"

    def describe(self) -> str:
        return f"{self.host}:{self.port} (database {self.database})"

    def _connect(self):
        import redshift_connector

        def connect():
            conn = redshift_connector.connect(
                host=self.host,
                port=self.port,
                database=self.database,
                user=self.user,
                password=self.password or "",
                ssl=self.ssl,
                timeout=self.connect_timeout,
                application_name="userflow-assets",
            )
            conn.autocommit = True  # the READ ONLY transaction is begun explicitly, not by the driver
            return conn

        return attempt(connect, lambda e: cannot_connect(self.kind, self.describe(), e), _errors())

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        translated = translate(sql, Style.QMARK)
        values = translated.values(params)
        failed = lambda e: query_failed(self.kind, self.describe(), e)
        conn = self._connect()
        cursor = conn.cursor()
        cursor.paramstyle = "qmark"

        def declare() -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
            cursor.execute("BEGIN READ ONLY")
            cursor.execute(f"DECLARE {CURSOR} NO SCROLL CURSOR FOR\n{translated.sql}", values or None)
            # The first FETCH tells the columns; its rows start the first batch.
            cursor.execute(f"FETCH FORWARD {FETCH_ROWS} FROM {CURSOR}")
            # The protocol's row description: `description` leaves out NUMERIC's precision and scale.
            schema = arrow_schema(cursor.ps["row_desc"], [d[0] for d in cursor.description or ()])
            return schema, batches(schema)

        def batches(schema: pa.Schema) -> Iterator[pa.RecordBatch]:
            rows = list(cursor.fetchall())
            more = bool(rows)
            while more:
                cursor.execute(f"FETCH FORWARD {FETCH_ROWS} FROM {CURSOR}")
                chunk = cursor.fetchall()
                more = bool(chunk)
                rows.extend(chunk)
                if rows and (len(rows) >= BATCH_ROWS or not more):
                    yield rows_batch(rows, schema)
                    rows = []

        close = rollback_then_close(conn)
        return run_streamed(declare, close, failed, _errors())

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """Row count and an order-independent sum of row hashes (Redshift has no BIT_XOR aggregate)."""
        cells = " || ',' || ".join(f"COALESCE(QUOTE_LITERAL({_quote(c)}::VARCHAR), 'NULL')" for c in columns) or "''"
        return count_and(f"SUM(STRTOL(LEFT(MD5({cells}), 15), 16)::DECIMAL(38, 0))", source_sql)


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def redshift_source(
    url: str, *, password: str | None = None, base_dir: Path | None = None
) -> RedshiftSource:
    keep_secret(password)
    parsed = parse_url(url, "redshift", {"ssl"}, ("database",))
    database = parsed.path[0] if parsed.path else "dev"
    return RedshiftSource(
        host=parsed.host,
        port=parsed.port or DEFAULT_PORT,
        database=database,
        user=parsed.user,
        password=password,
        ssl=parsed.options.get("ssl", "true").lower() != "false",
        connect_timeout=parsed.connect_timeout(),
    )
