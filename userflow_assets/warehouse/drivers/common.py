"""What the warehouse driver modules share: their URL, their messages, and streamed results.

A message names the warehouse and where it is (`describe()`), quotes the driver, and has
every registered secret (the password, a key) replaced. A SourceError is raised outside the
`except` block that caught the driver's error, so no traceback chains back to a driver
exception whose text or arguments could hold a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from userflow_assets.redaction import redact, register_secret
from userflow_assets.warehouse.source import SourceError

# Rows per batch where a driver hands rows, not Arrow: bounded memory, few DuckDB appends.
BATCH_ROWS = 50_000
# Seconds to wait for a connection, where the driver lets us bound it (URL option `connect_timeout`).
CONNECT_TIMEOUT = 30
MESSAGE_LIMIT = 2_000


@dataclass(frozen=True)
class WarehouseUrl:
    """`scheme://user@host:port/path?options`, the password kept out (it comes from the environment)."""

    scheme: str
    user: str | None
    host: str
    port: int | None
    path: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)

    def connect_timeout(self) -> int:
        return int(self.options.get("connect_timeout", CONNECT_TIMEOUT))


def parse_url(url: str, scheme: str, options: Collection[str], path_parts: Sequence[str] | None) -> WarehouseUrl:
    """Parse a warehouse URL; `options` are the query keys allowed, `path_parts` name the path's
    segments (None: any number)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise SourceError(f"{scheme} warehouse URL is not valid: {error}") from None
    if parts.scheme != scheme:
        raise SourceError(f"expected a {scheme}:// warehouse URL, got {parts.scheme or 'no'} scheme")
    if parts.password is not None:
        raise SourceError(
            f"the {scheme} warehouse URL holds a password; give it in the environment variable named by password_env"
        )
    if not parts.hostname:
        raise SourceError(f"the {scheme} warehouse URL names no host")
    path = tuple(unquote(p) for p in parts.path.split("/") if p)
    if path_parts is not None and len(path) > len(path_parts):
        raise SourceError(f"the {scheme} warehouse URL path has more than {'/'.join(path_parts)}")
    given = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(given) - set(options) - {"connect_timeout"})
    if unknown:
        known = ", ".join(sorted({*options, "connect_timeout"}))
        raise SourceError(f"unknown {scheme} warehouse URL option {', '.join(unknown)}; known: {known}")
    if not given.get("connect_timeout", "1").isdigit():
        raise SourceError(f"{scheme} warehouse URL option connect_timeout must be whole seconds")
    user = unquote(parts.username) if parts.username else None
    return WarehouseUrl(scheme, user, parts.hostname, port, path, given)


def keep_secret(secret: str | None) -> None:
    """Hide `secret` from every message, log line and redacted text from now on."""
    if secret:
        register_secret(secret)


def _driver_text(error: BaseException) -> str:
    text = redact(str(error).strip() or type(error).__name__)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


def cannot_connect(kind: str, where: str, error: BaseException) -> SourceError:
    return SourceError(f"cannot connect to the {kind} warehouse at {where}: {_driver_text(error)}")


def query_failed(kind: str, where: str, error: BaseException) -> SourceError:
    return SourceError(f"the {kind} warehouse at {where} could not run the query: {_driver_text(error)}")


def attempt(call: Callable[[], object], fail: Callable[[BaseException], SourceError], errors: tuple[type, ...]):
    """`call()`, or the SourceError `fail` makes of a driver error, raised with no chained driver exception."""
    failure: BaseException | None = None
    try:
        return call()
    except errors as error:
        failure = error
    raise fail(failure)


def run_streamed(
    execute: Callable[[], tuple[pa.Schema, Iterable[pa.RecordBatch]]],
    close: Callable[[], None],
    fail: Callable[[BaseException], SourceError],
    errors: tuple[type, ...],
    stopped: Callable[[BaseException], SourceError] | None = None,
) -> pa.RecordBatchReader:
    """Every source's read: `execute` runs the query and gives its schema and batches; if it
    fails, the connection is closed at once, else it closes when the stream ends. `stopped`
    words an error part way through the rows (default: as `fail`)."""
    try:
        schema, batches = attempt(execute, fail, errors)
    except BaseException:
        close()
        raise
    return stream(schema, batches, close, stopped or fail, errors)


def stream(
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    close: Callable[[], None],
    fail: Callable[[BaseException], SourceError],
    errors: tuple[type, ...],
) -> pa.RecordBatchReader:
    """A reader over a driver's batches; `close` runs when it is exhausted, fails or is dropped.
    Its types are mapped once, for every source, when staged (`arrow_types.normalize_reader`)."""

    def guarded() -> Iterator[pa.RecordBatch]:
        failure: BaseException | None = None
        try:
            iterator = iter(batches)
            while True:
                try:
                    batch = next(iterator)
                except StopIteration:
                    return
                except errors as error:
                    failure = error
                    break
                yield batch
        finally:
            try:
                close()
            except errors:
                pass  # a connection already lost cannot be closed cleanly; the read's own outcome stands
        raise fail(failure)

    return pa.RecordBatchReader.from_batches(schema, guarded())


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return bytes(value) if isinstance(value, bytearray) else str(value).encode()


def column_array(values: Sequence[object], kind: pa.DataType) -> pa.Array:
    """One column of the Python values a DB-API driver returns, as `kind`."""
    if isinstance(kind, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(kind, column_array(values, kind.storage_type))
    if pa.types.is_string(kind):
        return pa.array([_as_text(v) for v in values], kind)
    if pa.types.is_binary(kind):
        return pa.array([_as_bytes(v) for v in values], kind)
    if pa.types.is_decimal(kind):
        return pa.array([None if v is None else Decimal(v) for v in values], kind)
    if pa.types.is_floating(kind):
        return pa.array([None if v is None else float(v) for v in values], kind)
    return pa.array(values, kind)


def rows_batch(rows: Sequence[Sequence[object]], schema: pa.Schema) -> pa.RecordBatch:
    """DB-API rows as one batch of `schema` (the driver's column types, mapped by its module)."""
    columns = list(zip(*rows, strict=True))
    return pa.RecordBatch.from_arrays([_column(col, f) for col, f in zip(columns, schema, strict=True)], schema=schema)


def _column(values: Sequence[object], target: pa.Field) -> pa.Array:
    failure: Exception | None = None
    try:
        return column_array(values, target.type)
    except (pa.ArrowException, ValueError, TypeError) as error:
        failure = error
    raise SourceError(f"column {target.name!r} cannot be read as {target.type}: {failure}")


class SelectOneCheck:
    """`check()` for a driver source: the cheapest query proves the credentials, the network
    and the session's settings, with the source's own messages."""

    def check(self) -> None:
        self.fetch("SELECT 1", {}).read_all()  # type: ignore[attr-defined]


def rollback_then_close(conn: Any) -> Callable[[], None]:
    """The end of a DB-API read: roll the read-only transaction back, then close, even if the
    rollback fails."""

    def close() -> None:
        try:
            conn.rollback()
        finally:
            conn.close()

    return close
