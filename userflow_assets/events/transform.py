"""Events through the transform stage: the events spec compiled to one DuckDB query.

Each staged row becomes an event record (key, name, user ID, group ID, time, attributes as
JSON text) or a rejected row with its reason. The filter and the value normalisation are the
users' own (`transform.filters`, `transform.values`), so an event attribute is sent exactly as
a user attribute of the same value would be.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import duckdb

from userflow_assets.spec import EventsSpec, SchemaField
from userflow_assets.sqltext import Params, ident, literal, qualified, table_parts, transaction
from userflow_assets.transform.build import (
    nested_message,
    row_expression,
    source_columns,
)
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.filters import compile_filter, find_column
from userflow_assets.transform.ids import MAX_ID_CHARS, has_control, too_long, usable
from userflow_assets.transform.types import Kind, ValueType, classify, is_flat
from userflow_assets.transform.values import COERCED, Check, coerce, value_sql

ROW = "__uf_row"
STAGED, DUPS = "__uf_ev_staged", "__uf_ev_dups"
VALUE_CHARS = 200
# Userflow's allowed characters in an event name (shared/userflow-api.md, "Events"); the
# emulator answers 400 to anything else, so such rows are rejected before any request.
EVENT_NAME_PATTERN = r"[A-Za-z0-9_\-. ]+"
ID_KINDS = (Kind.TEXT, Kind.INT, Kind.BIGINT)

RECORDS_DDL = (
    "key VARCHAR NOT NULL, name VARCHAR NOT NULL, user_id VARCHAR, group_id VARCHAR, time VARCHAR, "
    "attributes VARCHAR NOT NULL, payload_hash VARCHAR NOT NULL, source_row BIGINT"
)
REJECTED_DDL = 'source_row BIGINT, key VARCHAR, "column" VARCHAR, reason VARCHAR, value VARCHAR'


@dataclass
class EventTransformResult:
    source_rows: int
    filtered_out: int
    records: int
    rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates_merged: int = 0
    nulled_values: int = 0
    elapsed_ms: int = 0


@dataclass(frozen=True)
class _Rule:
    condition: str  # SQL: true when the row breaks it
    reason: str  # SQL text
    column: str  # SQL text
    value: str  # SQL text


def bind(con: duckdb.DuckDBPyConnection, source: str, rows: str, where: str, expression: str) -> ValueType:
    """The type of a spec expression, found by letting DuckDB bind it against the source."""
    sql = f"SELECT {ROW}, (\n{expression}\n) AS v FROM (SELECT {rows} AS {ROW}, * FROM {source})"
    try:
        if len(con.extract_statements(sql)) != 1:
            raise SpecError(f"{where}: {expression!r} is not a single SQL expression")
        vt = classify(con.sql(sql).types[1])
    except duckdb.Error as exc:
        raise SpecError(f"{where}: DuckDB cannot bind {expression!r}: {exc}") from exc
    if not is_flat(vt):
        raise SpecError(nested_message(where, vt))
    return vt


def _id_expression(vt: ValueType, where: str) -> None:
    if vt.kind not in (*ID_KINDS, Kind.NULL):
        raise SpecError(f"{where}: the value is {vt.sql}; an ID is text or an integer")


def staged_query(con: duckdb.DuckDBPyConnection, spec: EventsSpec, source: str) -> tuple[str, Params]:
    """One query over the source: every kept row as an event, with the first rule it breaks."""
    columns = source_columns(con, source, "events")
    params = Params()
    key_column = find_column(spec.key_column, columns)
    if key_column is None:
        known = ", ".join(list(columns)[:30])
        raise SpecError(f"events.key_column: unknown column {spec.key_column!r} (the source has: {known})")
    if columns[key_column].kind not in ID_KINDS:
        raise SpecError(f"events.key_column: {key_column!r} is {columns[key_column].sql}; a key holds text or integers")
    rows = row_expression(con, source, columns)
    filter_sql = compile_filter(con, spec.filter, columns, params, "events") if spec.filter else "true"

    name_type = bind(con, source, rows, "events.name", spec.name)
    if name_type.kind not in (Kind.TEXT, Kind.NULL):
        raise SpecError(f"events.name: the value is {name_type.sql}; an event name is text")
    mapped = [f"CAST({ident(key_column)} AS VARCHAR) AS __k", f"CAST((\n{spec.name}\n) AS VARCHAR) AS __name"]
    for label, expression in (("user_id", spec.user_id), ("group_id", spec.group_id)):
        if expression:
            _id_expression(bind(con, source, rows, f"events.{label}", expression), f"events.{label}")
            mapped.append(f"CAST((\n{expression}\n) AS VARCHAR) AS __{label}")
        else:
            mapped.append(f"CAST(NULL AS VARCHAR) AS __{label}")

    checks: list[tuple[Check, str, str]] = []  # rule, column label, raw column
    time_json = "'null'"
    nulled: list[str] = []
    if spec.time:
        time_type = bind(con, source, rows, "events.time", spec.time)
        mapped.append(f"(\n{spec.time}\n) AS __t_raw")
        coerced = coerce("__t_raw", time_type, SchemaField(type="datetime"), "events.time", "time")
        mapped_coerced = f"{coerced.expression} AS __t"
        value = value_sql("__t", coerced.value_type, "time")
        time_json = value.fragment
        checks += [(c, "time", "__t_raw") for c in [*coerced.checks, *value.checks]]
        nulled += value.nulled
    else:
        mapped_coerced = "NULL AS __t"

    pieces: list[str] = []
    for i, (name, expression) in enumerate(sorted(spec.attributes.items())):
        vt = bind(con, source, rows, f"events.attributes.{name}", expression)
        mapped.append(f"(\n{expression}\n) AS __a{i}")
        value = value_sql(f"__a{i}", vt, name)
        # Null attributes are left out of the event: there is nothing to clear on an event.
        pieces.append(f"{literal(json.dumps(name) + ':')} || {value.fragment}")
        checks += [(c, name, f"__a{i}") for c in value.checks]
        nulled += value.nulled
    attributes = (
        "'{' || array_to_string(list_filter([" + ", ".join(pieces) + "], lambda __p: NOT ends_with(__p, ':null')), ',') || '}'"
        if pieces
        else "'{}'"
    )

    rules = _rules(key_column, spec, checks)
    fail = "CASE " + " ".join(f"WHEN {r.condition} THEN {i}" for i, r in enumerate(rules)) + " END"
    reason = "CASE fail " + " ".join(f"WHEN {i} THEN {r.reason}" for i, r in enumerate(rules)) + " END"
    column = "CASE fail " + " ".join(f"WHEN {i} THEN {r.column}" for i, r in enumerate(rules)) + " END"
    value_text = "CASE fail " + " ".join(
        f"WHEN {i} THEN left(CAST({r.value} AS VARCHAR), {VALUE_CHARS})" for i, r in enumerate(rules)
    ) + " END"
    time_text = f"CASE WHEN {time_json} = 'null' THEN NULL ELSE trim({time_json}, '\"') END"
    payload = (
        "md5(concat_ws('\x1f', name, coalesce(user_id, '\x00'), coalesce(group_id, '\x00'), "
        "coalesce(time, '\x00'), attributes))"
    )
    sql = f"""
    WITH mapped AS (
        SELECT {ROW}, {", ".join(mapped)}
        FROM (SELECT {rows} AS {ROW}, * FROM {source}) WHERE {filter_sql}
    ), coerced AS (
        SELECT *, {mapped_coerced},
            CASE WHEN {usable("__k")} THEN __k END AS key,
            CASE WHEN {usable("__name")} THEN __name END AS name,
            CASE WHEN {usable("__user_id")} THEN __user_id END AS user_id,
            CASE WHEN {usable("__group_id")} THEN __group_id END AS group_id
        FROM mapped
    ), checked AS (
        SELECT *, {attributes} AS attributes, {time_text} AS time,
            ({" + ".join(nulled) or "0"}) AS nulled, ({fail}) AS fail
        FROM coerced
    )
    SELECT {ROW}, key, name, user_id, group_id, time, attributes, {payload} AS payload_hash, nulled, fail,
        {reason} AS reason, {column} AS rcolumn, {value_text} AS rvalue
    FROM checked
    """
    return sql, params


def _rules(key_column: str, spec: EventsSpec, checks: list[tuple[Check, str, str]]) -> list[_Rule]:
    """Every rule an event must keep, in the order a failure is reported."""
    key = literal(key_column)
    rules = [
        _Rule("key IS NULL", literal("missing key"), key, "__k"),
        _Rule(has_control("key"), literal("key contains control characters"), key, "key"),
        _Rule(too_long("key"), literal(f"key longer than {MAX_ID_CHARS} characters"), key, "key"),
        _Rule("name IS NULL", literal("missing name"), literal("name"), "__name"),
        _Rule(
            f"NOT regexp_full_match(name, {literal(EVENT_NAME_PATTERN)})",
            literal("name has characters other than letters, digits, _, -, . and space"),
            literal("name"),
            "name",
        ),
        _Rule("user_id IS NULL AND group_id IS NULL", literal("neither user_id nor group_id"), literal("user_id"), "__user_id"),
    ]
    for label in ("user_id", "group_id"):
        rules += [
            _Rule(f"coalesce({has_control(label)}, false)", literal(f"{label} contains control characters"), literal(label), label),
            _Rule(f"coalesce({too_long(label)}, false)", literal(f"{label} longer than {MAX_ID_CHARS} characters"), literal(label), label),
        ]
    for check, label, raw in checks:
        condition = check.condition.replace(COERCED, "__t")
        rules.append(_Rule(f"coalesce({condition}, false)", check.reason.replace(COERCED, "__t"), literal(label), raw))
    return rules


def build_event_records(
    con: duckdb.DuckDBPyConnection, spec: EventsSpec, source_table: str, records_table: str, rejected_table: str
) -> EventTransformResult:
    """Apply `spec` to `source_table`; replace `records_table` and `rejected_table` in one transaction."""
    started = time.perf_counter()
    con.execute("SET TimeZone='UTC'")  # naive timestamps are UTC; TIMESTAMPTZ renders as UTC
    source = qualified(source_table)
    sql, params = staged_query(con, spec, source)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED} AS {sql}", params.values)
        # Same key, same event: merged. Same key, different events: none can be trusted.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {DUPS} AS SELECT key, count(*) AS n, "
            f"min(payload_hash) <> max(payload_hash) AS differ, min({ROW}) AS first_row "
            f"FROM {STAGED} WHERE fail IS NULL GROUP BY key HAVING count(*) > 1"
        )
        _write(con, spec, records_table, rejected_table)
        return _count(con, source, records_table, rejected_table, started)
    finally:
        for table in (STAGED, DUPS):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{table}")


def _write(con: duckdb.DuckDBPyConnection, spec: EventsSpec, records_table: str, rejected_table: str) -> None:
    records, rejected = qualified(records_table), qualified(rejected_table)
    with transaction(con):
        for name in (records_table, rejected_table):
            parts = table_parts(name)
            if len(parts) > 1:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {'.'.join(ident(p) for p in parts[:-1])}")
        con.execute(f"CREATE OR REPLACE TABLE {records} ({RECORDS_DDL})")
        con.execute(
            f"INSERT INTO {records} SELECT s.key, s.name, s.user_id, s.group_id, s.time, s.attributes, "
            f"s.payload_hash, s.{ROW} FROM {STAGED} s LEFT JOIN {DUPS} d ON d.key = s.key "
            f"WHERE s.fail IS NULL AND (d.key IS NULL OR (NOT d.differ AND s.{ROW} = d.first_row)) ORDER BY s.{ROW}"
        )
        con.execute(f"CREATE OR REPLACE TABLE {rejected} ({REJECTED_DDL})")
        con.execute(
            f"INSERT INTO {rejected} SELECT * FROM ("
            f"SELECT {ROW}, key, rcolumn, reason, rvalue FROM {STAGED} WHERE fail IS NOT NULL "
            f"UNION ALL SELECT s.{ROW}, s.key, {literal(spec.key_column)}, "
            f"'duplicate key with different data (' || d.n || ' rows)', left(s.key, {VALUE_CHARS}) "
            f"FROM {STAGED} s JOIN {DUPS} d ON d.key = s.key WHERE s.fail IS NULL AND d.differ"
            f") ORDER BY 1"
        )


def _count(
    con: duckdb.DuckDBPyConnection, source: str, records_table: str, rejected_table: str, started: float
) -> EventTransformResult:
    (source_rows,) = con.execute(f"SELECT count(*) FROM {source}").fetchone()
    (kept,) = con.execute(f"SELECT count(*) FROM {STAGED}").fetchone()
    n_records, nulled = con.execute(
        f"SELECT count(*), coalesce(sum(s.nulled), 0) FROM {qualified(records_table)} r "
        f"JOIN {STAGED} s ON s.{ROW} = r.source_row"
    ).fetchone()
    (merged,) = con.execute(f"SELECT coalesce(sum(n - 1), 0) FROM {DUPS} WHERE NOT differ").fetchone()
    by_reason = dict(
        con.execute(
            f"SELECT regexp_replace(reason, ' \\([^()]*\\)$', '') AS r, count(*) FROM {qualified(rejected_table)} "
            "GROUP BY r ORDER BY r"
        ).fetchall()
    )
    return EventTransformResult(
        source_rows=int(source_rows),
        filtered_out=int(source_rows - kept),
        records=int(n_records),
        rejected=int(sum(by_reason.values())),
        rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
        duplicates_merged=int(merged),
        nulled_values=int(nulled),
        elapsed_ms=round((time.perf_counter() - started) * 1000),
    )
