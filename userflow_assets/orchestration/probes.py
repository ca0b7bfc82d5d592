"""Change probes: one cheap query per source, whose answer changes when the source does.

The default probe is `count(*)` and `max(updated_at)` over the source query's whole result
(`$LAST_SYNC_TIMESTAMP` bound to the earliest timestamp, as on a full read); a query without
an `updated_at` column gets `count(*)` and an order-independent checksum of its rows
instead, in the warehouse's own dialect (`Source.checksum_sql`). The spec may give its own probe per
object (one row, any columns). Probes run in the warehouse through its source, read-only
like every read.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from userflow_assets.warehouse.queries import (
    CURSOR_PARAMETER,
    EARLIEST,
    QueryError,
    query_parameters,
)
from userflow_assets.warehouse.resources import WarehouseResource
from userflow_assets.warehouse.source import Source, SourceError, count_and

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


def default_probe(source: Source, query: str, params: Mapping[str, object]) -> str:
    """The probe SQL of a source query with no probe of its own in the spec."""
    # LIMIT 0 gives the columns without reading rows; read to the end, so the connection closes.
    columns = source.fetch(f"SELECT * FROM (\n{query}\n) AS src LIMIT 0", params).read_all().schema.names
    if CHANGE_COLUMN in columns:
        return count_and(f"max({CHANGE_COLUMN})", query)
    return source.checksum_sql(query, columns)


def _probe_one(source: Source, warehouse: WarehouseResource, target: ProbeTarget) -> list[str | None]:
    if target.probe_sql is not None:
        origin = f"sensor.probes.{target.name}"
        query_text, params = None, _parameters(target.probe_sql, origin)
    else:
        query = warehouse.load_query(target.query_file)
        origin, query_text, params = str(query.path), query.text, query.parameters(None)
    try:
        if query_text is None:
            sql = str(target.probe_sql).strip().rstrip(";")
        else:
            sql = default_probe(source, query_text, params)
        rows = source.fetch(sql, params).read_all().to_pylist()
    except SourceError as error:
        raise QueryError(f"{origin}: {error}") from error
    return [] if not rows else [None if v is None else str(v) for v in rows[0].values()]


def run_probes(warehouse: WarehouseResource, targets: list[ProbeTarget]) -> dict[str, list[str | None]]:
    """Each target's probe values as text (JSON-ready); raises ProbeError naming the first that failed."""
    try:
        source = warehouse.source()
        source.check()
    except SourceError as error:
        raise ProbeError(str(error)) from error
    results: dict[str, list[str | None]] = {}
    for target in targets:
        try:
            results[target.name] = _probe_one(source, warehouse, target)
        except QueryError as error:
            raise ProbeError(f"{target.name}: {error}") from error
    return results
