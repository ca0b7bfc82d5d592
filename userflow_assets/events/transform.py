"""Events through the transform stage: the events spec compiled to one DuckDB query.

Each staged row becomes an event record (key, name, user ID, group ID, time, attributes as
JSON text) or a rejected row with its reason. The filter, the value normalisation, the rules,
the duplicate resolution and the writing are the users' own (`transform.filters`,
`transform.values`, `transform.build`), so an event attribute is sent exactly as a user
attribute of the same value would be.
"""

from __future__ import annotations

import json
import time

import duckdb

from userflow_assets.spec import EventsSpec, SchemaField
from userflow_assets.sqltext import Params, ident, literal, qualified
from userflow_assets.transform.build import (
    DUPS,
    ID_KINDS,
    ROW,
    RowKeys,
    Rule,
    Staged,
    TransformResult,
    bind_expression,
    broken_rule_columns,
    count,
    first_broken,
    id_source,
    key_rules,
    row_expression,
    source_columns,
    write_tables,
)
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.filters import compile_filter
from userflow_assets.transform.ids import MAX_ID_CHARS, has_control, too_long, usable
from userflow_assets.transform.types import Kind, ValueType
from userflow_assets.transform.values import COERCED, Check, coerce, value_sql

# Userflow's allowed characters in an event name (shared/userflow-api.md, "Events"); the
# emulator answers 400 to anything else, so such rows are rejected before any request.
EVENT_NAME_PATTERN = r"[A-Za-z0-9_\-. ]+"

# The records table's columns before `source_row`, the key first.
RECORD_COLUMNS = (
    ("key", "VARCHAR NOT NULL"),
    ("name", "VARCHAR NOT NULL"),
    ("user_id", "VARCHAR"),
    ("group_id", "VARCHAR"),
    ("time", "VARCHAR"),
    ("attributes", "VARCHAR NOT NULL"),
    ("payload_hash", "VARCHAR NOT NULL"),
)

EventTransformResult = TransformResult  # an events run has the same counts as a users run


def _id_expression(vt: ValueType, where: str) -> None:
    if vt.kind not in (*ID_KINDS, Kind.NULL):
        raise SpecError(f"{where}: the value is {vt.sql}; an ID is text or an integer")


def staged_query(con: duckdb.DuckDBPyConnection, spec: EventsSpec, source: str) -> tuple[str, Params, RowKeys]:
    """One query over the source: every kept row as an event, with the first rule it breaks, and
    where a rejected row without a key is found (by all its columns)."""
    columns = source_columns(con, source, "events")
    params = Params()
    key_column = id_source(spec.key_column, columns, "events.key_column", "a key")
    rows = row_expression(con, source, columns)
    filter_sql = compile_filter(con, spec.filter, columns, params, "events") if spec.filter else "true"

    name_type = bind_expression(con, source, rows, "events.name", spec.name)
    if name_type.kind not in (Kind.TEXT, Kind.NULL):
        raise SpecError(f"events.name: the value is {name_type.sql}; an event name is text")
    mapped = [f"CAST({ident(key_column)} AS VARCHAR) AS __k", f"CAST((\n{spec.name}\n) AS VARCHAR) AS __name"]
    for label, expression in (("user_id", spec.user_id), ("group_id", spec.group_id)):
        if expression:
            _id_expression(bind_expression(con, source, rows, f"events.{label}", expression), f"events.{label}")
            mapped.append(f"CAST((\n{expression}\n) AS VARCHAR) AS __{label}")
        else:
            mapped.append(f"CAST(NULL AS VARCHAR) AS __{label}")

    checks: list[tuple[Check, str, str]] = []  # rule, column label, raw column
    time_json = "'null'"
    nulled: list[str] = []
    if spec.time:
        time_type = bind_expression(con, source, rows, "events.time", spec.time)
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
        vt = bind_expression(con, source, rows, f"events.attributes.{name}", expression)
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

    rules = _rules(key_column, checks)
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
            ({" + ".join(nulled) or "0"}) AS nulled, ({first_broken(rules)}) AS fail
        FROM coerced
    )
    SELECT {ROW}, key, name, user_id, group_id, time, attributes, {payload} AS payload_hash, nulled, fail,
        {broken_rule_columns(rules)}
    FROM checked
    """
    return sql, params, RowKeys(f"(SELECT {rows} AS {ROW}, * FROM {source})", list(columns))


def _rules(key_column: str, checks: list[tuple[Check, str, str]]) -> list[Rule]:
    """Every rule an event must keep, in the order a failure is reported."""
    key = literal(key_column)
    rules = key_rules("key", "__k", key, key)
    rules += [
        Rule("name IS NULL", literal("missing name"), literal("name"), "__name"),
        Rule(
            f"NOT regexp_full_match(name, {literal(EVENT_NAME_PATTERN)})",
            literal("name has characters other than letters, digits, _, -, . and space"),
            literal("name"),
            "name",
        ),
        Rule("user_id IS NULL AND group_id IS NULL", literal("neither user_id nor group_id"), literal("user_id"), "__user_id"),
    ]
    for label in ("user_id", "group_id"):
        rules += [
            Rule(f"coalesce({has_control(label)}, false)", literal(f"{label} contains control characters"), literal(label), label),
            Rule(f"coalesce({too_long(label)}, false)", literal(f"{label} longer than {MAX_ID_CHARS} characters"), literal(label), label),
        ]
    for check, label, raw in checks:
        condition = check.condition.replace(COERCED, "__t")
        rules.append(Rule(f"coalesce({condition}, false)", check.reason.replace(COERCED, "__t"), literal(label), raw))
    return rules


def build_event_records(
    con: duckdb.DuckDBPyConnection, spec: EventsSpec, source_table: str, records_table: str, rejected_table: str
) -> EventTransformResult:
    """Apply `spec` to `source_table`; replace `records_table` and `rejected_table` in one transaction."""
    started = time.perf_counter()
    con.execute("SET TimeZone='UTC'")  # naive timestamps are UTC; TIMESTAMPTZ renders as UTC
    source = qualified(source_table)
    sql, params, row_keys = staged_query(con, spec, source)
    try:
        kept = write_tables(con, RECORD_COLUMNS, spec.key_column, Staged(sql, params.values), records_table, rejected_table, row_keys)
        result = count(con, source, records_table, rejected_table, kept)
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.main.{DUPS}")
    result.object_type = "event"
    result.elapsed_ms = round((time.perf_counter() - started) * 1000)
    return result
