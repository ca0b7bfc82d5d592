"""PostgreSQL as the warehouse, through the ADBC driver (the `postgres` extra).

Read-only: every connection starts with `default_transaction_read_only = on`, so a query
that writes is refused by the server itself.

Streaming: ADBC streams a result (binary COPY, in batches) only for a statement without
bound parameters; with parameters it holds the whole result in memory first. So each
`$NAME` is bound as a real parameter of `set_config('userflow.name', $1, false)` on the
session, and the query reads it as `current_setting('userflow.name')::<type>`: the value
never enters the SQL text, and the rows stream.

Types: staging maps the driver's Arrow as for every warehouse (`arrow_types`); this module
only refuses, before the first row, a column that cannot be staged (`refuse_unmappable`: an
anonymous `record`, or a type such as `inet` that arrives in the driver's binary format), an
error naming the column and its type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as pg_dbapi
import pyarrow as pa

from userflow_assets.redaction import redact
from userflow_assets.warehouse.drivers.common import attempt, run_streamed
from userflow_assets.warehouse.params import rewrite
from userflow_assets.warehouse.source import SourceError, count_and, redact_url

SETTING_PREFIX = "userflow."
# Session settings every connection starts with: read-only, and timestamps without zone read as UTC.
SESSION_OPTIONS = "-c default_transaction_read_only=on -c TimeZone=UTC"
# What the driver raises while a result streams: its own errors, Arrow's, a lost socket.
READ_ERRORS = (adbc_driver_manager.Error, pa.ArrowException, OSError)
# Field metadata the driver sets: the column's Postgres type.
PG_TYPE = b"POSTGRESQL:type"


def _pg_type(value: object) -> str:
    if isinstance(value, datetime):
        return "timestamptz" if value.tzinfo else "timestamp"
    if isinstance(value, date):
        return "date"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    return "text"


def _pg_text(value: object) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def bind_as_settings(sql: str, params: Mapping[str, object]) -> tuple[str, str | None, list[str]]:
    """`sql` reading each `$NAME` from a session setting, and the statement (with its bound
    values) that sets them; `None` when `params` is empty."""
    casts = {name.upper(): _pg_type(value) for name, value in params.items()}

    def reader(name: str) -> str:
        if name.upper() not in casts:
            raise SourceError(f"parameter ${name} has no value")
        return f"(current_setting('{SETTING_PREFIX}{name.lower()}')::{casts[name.upper()]})"

    text = rewrite(sql, reader)
    if not params:
        return text, None, []
    names = list(params)
    setter = "SELECT " + ", ".join(
        f"set_config('{SETTING_PREFIX}{name.lower()}', ${i}, false)" for i, name in enumerate(names, start=1)
    )
    return text, setter, [_pg_text(params[n]) for n in names]


def connection_uri(url: str, password: str | None) -> str:
    """`url` with the password (if any), the session options and a connect timeout."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        user = netloc.rsplit("@", 1)[0].split(":", 1)[0] if "@" in netloc else ""
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}:{quote(password, safe='')}@{host}"
    query = dict(parse_qsl(parts.query))
    query["options"] = (query.get("options", "") + " " + SESSION_OPTIONS).strip()
    query.setdefault("connect_timeout", "10")
    query.setdefault("application_name", "userflow_assets")
    return urlunsplit(("postgresql", netloc, parts.path, urlencode(query, quote_via=quote), ""))


def server_message(error: BaseException) -> str:
    """The server's (or libpq's) own words from an ADBC error, without the driver's wrapping."""
    text = str(error)
    found = re.search(r"(?:ERROR|FATAL):\s+(.*)", text)
    if found:
        message = found.group(1).strip()
    else:
        message = re.sub(r"^([A-Z_]+: )?\[libpq\] (Failed to connect: )?", "", text).split("\n")[0].strip()
    state = getattr(error, "sqlstate", None) or (re.search(r"SQLSTATE: (\w+)", text) or [None, None])[1]
    return redact(f"{message} (SQLSTATE {state})" if state else message)


def _cannot_stage(where: str, field: pa.Field, type_name: str, advice: str) -> SourceError:
    return SourceError(
        f'{where}: column "{field.name}" has the PostgreSQL type {type_name}, which cannot be staged; {advice}'
    )


def refuse_unmappable(schema: pa.Schema, where: str) -> None:
    """Refuse, before the first row, what the driver cannot read or sends only in its own wire format."""
    for field in schema:
        type_name = (field.metadata or {}).get(PG_TYPE, b"").decode()
        if type_name in ("record", "_record"):
            # The driver cannot read an anonymous row's fields: it would fail on the first row.
            advice = "select its fields as columns, or cast it to a named composite type"
            raise _cannot_stage(where, field, type_name, advice)
        kind = field.type
        opaque = isinstance(kind, pa.OpaqueType)
        if opaque and kind.type_name != "numeric" and not pa.types.is_string(kind.storage_type):
            # Its bytes are the driver's binary COPY format (e.g. inet), meaningless once staged.
            advice = f'cast it in the query (for example "{field.name}"::text)'
            raise _cannot_stage(where, field, kind.type_name, advice)


class PostgresSource:
    """A PostgreSQL database, read through ADBC in read-only sessions."""

    kind = "postgres"

    def __init__(self, url: str, password: str | None) -> None:
        self.url = url
        self._password = password

    def describe(self) -> str:
        parts = urlsplit(self.url)
        user = f"{parts.username}@" if parts.username else ""
        return f"postgres {user}{parts.hostname}:{parts.port or 5432}{parts.path}"

    def __repr__(self) -> str:
        return f"PostgresSource({self.describe()})"

    def _connect(self) -> pg_dbapi.Connection:
        return attempt(
            lambda: pg_dbapi.connect(connection_uri(self.url, self._password)),
            lambda error: SourceError(f"cannot connect to the {self.describe()}: {server_message(error)}"),
            (adbc_driver_manager.Error,),
        )

    def check(self) -> None:
        with self._connect() as con, con.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        text, setter, values = bind_as_settings(sql, params)
        con = self._connect()
        cursor = con.cursor()

        def execute() -> tuple[pa.Schema, pa.RecordBatchReader]:
            if setter is not None:
                cursor.execute(setter, parameters=values)
                cursor.fetchall()
            cursor.execute(text)
            reader = cursor.fetch_record_batch()
            refuse_unmappable(reader.schema, self.describe())
            return reader.schema, reader

        def close() -> None:
            cursor.close()
            con.close()

        # `close` holds the cursor as long as the stream: the driver ends the stream once its cursor is collected.
        return run_streamed(execute, close, self._failed, READ_ERRORS, stopped=self._stopped)

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """The row's text, hashed: 64 bits of its md5 as a bigint, XORed (order-free, NULL-safe)."""
        return count_and("bit_xor(('x' || left(md5(src::text), 16))::bit(64)::bigint)", source_sql)

    def _failed(self, error: BaseException) -> SourceError:
        return SourceError(f"{self.describe()}: {server_message(error)}")

    def _stopped(self, error: BaseException) -> SourceError:
        return SourceError(f"{self.describe()}: the read stopped part way: {server_message(error)}")


def postgres_source(url: str, *, password: str | None = None, base_dir: Path | None = None) -> PostgresSource:
    if urlsplit(url).password is not None:
        raise SourceError(
            f"warehouse.url {redact_url(url)!r} has a password in it; put it in an environment variable "
            "and name that variable in warehouse.password_env"
        )
    return PostgresSource(url, password)
