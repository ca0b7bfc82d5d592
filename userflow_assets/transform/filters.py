"""The spec's filter (seed 003's `and`/`or` of conditions) compiled to a DuckDB WHERE clause.

Values are always bound parameters, cast to the column's type in SQL; each cast is tried
once at compile time so that a value that cannot be cast is a SpecError, not a failed run.
The semantics of each operator per column type are documented in README ("Filter operators").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import duckdb

from userflow_assets.spec import Condition, Filter, Scalar
from userflow_assets.sqltext import Params, ident
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.types import Kind, ValueType

Category = Literal["string", "number", "datetime", "boolean", "list", "json", "other"]

COMPARE = {
    "is less than": "<",
    "is less than or equal to": "<=",
    "is greater than": ">",
    "is greater than or equal to": ">=",
    "is before": "<",
    "is on or before": "<=",
    "is after": ">",
    "is on or after": ">=",
}
TEMPORAL = {"is before", "is on or before", "is after", "is on or after"}
NO_VALUES = {"is true", "is false", "is empty", "is not empty", "is null", "is not null", "exists", "does not exist"}
MANY_VALUES = {"is one of", "is not one of"}
TWO_VALUES = {"is between", "is not between"}
NULL_OPS = {"is null", "is not null", "exists", "does not exist", "is empty", "is not empty"}

# Operators each column category accepts (besides NULL_OPS, which fit every column).
ALLOWED: dict[Category, set[str]] = {
    "string": {"is", "is not", *list(COMPARE)[:4], *TWO_VALUES, "contains", "does not contain", *MANY_VALUES,
               "starts with", "ends with"},
    "number": {"is", "is not", *list(COMPARE)[:4], *TWO_VALUES, *MANY_VALUES},
    "datetime": {"is", "is not", *COMPARE, *TWO_VALUES, *MANY_VALUES},
    "boolean": {"is", "is not", "is true", "is false", *MANY_VALUES},
    "list": {"contains", "does not contain", *MANY_VALUES},
    "json": {"is", "is not", *COMPARE, *TWO_VALUES, "contains", "does not contain", *MANY_VALUES, "starts with",
             "ends with", "is true", "is false"},
    "other": set(),
}


@dataclass(frozen=True)
class Target:
    """What a condition tests: a plain column, or a path inside a JSON (or JSON text) column."""

    sql: str  # the column (plain) or the JSON document (path)
    value_type: ValueType
    path: tuple[str, ...] | None  # None: a plain column


def category(vt: ValueType) -> Category:
    if vt.is_json:
        return "json"
    return {
        Kind.TEXT: "string",
        Kind.INT: "number",
        Kind.BIGINT: "number",
        Kind.FLOAT: "number",
        Kind.TIMESTAMP: "datetime",
        Kind.DATE: "datetime",
        Kind.BOOL: "boolean",
    }.get(vt.kind, "list" if vt.kind == Kind.LIST and vt.element and vt.element.kind not in (Kind.LIST, Kind.NESTED, Kind.NULL) else "other")


def find_column(name: str, columns: dict[str, ValueType]) -> str | None:
    """The source column `name` refers to: exact name first, then DuckDB's case-insensitive match."""
    if name in columns:
        return name
    matches = [c for c in columns if c.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def resolve(column: str, columns: dict[str, ValueType], where: str) -> Target:
    found = find_column(column, columns)
    if found is not None:
        vt = columns[found]
        return Target(ident(found), vt, () if vt.is_json else None)
    parts = column.split(".")
    # The longest prefix naming a column wins, so columns with dots in their names still work.
    for i in range(len(parts) - 1, 0, -1):
        found = find_column(".".join(parts[:i]), columns)
        if found is None:
            continue
        vt = columns[found]
        keys = tuple(parts[i:])
        if not (vt.is_json or vt.sql == "VARCHAR"):
            raise SpecError(f"{where}: {found!r} is {vt.sql}; a `column.key` path needs a JSON or JSON-text column")
        if any(not k or '"' in k for k in keys):
            raise SpecError(f"{where}: the JSON path {column!r} has an empty key or a key with a double quote")
        doc = ident(found) if vt.is_json else f"(CASE WHEN json_valid({ident(found)}) THEN {ident(found)} END)"
        return Target(doc, vt, keys)
    known = ", ".join(list(columns)[:30])
    raise SpecError(f"{where}: unknown column {column!r} (the source has: {known})")


def compile_filter(
    con: duckdb.DuckDBPyConnection, flt: Filter, columns: dict[str, ValueType], params: Params, obj: str
) -> str:
    """The WHERE clause text for `flt`; its values are added to `params`."""
    parts = []
    for i, condition in enumerate(flt.conditions):
        where = f"{obj}.filter.conditions[{i}] ({condition.column} {condition.operator})"
        parts.append(f"coalesce(({compile_condition(con, condition, columns, params, where)}), false)")
    return f" {flt.logical.upper()} ".join(parts)


def compile_condition(
    con: duckdb.DuckDBPyConnection, cond: Condition, columns: dict[str, ValueType], params: Params, where: str
) -> str:
    op = cond.operator
    _check_arity(op, cond.values, where)
    target = resolve(cond.column, columns, where)
    if target.path is not None:
        return _json_condition(con, target, op, cond.values, params, where)
    col, vt = target.sql, target.value_type
    if op in ("is null", "does not exist"):
        return f"{col} IS NULL"
    if op in ("is not null", "exists"):
        return f"{col} IS NOT NULL"
    cat = category(vt)
    if op not in ALLOWED[cat] and op not in NULL_OPS:
        raise SpecError(f"{where}: operator {op!r} does not fit column type {vt.sql}")
    if op in ("is empty", "is not empty"):
        empty = {"string": f"({col} IS NULL OR CAST({col} AS VARCHAR) = '')",
                 "list": f"({col} IS NULL OR len({col}) = 0)"}.get(cat, f"({col} IS NULL)")
        return empty if op == "is empty" else f"NOT {empty}"
    if cat == "string" and vt.sql != "VARCHAR":
        col = f"CAST({col} AS VARCHAR)"  # ENUM, UUID, TIME...: compared as their text
    if op == "is true":
        return f"{col} = true"
    if op == "is false":
        return f"{col} = false"
    if cat == "list":
        assert vt.element is not None
        values = [_typed_value(con, v, vt.element, params, where) for v in cond.values]
        if op == "contains":
            return f"list_contains({col}, {values[0]})"
        if op == "does not contain":
            return f"NOT list_contains({col}, {values[0]})"
        has_any = f"list_has_any({col}, [{', '.join(values)}])"
        return has_any if op == "is one of" else f"NOT {has_any}"
    values = [_typed_value(con, v, vt, params, where) for v in cond.values]
    if op in TWO_VALUES:
        _check_range(con, values, params, where)
    return _compare(col, op, values)


def _compare(col: str, op: str, values: list[str]) -> str:
    """SQL for the operators that compare one value with typed values (plain or read from JSON)."""
    if op == "is":
        return f"{col} = {values[0]}"
    if op == "is not":
        return f"{col} <> {values[0]}"
    if op in COMPARE:
        return f"{col} {COMPARE[op]} {values[0]}"
    if op == "is between":
        return f"{col} BETWEEN {values[0]} AND {values[1]}"
    if op == "is not between":
        return f"{col} NOT BETWEEN {values[0]} AND {values[1]}"
    if op == "is one of":
        return f"{col} IN ({', '.join(values)})"
    if op == "is not one of":
        return f"{col} NOT IN ({', '.join(values)})"
    if op == "contains":
        return f"contains({col}, {values[0]})"
    if op == "does not contain":
        return f"NOT contains({col}, {values[0]})"
    if op == "starts with":
        return f"starts_with({col}, {values[0]})"
    if op == "ends with":
        return f"ends_with({col}, {values[0]})"
    raise AssertionError(op)


def _check_arity(op: str, values: list[Scalar], where: str) -> None:
    n = len(values)
    if op in NO_VALUES and n:
        raise SpecError(f"{where}: takes no values, got {n}")
    if op in TWO_VALUES and n != 2:
        raise SpecError(f"{where}: needs exactly 2 values (low, high), got {n}")
    if op in MANY_VALUES and n == 0:
        raise SpecError(f"{where}: needs at least 1 value")
    if op not in NO_VALUES | TWO_VALUES | MANY_VALUES and n != 1:
        raise SpecError(f"{where}: needs exactly 1 value, got {n}")


def _value_sql(vt: ValueType, value: Scalar, where: str) -> tuple[str, Scalar]:
    """The SQL type a value is cast to for a column of type `vt`, and the value to bind."""
    cat = category(vt)
    if isinstance(value, bool) and cat in ("number", "datetime"):
        raise SpecError(f"{where}: value {value!r} is a boolean; the column is {vt.sql}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where}: value {value!r} is not a finite number")
    if cat == "string":
        return "VARCHAR", _as_text(value)
    if cat == "number":
        if vt.kind in (Kind.INT, Kind.BIGINT) and _is_integer_text(value):
            return "HUGEINT", str(value)
        # Compared as a number, so `seats is greater than 2.5` keeps its meaning on an integer column.
        return "DOUBLE", value
    if cat == "datetime":
        # An offset in the value is honoured; a naive value is UTC (the session's zone).
        if vt.kind == Kind.DATE:
            return "DATE", value
        return ("TIMESTAMPTZ" if "TIME ZONE" in vt.sql else "TIMESTAMPTZ::TIMESTAMP"), value
    if cat == "boolean":
        return "BOOLEAN", value
    raise SpecError(f"{where}: a column of type {vt.sql} cannot be compared with values")


def _typed_value(con: duckdb.DuckDBPyConnection, value: Scalar, vt: ValueType, params: Params, where: str) -> str:
    sql_type, bound = _value_sql(vt, value, where)
    probe = Params()
    cast = _cast(probe.add(bound), sql_type)
    try:
        con.execute(f"SELECT {cast}", probe.values).fetchone()
    except duckdb.Error as exc:
        raise SpecError(f"{where}: value {value!r} cannot be read as {sql_type.split('::')[-1]}: {exc}") from exc
    return _cast(params.add(bound), sql_type)


def _cast(placeholder: str, sql_type: str) -> str:
    if sql_type == "TIMESTAMPTZ::TIMESTAMP":
        return f"CAST(CAST({placeholder} AS TIMESTAMPTZ) AS TIMESTAMP)"
    return f"CAST({placeholder} AS {sql_type})"


def _check_range(con: duckdb.DuckDBPyConnection, values: list[str], params: Params, where: str) -> None:
    used = {k: v for k, v in params.values.items() if f"${k}" in values[0] or f"${k}" in values[1]}
    (ordered,) = con.execute(f"SELECT {values[0]} <= {values[1]}", used).fetchone()
    if not ordered:
        raise SpecError(f"{where}: the low value is greater than the high value")


def _as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_integer_text(value: Scalar) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().lstrip("+-").isdigit()


def _is_number(value: Scalar) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _json_condition(
    con: duckdb.DuckDBPyConnection, target: Target, op: str, values: list[Scalar], params: Params, where: str
) -> str:
    """A condition on a value inside a JSON document (a `column.key.sub` path or a JSON column).

    The value is read as text (json_extract_string); it is compared as a number when all the
    condition's values are numbers (or numeric text), as a datetime for the before/after
    operators, and as text otherwise.
    """
    assert target.path is not None
    path = "$" + "".join(f'."{k}"' for k in target.path)
    doc = target.sql
    p = params.add(path)
    typ = f"json_type({doc}, {p})"
    text = f"json_extract_string({doc}, {p})"
    if op == "exists":
        return f"{typ} IS NOT NULL"
    if op == "does not exist":
        return f"{typ} IS NULL"
    if op == "is null":
        return f"({typ} IS NULL OR {typ} = 'NULL')"
    if op == "is not null":
        return f"({typ} IS NOT NULL AND {typ} <> 'NULL')"
    if op in ("is empty", "is not empty"):
        empty = (
            f"({typ} IS NULL OR {typ} = 'NULL' OR ({typ} = 'VARCHAR' AND {text} = '') "
            f"OR ({typ} IN ('ARRAY', 'OBJECT') AND {text} IN ('[]', '{{}}')))"
        )
        return empty if op == "is empty" else f"NOT {empty}"
    if op == "is true":
        return f"({typ} = 'BOOLEAN' AND {text} = 'true')"
    if op == "is false":
        return f"({typ} = 'BOOLEAN' AND {text} = 'false')"
    if op in TEMPORAL:
        ts = ValueType(Kind.TIMESTAMP, "TIMESTAMP WITH TIME ZONE")
        typed = [_typed_value(con, v, ts, params, where) for v in values]
        return _compare(f"TRY_CAST({text} AS TIMESTAMPTZ)", op, typed)
    if op in ("contains", "does not contain"):
        # An array contains an item whose text is the value; text contains the value as a substring.
        v = params.add(_as_text(values[0]))
        items = f"json_extract_string({doc}, {params.add(path + '[*]')})"
        hit = f"(CASE WHEN {typ} = 'ARRAY' THEN list_contains({items}, {v}) ELSE contains({text}, {v}) END)"
        return hit if op == "contains" else f"NOT {hit}"
    if op not in ("starts with", "ends with") and all(_is_number(v) for v in values):
        dbl = ValueType(Kind.FLOAT, "DOUBLE")
        typed = [_typed_value(con, v, dbl, params, where) for v in values]
        if op in TWO_VALUES:
            _check_range(con, typed, params, where)
        return _compare(f"TRY_CAST({text} AS DOUBLE)", op, typed)
    typed = [_cast(params.add(_as_text(v)), "VARCHAR") for v in values]
    if op in TWO_VALUES:
        _check_range(con, typed, params, where)
    return _compare(text, op, typed)
