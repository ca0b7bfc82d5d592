"""The source interface: where the user's SQL runs, and how its rows travel (Arrow batches).

Every read of the warehouse goes through a `Source`: the users, groups and events queries,
the backfill's slice, the change sensor's probes. A query's text keeps the project's own
parameter style (`$LAST_SYNC_TIMESTAMP`); each source binds it natively for its warehouse,
never by pasting the value. The rows arrive as a `pyarrow.RecordBatchReader` and are staged
into the run's DuckDB database; nothing after staging knows where they came from.

Which source a spec names is decided by the warehouse URL's scheme (`SCHEMES`). Each
implementation lives in its own module, imported only when used, so a warehouse whose driver
is an optional extra costs nothing to those who do not use it, and a missing driver says
which extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import pyarrow as pa

from userflow_assets.redaction import register_secret


class SourceError(RuntimeError):
    """The warehouse could not be reached or could not run a query; the message says which and why,
    and never carries a password."""


@runtime_checkable
class Source(Protocol):
    """One warehouse connection setting, opened per read; read-only where the warehouse allows."""

    kind: str  # "duckdb", "postgres", "snowflake", ...

    def describe(self) -> str:
        """Where the rows come from, for messages and metadata: host and database or file; no secret."""
        ...

    def check(self) -> None:
        """Connect and run a trivial query; raises SourceError naming the cause."""
        ...

    def fetch(self, sql: str, params: Mapping[str, object]) -> pa.RecordBatchReader:
        """Run `sql` (parameters as `$NAME`) with `params` bound, streaming the result."""
        ...

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """The change sensor's probe of a query without `updated_at`, in the warehouse's dialect:
        one row of its row count and an order-independent hash of its rows (`count_and`)."""
        ...


def count_and(aggregate: str, source_sql: str) -> str:
    """`SELECT count(*), aggregate` over the rows of `source_sql`, named `src`; MySQL and
    Redshift refuse a derived table without a name."""
    return f"SELECT count(*), {aggregate} FROM (\n{source_sql}\n) AS src"


@dataclass(frozen=True)
class Driver:
    """Where a URL scheme's source is implemented, and the extra that installs its driver."""

    module: str
    factory: str
    extra: str | None
    kind: str  # the Dagster kind its assets show (an icon in the UI)


SCHEMES: dict[str, Driver] = {}


def register(scheme: str, driver: Driver) -> None:
    SCHEMES[scheme] = driver


def driver_for(scheme: str) -> Driver:
    import userflow_assets.warehouse.drivers  # noqa: F401 - registers the optional warehouses' schemes

    try:
        return SCHEMES[scheme]
    except KeyError:
        known = ", ".join(sorted(SCHEMES))
        raise SourceError(f"warehouse URL scheme {scheme!r} is not known; use one of: {known}") from None


class SourceFactory(Protocol):
    """How every scheme's module builds its source: parses the URL, connects to nothing."""

    def __call__(self, url: str, *, password: str | None = None, base_dir: Path | None = None) -> Source: ...


def load_factory(scheme: str) -> SourceFactory:
    """The source constructor for `scheme`, importing its module (and driver) on first use."""
    driver = driver_for(scheme)
    try:
        module = importlib.import_module(driver.module)
    except ImportError as error:
        hint = f" (pip install 'userflow-assets[{driver.extra}]')" if driver.extra else ""
        raise SourceError(f"the {scheme} warehouse needs a driver that is not installed: {error.name}{hint}") from error
    return getattr(module, driver.factory)


def warehouse_kind(url: str | None) -> str:
    """The Dagster kind of the warehouse a spec reads: `duckdb` for the DuckDB file (no URL)."""
    return driver_for(url_scheme(url)).kind if url else "duckdb"


def url_scheme(url: str) -> str:
    """`postgresql` of `postgresql://reader@host/db`, `duckdb` of `duckdb:`; lower case."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise SourceError(f"warehouse URL {redact_url(url)!r} has no scheme (e.g. postgresql://reader@host:5432/db)")
    return scheme


def redact_url(url: str) -> str:
    """`url` without a password written into it, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":[redacted]@", 1)


def password_from(variable: str | None) -> str | None:
    """The password in environment variable `variable`, registered for redaction; read at connect time."""
    if not variable:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise SourceError(f"the warehouse password variable {variable} (setting warehouse.password_env) is not set")
    register_secret(value)
    return value


def open_source(url: str, password_env: str | None = None, base_dir: Path | None = None) -> Source:
    """The source a warehouse URL names; `base_dir` is where relative file paths start (the
    folder of the queries), used only by sources that read files."""
    factory = load_factory(url_scheme(url))
    return factory(url, password=password_from(password_env), base_dir=base_dir)


# The warehouses this package reads without a separate driver package, or with the `postgres` extra.
register("duckdb", Driver("userflow_assets.warehouse.duckdb_source", "files_source", None, "duckdb"))
register("postgresql", Driver("userflow_assets.warehouse.postgres_source", "postgres_source", "postgres", "postgres"))
register("postgres", Driver("userflow_assets.warehouse.postgres_source", "postgres_source", "postgres", "postgres"))
