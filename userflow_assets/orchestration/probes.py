"""Change probes: one cheap query per source, whose answer changes when the source does.

The default probe is `count(*)` and `max(updated_at)` over the source query's whole result
(`$LAST_SYNC_TIMESTAMP` bound to the earliest timestamp, as on a full read); a query without
an `updated_at` column gets `count(*)` and an order-independent checksum of its rows
instead. The spec may give its own probe per object (one row, any columns). The warehouse is
attached read-only, like the warehouse assets do, so probing never takes its write lock.
"""

from dataclasses import dataclass
from pathlib import Path

import duckdb

from userflow_assets.warehouse.queries import CURSOR_PARAMETER, EARLIEST, QueryError, query_parameters
from userflow_assets.sqltext import attach_read_only
from userflow_assets.warehouse.resources import WarehouseResource

CHANGE_COLUMN = "updated_at"


class ProbeError(RuntimeError):
    """A probe that could not run; the message names the object and why."""


@dataclass(frozen=True)
class ProbeTarget:
    """What to probe for one object: its source query file and, optionally, the spec's probe SQL."""

    name: str  # users, groups, events
    query_file: str
    probe_sql: str | None = None


def _parameters(sql: str, origin: str) -> dict[str, object]:
    names = query_parameters(sql)
    unknown = sorted(n for n in names if n.upper() != CURSOR_PARAMETER)
    if unknown:
        listed = ", ".join(f"${n}" for n in unknown)
        raise QueryError(f"{origin}: unknown parameter {listed}; a probe may only use ${CURSOR_PARAMETER}")
    return {CURSOR_PARAMETER: EARLIEST} if names else {}


def _default_probe(con: duckdb.DuckDBPyConnection, source: str, params: dict[str, object]) -> str:
    # Binding the query with LIMIT 0 gives its columns without reading its rows.
    columns = [d[0] for d in con.execute(f"SELECT * FROM (\n{source}\n) LIMIT 0", params).description]
    if CHANGE_COLUMN in columns:
        return f"SELECT count(*), max({CHANGE_COLUMN}) FROM (\n{source}\n)"
    return f"SELECT count(*), bit_xor(hash(src)) FROM (\n{source}\n) AS src"


def _probe_one(con: duckdb.DuckDBPyConnection, warehouse: WarehouseResource, target: ProbeTarget) -> list[str | None]:
    if target.probe_sql is not None:
        origin = f"sensor.probes.{target.name}"
        source, params = None, _parameters(target.probe_sql, origin)
    else:
        query = warehouse.load_query(target.query_file)
        origin, source, params = str(query.path), query.text, query.parameters(None)
    try:
        sql = _default_probe(con, source, params) if source is not None else target.probe_sql
        row = con.execute(str(sql).strip().rstrip(";"), params).fetchone()
    except duckdb.Error as error:
        raise QueryError(f"{origin}: {error}") from error
    return [] if row is None else [None if v is None else str(v) for v in row]


def run_probes(warehouse: WarehouseResource, targets: list[ProbeTarget]) -> dict[str, list[str | None]]:
    """Each target's probe values as text (JSON-ready); raises ProbeError naming the first that failed."""
    path: Path = warehouse.database_path()
    if not path.is_file():
        raise ProbeError(f"warehouse file not found: {path}")
    results: dict[str, list[str | None]] = {}
    with duckdb.connect(":memory:") as con:
        con.execute("SET TimeZone='UTC'")
        try:
            attach_read_only(con, path, "warehouse")
        except duckdb.Error as error:
            raise ProbeError(f"cannot open the warehouse {path}: {error}") from error
        con.execute("USE warehouse")
        for target in targets:
            try:
                results[target.name] = _probe_one(con, warehouse, target)
            except (QueryError, duckdb.Error) as error:
                raise ProbeError(f"{target.name}: {error}") from error
    return results
