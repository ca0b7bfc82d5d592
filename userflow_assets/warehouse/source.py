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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pyarrow as pa


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


@dataclass(frozen=True)
class Driver:
    """Where a URL scheme's source is implemented, and the extra that installs its driver."""

    module: str
    factory: str
    extra: str | None


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


def load_factory(scheme: str):
    """The source constructor for `scheme`, importing its module (and driver) on first use."""
    driver = driver_for(scheme)
    try:
        module = importlib.import_module(driver.module)
    except ImportError as error:
        hint = f" (pip install 'userflow-assets[{driver.extra}]')" if driver.extra else ""
        raise SourceError(f"the {scheme} warehouse needs a driver that is not installed: {error.name}{hint}") from error
    return getattr(module, driver.factory)
