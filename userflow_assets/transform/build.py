"""The transform stage: a sync spec compiled to DuckDB SQL and run over a staged source table.

Validation happens first, against the real source (columns, types, bindable expressions),
so a spec fault is a SpecError before anything is written. Then one query filters, maps,
coerces, normalises and checks every row into a temp table; duplicates are resolved on it,
and the records and rejected tables are replaced in one transaction.

The events transform (`events/transform.py`) builds its own query and reuses the rest:
binding, rules, duplicate resolution, the writing and the counting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import duckdb

from userflow_assets.spec import ObjectSpec
from userflow_assets.sqltext import (
    Params,
    ident,
    literal,
    qualified,
    qualified_parts,
    scratch_writes,
    table_parts,
    transaction,
)
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.filters import compile_filter, find_column
from userflow_assets.transform.ids import MAX_ID_CHARS, has_control, too_long, usable
from userflow_assets.transform.memberships import (
    ITEMS,
    KEYS,
    UNSORTED,
    MembershipSql,
    json_structure,
    memberships_sql,
)
from userflow_assets.transform.pyfunc import ROW, Function, load_function, run_function
from userflow_assets.transform.types import Kind, ValueType, classify, is_flat
from userflow_assets.transform.values import (
    COERCED,
    Check,
    Coerced,
    ValueSql,
    coerce,
    value_sql,
)

VALUE_CHARS = 200  # of a rejected value, in the rejected table
SOURCE_KEY_CHARS = 500  # of a rejected row's source key when it is the row's columns
SRC, KEPT, PY, DUPS = "__uf_src", "__uf_kept", "__uf_py", "__uf_dups"
ID_KINDS = (Kind.TEXT, Kind.INT, Kind.BIGINT)

# The records table's columns before `source_row`, the key first.
RECORD_COLUMNS = (
    ("id", "VARCHAR NOT NULL"),
    ("primary_id", "VARCHAR"),
    ("fallback_id", "VARCHAR"),
    ("attributes", "VARCHAR"),
    ("memberships", "VARCHAR"),
    ("payload_hash", "VARCHAR"),
)


@dataclass
class TransformResult:
    """Counts of one transform run (users, groups or events); every field is a plain int or str,
    ready as Dagster metadata."""

    object_type: str  # user, group or event
    source_rows: int
    filtered_out: int
    records: int
    rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)  # reason without its detail -> rows
    nulled_values: int = 0
    duplicates_merged: int = 0
    with_fallback_id: int = 0  # records whose ID is their fallback ID (users and groups)
    attributes: str = ""  # the attribute names, comma-separated
    records_table: str = ""
    rejected_table: str = ""
    elapsed_ms: int = 0

    def metadata(self) -> dict[str, int | str]:
        """Flat metadata: `rejected_by_reason` as JSON text."""
        data = asdict(self)
        data["rejected_by_reason"] = json.dumps(self.rejected_by_reason, sort_keys=True)
        return data


@dataclass
class Attribute:
    """One attribute on its way: raw column, coerced column, and the SQL making its JSON text."""

    name: str
    raw: str  # column in the mapped layer
    raw_type: ValueType
    coerced: Coerced | None = None  # None: no output schema
    value: ValueSql | None = None


@dataclass
class Plan:
    obj: str
    source: str
    row_expression: str
    filter_sql: str
    id_column: str
    fallback_column: str | None
    mapping: dict[str, str]  # attribute -> SQL expression (transform outputs excluded)
    mapped_types: dict[str, ValueType]
    memberships: MembershipSql | None
    function: Function | None
    params: Params
    row_key: list[str]  # source columns that find a row without an ID


@dataclass(frozen=True)
class RowKeys:
    """Where a rejected row without a key is found: `rows` (SQL: a relation with the row
    position and the source columns) and the `columns` that name it there."""

    rows: str
    columns: Sequence[str]

    def key_sql(self) -> str:
        """SQL over `rows`: `column=value, ...` (null shown as null), cut to SOURCE_KEY_CHARS."""
        parts = ", ".join(f"{literal(c + '=')} || coalesce(CAST({ident(c)} AS VARCHAR), 'null')" for c in self.columns)
        return f"left(concat_ws(', ', {parts}), {SOURCE_KEY_CHARS})"


def build_records(
    con: duckdb.DuckDBPyConnection,
    spec: ObjectSpec,
    object_type: Literal["user", "group"],
    source_table: str,
    records_table: str,
    rejected_table: str,
) -> TransformResult:
    """Apply `spec` to `source_table`: replace `records_table` and `rejected_table`; return counts."""
    started = time.perf_counter()
    obj = {"user": "users", "group": "groups"}[object_type]
    con.execute("SET TimeZone='UTC'")  # naive timestamps are UTC; TIMESTAMPTZ renders as UTC
    source = qualified(source_table)
    columns = source_columns(con, source, obj)
    plan = compile_plan(con, spec, obj, source, columns)
    try:
        attributes = mapped_attributes(plan)
        py_table = None
        nulled_in_python = 0
        if spec.transform is not None:
            assert plan.function is not None
            # The function's rows: the kept rows, materialised once for it and for the query after.
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {KEPT} AS SELECT * FROM "
                f"(SELECT {plan.row_expression} AS {ROW}, * FROM {source}) WHERE {plan.filter_sql}",
                plan.params.values,
            )
            outputs = run_function(con, plan.function, spec.transform, KEPT, PY, obj)
            py_table, nulled_in_python = outputs.table, outputs.nulled
            attributes = [a for a in attributes if a.name not in outputs.columns]
            attributes += python_attributes(con, outputs.columns, obj)
        attributes.sort(key=lambda a: a.name)
        for attribute in attributes:
            compile_attribute(attribute, spec, obj)
        staged = Staged(staged_query(plan, attributes, py_table), plan.params.values if spec.transform is None else {})
        rows = KEPT if spec.transform is not None else f"(SELECT {plan.row_expression} AS {ROW}, * FROM {source})"
        try:
            kept = write_tables(con, RECORD_COLUMNS, plan.id_column, staged, records_table, rejected_table, RowKeys(rows, plan.row_key))
        except duckdb.Error as exc:
            raise runtime_fault(con, plan, exc) from exc
        result = count(con, source, records_table, rejected_table, kept)
        (result.with_fallback_id,) = con.execute(
            f"SELECT count(*) FROM {qualified(records_table)} WHERE primary_id IS NULL"
        ).fetchone()
    finally:
        for table in (KEPT, PY, DUPS):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{table}")
    result.object_type = object_type
    result.nulled_values += nulled_in_python
    result.attributes = ", ".join(a.name for a in attributes)
    result.elapsed_ms = round((time.perf_counter() - started) * 1000)
    return result


def source_columns(con: duckdb.DuckDBPyConnection, source: str, obj: str) -> dict[str, ValueType]:
    try:
        rel = con.sql(f"SELECT * FROM {source}")
    except duckdb.Error as exc:
        raise SpecError(f"{obj}: the source table {source} cannot be read: {exc}") from exc
    return {name: classify(t) for name, t in zip(rel.columns, rel.types)}


def row_expression(con: duckdb.DuckDBPyConnection, source: str, columns: dict[str, ValueType]) -> str:
    """1-based position in the source: a table's rowid, or row_number() for a view."""
    if "rowid" not in {c.lower() for c in columns}:
        try:
            con.sql(f"SELECT rowid FROM {source} LIMIT 0")
            return "rowid + 1"
        except duckdb.Error:
            pass
    return "row_number() OVER ()"


def compile_plan(
    con: duckdb.DuckDBPyConnection, spec: ObjectSpec, obj: str, source: str, columns: dict[str, ValueType]
) -> Plan:
    """Check the spec against the source and compile what can be compiled before any row is read."""
    params = Params()
    id_column = id_source(spec.id_column, columns, f"{obj}.id_column", "an ID column")
    fallback = (
        id_source(spec.fallback_id_column, columns, f"{obj}.fallback_id_column", "an ID column")
        if spec.fallback_id_column
        else None
    )
    filter_sql = compile_filter(con, spec.filter, columns, params, obj) if spec.filter else "true"
    rows = row_expression(con, source, columns)
    overridden = set(spec.transform.outputs) if spec.transform else set()
    mapping = {name: expr for name, expr in spec.mapping.items() if name not in overridden}
    mapped_types = {name: bind_expression(con, source, rows, f"{obj}.mapping.{name}", expr) for name, expr in mapping.items()}
    function = None
    if spec.transform is not None:
        function = load_function(spec.transform, obj)
        for column in spec.transform.inputs:
            if find_column(column, columns) is None:
                raise SpecError(f"{obj}.transform.inputs: unknown column {column!r}")
    memberships = None
    if spec.memberships is not None:
        if obj != "users":
            raise SpecError(f"{obj}.memberships: only users have memberships")
        memberships = memberships_sql(spec.memberships, columns, obj, json_reader(con, source, spec, columns))
    row_key = [id_source(c, columns, f"{obj}.row_key", "a row key column") for c in spec.row_key] or list(columns)
    plan = Plan(
        obj, source, rows, filter_sql, id_column, fallback, mapping, mapped_types, memberships, function, params, row_key
    )
    # Schemas on mapped attributes are checked now; those on transform outputs once their types are known.
    for attribute in mapped_attributes(plan):
        compile_attribute(attribute, spec, obj)
    return plan


def json_reader(
    con: duckdb.DuckDBPyConnection, source: str, spec: ObjectSpec, columns: dict[str, ValueType]
) -> tuple[str, ValueType] | None:
    """For a JSON memberships column: the expression reading it as typed lists and structs, and its type."""
    assert spec.memberships is not None
    found = find_column(spec.memberships.column, columns)
    if found is None or not columns[found].is_json:
        return None
    expression = f"from_json({ident(found)}, {literal(json_structure(con, source, found, spec.memberships))})"
    return expression, classify(con.sql(f"SELECT {expression} FROM {source} LIMIT 0").types[0])


def id_source(name: str, columns: dict[str, ValueType], where: str, role: str) -> str:
    """The source column `name` refers to, which must hold text or integers (`role` says what it is for)."""
    found = find_column(name, columns)
    if found is None:
        raise SpecError(f"{where}: unknown column {name!r} (the source has: {', '.join(list(columns)[:30])})")
    if columns[found].kind not in ID_KINDS:
        raise SpecError(f"{where}: {found!r} is {columns[found].sql}; {role} holds text or integers")
    return found


def bind_expression(con: duckdb.DuckDBPyConnection, source: str, rows: str, where: str, expression: str) -> ValueType:
    """The type of a spec expression (at `where` in the spec), found by letting DuckDB bind it against the source."""
    # The expression sits on its own lines, so a trailing comment cannot swallow the parenthesis;
    # the row column beside it makes an aggregate a binder error instead of a one-row result.
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


def nested_message(where: str, vt: ValueType) -> str:
    return (
        f"{where}: the value is {vt.sql}; Userflow attributes are flat (text, numbers, booleans, "
        f"datetimes, lists of those): map each field to its own attribute "
        f"(e.g. `address.city`, `json_extract_string(payload, '$.plan')`, `base64(blob)`)"
    )


def mapped_attributes(plan: Plan) -> list[Attribute]:
    return [Attribute(name, f"__uf_m{i}", plan.mapped_types[name]) for i, name in enumerate(plan.mapping)]


def python_attributes(con: duckdb.DuckDBPyConnection, columns: dict[str, str], obj: str) -> list[Attribute]:
    rel = con.sql(f"SELECT * FROM {PY}")
    types = dict(zip(rel.columns, rel.types))
    attributes = []
    for name, column in columns.items():
        vt = classify(types[column])
        if not is_flat(vt):
            raise SpecError(nested_message(f"{obj}.transform.outputs.{name}", vt))
        attributes.append(Attribute(name, column, vt))
    return attributes


def compile_attribute(attribute: Attribute, spec: ObjectSpec, obj: str) -> None:
    schema = spec.output_schema.get(attribute.name)
    if schema is not None:
        where = f"{obj}.output_schema.{attribute.name}"
        attribute.coerced = coerce(attribute.raw, attribute.raw_type, schema, where, attribute.name)
        target, target_type = coerced_column(attribute), attribute.coerced.value_type
    else:
        target, target_type = attribute.raw, attribute.raw_type
    attribute.value = value_sql(target, target_type, attribute.name)


def coerced_column(attribute: Attribute) -> str:
    return attribute.raw.replace("__uf_m", "__uf_c") if not attribute.raw.startswith("__uf_py") else f"__uf_c_{attribute.raw}"


def staged_query(plan: Plan, attributes: list[Attribute], py_table: str | None) -> str:
    """One query: every kept row with its ID, JSON text, hash and its first broken rule (if any).

    Layers, so that each costly expression is computed once per row and then referenced:
    mapped (expressions over the source), coerced (schemas, IDs, memberships sorted),
    merged (memberships merged), checked (first broken rule, JSON text), final (reason texts, hash).
    """
    ms = plan.memberships
    ids = f"CAST({ident(plan.id_column)} AS VARCHAR) AS __uf_pid, " + (
        f"CAST({ident(plan.fallback_column)} AS VARCHAR) AS __uf_fid" if plan.fallback_column else "CAST(NULL AS VARCHAR) AS __uf_fid"
    )
    mapped_cols = [f"(\n{plan.mapping[a.name]}\n) AS {a.raw}" for a in attributes if a.raw.startswith("__uf_m")]
    mapped_cols += [f"{PY}.{a.raw} AS {a.raw}" for a in attributes if a.raw.startswith("__uf_py")]
    if ms is not None:
        mapped_cols += [f"{ms.unsorted} AS __uf_ms_unsorted", f"{ident(ms.column)} AS __uf_ms_raw"]
        mapped_cols += [f"coalesce({c.condition}, false) AS __uf_ms_value_bad{i}" for i, c in enumerate(ms.value_checks)]
        mapped_cols += [f"({' + '.join(ms.nulled) or '0'}) AS __uf_ms_nulled"]
    if py_table:
        source = f"{KEPT} LEFT JOIN {PY} ON {PY}.{ROW} = {KEPT}.{ROW}"
        row = f"{KEPT}.{ROW}"
    else:
        source = f"(SELECT {plan.row_expression} AS {ROW}, * FROM {plan.source}) AS {SRC} WHERE {plan.filter_sql}"
        row = ROW
    mapped = f"SELECT {row} AS {ROW}, {ids}, " + ", ".join(mapped_cols) + f" FROM {source}"

    pid_ok, fid_ok = usable("__uf_pid"), usable("__uf_fid")
    coerced_cols = [f"{a.coerced.expression} AS {coerced_column(a)}" for a in attributes if a.coerced]
    if ms is not None:
        coerced_cols.append(f"{ms.items.replace(UNSORTED, '__uf_ms_unsorted')} AS __uf_ms_items")
    coerced = (
        f"SELECT *, CASE WHEN {pid_ok} THEN __uf_pid END AS primary_id, "
        f"CASE WHEN {fid_ok} THEN __uf_fid END AS fallback_id, "
        f"CASE WHEN {pid_ok} THEN __uf_pid WHEN {fid_ok} THEN __uf_fid END AS id"
        + "".join(f", {c}" for c in coerced_cols)
        + " FROM mapped"
    )

    merged = "SELECT * FROM coerced"
    if ms is not None:
        merged = (
            f"SELECT *, {ms.keys.replace(ITEMS, '__uf_ms_list')} AS __uf_ms_keys FROM "
            f"(SELECT *, {ms.merged.replace(ITEMS, '__uf_ms_items')} AS __uf_ms_list FROM coerced)"
        )

    rules = rule_list(plan, attributes)
    pieces = []
    for i, a in enumerate(attributes):
        assert a.value is not None
        pieces += [literal(("{" if i == 0 else ",") + json.dumps(a.name) + ":"), a.value.fragment]
    attributes_json = f"concat({', '.join(pieces)}, '}}')"
    memberships_json = ms.fragment.replace(ITEMS, "__uf_ms_list") if ms is not None else "CAST(NULL AS VARCHAR)"
    nulled = [n for a in attributes for n in (a.value.nulled if a.value else [])]
    nulled += [n for a in attributes if a.coerced for n in a.coerced.nulled]
    if ms is not None:
        nulled.append("__uf_ms_nulled")
    checked = (
        f"SELECT *, {attributes_json} AS attributes, {memberships_json} AS memberships, "
        f"({' + '.join(nulled) or '0'}) AS nulled, ({first_broken(rules)}) AS fail FROM merged"
    )

    payload = "md5(concat('{\"attributes\":', attributes, ',\"memberships\":', coalesce(memberships, 'null'), '}'))"
    final = (
        f"SELECT {ROW}, id, primary_id, fallback_id, attributes, memberships, {payload} AS payload_hash, "
        f"nulled, fail, {broken_rule_columns(rules)} FROM checked"
        # The join with the function's rows loses the source order, which the records keep.
        + (f" ORDER BY {ROW}" if py_table else "")
    )
    return f"WITH mapped AS ({mapped}), coerced AS ({coerced}), merged AS ({merged}), checked AS ({checked}) {final}"


@dataclass(frozen=True)
class Rule:
    condition: str  # SQL: true when the row breaks the rule
    reason: str  # SQL text
    column: str  # SQL text: the source column or attribute the rule is about
    value: str  # SQL text: the offending value


def first_broken(rules: Sequence[Rule]) -> str:
    """SQL: the position of the first rule the row breaks, NULL when it keeps them all."""
    return "CASE " + " ".join(f"WHEN {r.condition} THEN {i}" for i, r in enumerate(rules)) + " END"


def broken_rule_columns(rules: Sequence[Rule]) -> str:
    """SQL select items: the reason, column and (cut) value of rule number `fail`."""

    def case(part: Callable[[Rule], str]) -> str:
        return "CASE fail " + " ".join(f"WHEN {i} THEN {part(r)}" for i, r in enumerate(rules)) + " END"

    reason, column = case(lambda r: r.reason), case(lambda r: r.column)
    value = case(lambda r: f"left(CAST({r.value} AS VARCHAR), {VALUE_CHARS})")
    return f"{reason} AS reason, {column} AS rcolumn, {value} AS rvalue"


# How a rejected row's reason starts when its key was missing or shared (the ID check counts them).
MISSING_KEY, DUPLICATE_KEY = "missing ", "duplicate "


def key_rules(key: str, raw: str, column: str, used_column: str) -> list[Rule]:
    """The rules a record's key keeps: present, no control characters, not too long.

    `raw` is the key before it was found unusable; `column` names the key's source column and
    `used_column` (SQL) the one it was taken from, when there is a choice.
    """
    return [
        Rule(f"{key} IS NULL", literal(f"{MISSING_KEY}{key}"), column, raw),
        Rule(has_control(key), literal(f"{key} contains control characters"), used_column, key),
        Rule(too_long(key), literal(f"{key} longer than {MAX_ID_CHARS} characters"), used_column, key),
    ]


def rule_list(plan: Plan, attributes: list[Attribute]) -> list[Rule]:
    """Every rule a row must keep, in the order their failures are reported."""
    id_column = literal(plan.id_column)
    # An ID rule is about the column the ID came from: the fallback's when it was used.
    id_from = f"CASE WHEN primary_id IS NULL THEN {literal(plan.fallback_column or plan.id_column)} ELSE {id_column} END"
    rules = key_rules("id", "__uf_pid", id_column, id_from)
    for a in attributes:
        assert a.value is not None
        target = coerced_column(a) if a.coerced else a.raw
        checks: list[Check] = list(a.coerced.checks) if a.coerced else []
        checks += a.value.checks
        for c in checks:
            condition = c.condition.replace(COERCED, target)
            rules.append(
                Rule(f"coalesce({condition}, false)", c.reason.replace(COERCED, target), literal(a.name), f"CAST({a.raw} AS VARCHAR)")
            )
    ms = plan.memberships
    if ms is not None:
        column = literal(ms.column)
        rules += [Rule(f"coalesce({c.condition.replace(ITEMS, '__uf_ms_list').replace(KEYS, '__uf_ms_keys')}, false)", c.reason, column, "CAST(__uf_ms_raw AS VARCHAR)") for c in ms.checks]
        rules += [Rule(f"__uf_ms_value_bad{i}", c.reason, column, "CAST(__uf_ms_raw AS VARCHAR)") for i, c in enumerate(ms.value_checks)]
    return rules


def runtime_fault(con: duckdb.DuckDBPyConnection, plan: Plan, exc: duckdb.Error) -> Exception:
    """A query that bound but failed on some row: name the mapping expression that fails, if one does."""
    for name, expression in plan.mapping.items():
        try:
            con.execute(
                f"SELECT count((\n{expression}\n)) FROM (SELECT {plan.row_expression} AS {ROW}, * FROM {plan.source}) "
                f"WHERE {plan.filter_sql}",
                plan.params.values,
            ).fetchone()
        except duckdb.Error as inner:
            return SpecError(
                f"{plan.obj}.mapping.{name}: {expression!r} fails on the source rows: {inner} "
                "(use TRY_CAST or a CASE to turn bad values into nulls or schema rejections)"
            )
    return exc


@dataclass(frozen=True)
class Staged:
    """The query staging every kept row: the records' columns, then the row's position
    (`ROW`), `nulled`, and its first broken rule (`fail`, null when it keeps them all) with
    `reason`, `rcolumn` and `rvalue`; and its parameters."""

    sql: str
    params: Mapping[str, object]


@dataclass(frozen=True)
class Kept:
    """What the staged rows count before the rejected and duplicate ones leave them."""

    rows: int  # rows the filter kept, rejected or not
    nulled: int  # values nulled in the rows that became records


# The staged rows' columns that say why a row was rejected: not kept in the records.
REASON_COLUMNS = ("nulled", "fail", "reason", "rcolumn", "rvalue")


def write_tables(
    con: duckdb.DuckDBPyConnection,
    columns: Sequence[tuple[str, str]],
    key_source: str,
    staged: Staged,
    records_table: str,
    rejected_table: str,
    row_keys: RowKeys,
) -> Kept:
    """Stage the rows, resolve duplicate keys among them, and replace the records and rejected
    tables in one transaction: readers see the old pair or the new pair.

    The staged rows are written once, into the file beside the records, and become them: the
    rejected and duplicate rows are deleted, the reason columns dropped, and the table renamed
    over the old records. A temp table of every payload copied into the records would spill
    past DuckDB's memory limit at scale and write every payload twice. `columns` are the
    records' columns before `source_row` with their types, the key first; `key_source` is the
    spec's name of the key's column; a rejected row's `source_key` is its key, or where it has
    none, its `row_keys`. The records keep the staged rows' order.
    """
    key = columns[0][0]
    records, rejected = qualified(records_table), qualified(rejected_table)
    parts = table_parts(records_table)
    upcoming = qualified_parts(*parts[:-1], parts[-1] + "__next")  # the records to be, until renamed
    for name in (records_table, rejected_table):
        schema = table_parts(name)[:-1]
        if schema:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified_parts(*schema)}")
    casts = ", ".join(f"CAST({name} AS {sql_type.removesuffix(' NOT NULL')}) AS {name}" for name, sql_type in columns)
    with scratch_writes(con):
        con.execute(
            f"CREATE OR REPLACE TABLE {upcoming} AS SELECT {casts}, CAST({ROW} AS BIGINT) AS source_row, "
            f"{', '.join(REASON_COLUMNS)} FROM ({staged.sql})",
            dict(staged.params),
        )
        with transaction(con):
            _write_rejected(con, key, key_source, upcoming, rejected, row_keys)
            rows, nulled = con.execute(
                f"SELECT count(*), coalesce(sum(nulled) FILTER (WHERE fail IS NULL), 0) FROM {upcoming}"
            ).fetchone()
            # Deleted in place: a delete from a table written earlier only marks its rows, and
            # the few rows that leave are not worth a copy of the million that stay.
            con.execute(f"DELETE FROM {upcoming} WHERE fail IS NOT NULL")
            con.execute(
                f"DELETE FROM {upcoming} AS s USING {DUPS} AS d "
                f"WHERE d.{key} = s.{key} AND (d.differ OR s.source_row <> d.first_row)"
            )
            for column in REASON_COLUMNS:
                con.execute(f"ALTER TABLE {upcoming} DROP COLUMN {column}")
            con.execute(f"ALTER TABLE {upcoming} ALTER COLUMN {key} SET NOT NULL")
            con.execute(f"DROP TABLE IF EXISTS {records}")
            con.execute(f"ALTER TABLE {upcoming} RENAME TO {ident(parts[-1])}")
    return Kept(int(rows), int(nulled))


def _write_rejected(
    con: duckdb.DuckDBPyConnection, key: str, key_source: str, staged: str, rejected: str, row_keys: RowKeys
) -> None:
    """Replace `rejected` with the staged rows that broke a rule or share their key with other
    data, and leave the repeated keys in temp table DUPS."""
    # Same key, same payload: one record, from the first row. Same key, different payloads: none can be trusted.
    # The keys are counted alone first: payloads are compared for the few repeated keys only.
    repeated = f"SELECT {key} FROM {staged} WHERE fail IS NULL GROUP BY {key} HAVING count(*) > 1"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {DUPS} AS SELECT {key}, count(*) AS n, "
        f"min(payload_hash) <> max(payload_hash) AS differ, min(source_row) AS first_row "
        f"FROM {staged} WHERE fail IS NULL AND {key} IN ({repeated}) GROUP BY {key}"
    )
    con.execute(
        f'CREATE OR REPLACE TABLE {rejected} (source_row BIGINT, {key} VARCHAR, source_key VARCHAR, '
        '"column" VARCHAR, reason VARCHAR, value VARCHAR)'
    )
    # Only the rows without a key are looked up in the source, so a clean run reads nothing more.
    unkeyed = f"SELECT source_row FROM {staged} WHERE fail IS NOT NULL AND {key} IS NULL"
    found = f"SELECT {ROW}, {row_keys.key_sql()} AS source_key FROM {row_keys.rows} WHERE {ROW} IN ({unkeyed})"
    con.execute(
        f"INSERT INTO {rejected} SELECT * FROM ("
        f"SELECT s.source_row, s.{key}, coalesce(s.{key}, k.source_key), s.rcolumn, s.reason, s.rvalue "
        f"FROM {staged} s LEFT JOIN ({found}) k ON k.{ROW} = s.source_row WHERE s.fail IS NOT NULL "
        f"UNION ALL SELECT s.source_row, s.{key}, s.{key}, {literal(key_source)}, "
        f"'{DUPLICATE_KEY}{key} with different data (' || d.n || ' rows)', left(s.{key}, {VALUE_CHARS}) "
        f"FROM {staged} s JOIN {DUPS} d ON d.{key} = s.{key} WHERE s.fail IS NULL AND d.differ"
        f") ORDER BY 1"
    )


def count(
    con: duckdb.DuckDBPyConnection, source: str, records_table: str, rejected_table: str, kept: Kept
) -> TransformResult:
    """The counts of a run, read from its source, staged rows, duplicates and output tables."""
    records, rejected = qualified(records_table), qualified(rejected_table)
    (source_rows,) = con.execute(f"SELECT count(*) FROM {source}").fetchone()
    (n_records,) = con.execute(f"SELECT count(*) FROM {records}").fetchone()
    (merged,) = con.execute(f"SELECT coalesce(sum(n - 1), 0) FROM {DUPS} WHERE NOT differ").fetchone()
    # The reason without its parenthesised detail: `email: longer than 254 characters`.
    by_reason = dict(
        con.execute(
            f"SELECT regexp_replace(reason, ' \\([^()]*\\)$', '') AS r, count(*) FROM {rejected} GROUP BY r ORDER BY r"
        ).fetchall()
    )
    return TransformResult(
        object_type="",
        source_rows=int(source_rows),
        filtered_out=int(source_rows - kept.rows),
        records=int(n_records),
        rejected=int(sum(by_reason.values())),
        rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
        nulled_values=kept.nulled,
        duplicates_merged=int(merged),
        records_table=records_table,
        rejected_table=rejected_table,
    )
