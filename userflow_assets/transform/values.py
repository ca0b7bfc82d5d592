"""One value's way to JSON text: schema coercion, then normalisation, both as DuckDB SQL.

Every function here returns SQL text over an input expression, so a whole attribute set
compiles into one vectorised query. Data values never pass through Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from userflow_assets.spec import SchemaField
from userflow_assets.sqltext import literal
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.types import Kind, ValueType, is_flat

# Userflow speaks JSON, read by JavaScript: integers beyond 2^53 silently lose digits there.
TWO_53 = "9007199254740992"
# ISO 8601 without an expanded year: years 1..9999.
MIN_TIMESTAMP = "TIMESTAMP '0001-01-01 00:00:00'"
END_TIMESTAMP = "TIMESTAMP '10000-01-01 00:00:00'"
MIN_DATE = "DATE '0001-01-01'"
MAX_DATE = "DATE '9999-12-31'"
SHOWN_CHARS = 60  # of a bad value, inside a reason
LAMBDA_VAR = "__uf_e"
# Stands for the coerced value in a schema check; replaced by its column when the query is built.
COERCED = "__UF_COERCED__"

_TEXT = ValueType(Kind.TEXT, "VARCHAR")
NULL_AS = {
    "string": _TEXT,
    "number": ValueType(Kind.FLOAT, "DOUBLE"),
    "integer": ValueType(Kind.BIGINT, "BIGINT"),
    "boolean": ValueType(Kind.BOOL, "BOOLEAN"),
    "datetime": ValueType(Kind.TIMESTAMP, "TIMESTAMP"),
    "list": ValueType(Kind.LIST, "VARCHAR[]", _TEXT),
}


@dataclass(frozen=True)
class Check:
    """A rule a row can break: `condition` is true when it does; `reason` is SQL giving the text."""

    condition: str
    reason: str


@dataclass
class ValueSql:
    """SQL that turns one typed expression into JSON text."""

    fragment: str  # JSON text of the value; 'null' when null
    checks: list[Check] = field(default_factory=list)
    nulled: list[str] = field(default_factory=list)  # SQL ints: NaN/infinity made null


@dataclass
class Coerced:
    """An attribute after its output schema: the coerced expression, its type, and its rules."""

    expression: str  # over the raw value
    value_type: ValueType
    checks: list[Check] = field(default_factory=list)  # over raw and coerced values
    nulled: list[str] = field(default_factory=list)


def shown(x: str, quoted: bool) -> str:
    """A bad value as reasons show it: `'abc'` for text, `12.5` for numbers; long text cut short."""
    text = f"left(CAST({x} AS VARCHAR), {SHOWN_CHARS})"
    return f"'''' || {text} || ''''" if quoted else text


def reason(label: str, what: str, detail: str | None = None) -> str:
    """`<label>: <what> (<detail>)` as a SQL text expression."""
    head = literal(f"{label}: {what}")
    return head if detail is None else f"{literal(f'{label}: {what} (')} || {detail} || ')'"


def is_null(x: str, vt: ValueType) -> str:
    """True when the value is null or becomes null (NaN, infinity)."""
    if vt.kind == Kind.FLOAT:
        return f"({x} IS NULL OR isnan({as_double(x, vt)}) OR isinf({as_double(x, vt)}))"
    if vt.kind in (Kind.TIMESTAMP, Kind.DATE):
        return f"({x} IS NULL OR isinf({x}))"
    return f"({x} IS NULL)"


def as_double(x: str, vt: ValueType) -> str:
    # DECIMAL has no NaN; FLOAT keeps its own shortest text, so only DECIMAL is widened.
    return f"CAST({x} AS DOUBLE)" if vt.sql.startswith("DECIMAL") else x


def scalar_fragment(x: str, vt: ValueType) -> str:
    """JSON text of a scalar expression; 'null' for null, NaN and infinity."""
    k = vt.kind
    if k == Kind.NULL:
        return "'null'"
    if k == Kind.TEXT:
        return f"coalesce(CAST(to_json(CAST({x} AS VARCHAR)) AS VARCHAR), 'null')"
    if k == Kind.BOOL:
        return f"CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' ELSE 'null' END"
    if k in (Kind.INT, Kind.BIGINT):
        return f"coalesce(CAST({x} AS VARCHAR), 'null')"
    if k == Kind.FLOAT:
        d = as_double(x, vt)
        # -0.0 == 0, so the second branch also turns -0.0 into 0.0.
        return (
            f"CASE WHEN {is_null(x, vt)} THEN 'null' WHEN {d} = 0 THEN '0.0' "
            f"ELSE CAST({d} AS VARCHAR) END"
        )
    if k == Kind.TIMESTAMP:
        # With TimeZone=UTC, TIMESTAMPTZ -> TIMESTAMP is the UTC wall clock; naive is taken as UTC.
        t = x if vt.sql == "TIMESTAMP" else f"CAST({x} AS TIMESTAMP)"
        return (
            f"CASE WHEN {is_null(x, vt)} THEN 'null' "
            f"ELSE '\"' || replace(CAST({t} AS VARCHAR), ' ', 'T') || 'Z\"' END"
        )
    if k == Kind.DATE:
        return f"CASE WHEN {is_null(x, vt)} THEN 'null' ELSE '\"' || CAST({x} AS VARCHAR) || '\"' END"
    raise AssertionError(f"not a scalar: {vt.sql}")


def scalar_checks(x: str, vt: ValueType, label: str, in_list: bool = False) -> list[Check]:
    """Rules every value of this type must keep to be sent as JSON.

    Inside a list (`in_list`) the reason names the attribute only: the item is not in scope.
    """
    def why(what: str, detail: str) -> str:
        return reason(label, f"a list item is {what}") if in_list else reason(label, what, detail)

    if vt.kind == Kind.BIGINT:
        shown_value = literal(f"{label} (a list item)") if in_list else f"{literal(label + ' (')} || CAST({x} AS VARCHAR) || ')'"
        return [Check(f"({x} > {TWO_53} OR {x} < -{TWO_53})", f"'integer beyond 2^53 in ' || {shown_value}")]
    if vt.kind == Kind.TIMESTAMP:
        if vt.sql == "TIMESTAMP_NS":
            return []  # nanosecond timestamps span 1677-2262 only
        # Compared in the column's own type: no per-row cast (TimeZone is UTC, so TZ bounds agree).
        low, end = f"CAST({MIN_TIMESTAMP} AS {vt.sql})", f"CAST({END_TIMESTAMP} AS {vt.sql})"
        return [
            Check(
                f"(({x} < {low} OR {x} >= {end}) AND NOT isinf({x}))",
                why("outside years 1-9999", f"CAST(CAST({x} AS TIMESTAMP) AS VARCHAR)"),
            )
        ]
    if vt.kind == Kind.DATE:
        return [
            Check(
                f"(({x} < {MIN_DATE} OR {x} > {MAX_DATE}) AND NOT isinf({x}))",
                why("outside years 1-9999", f"CAST({x} AS VARCHAR)"),
            )
        ]
    return []


def list_items(x: str, vt: ValueType) -> str:
    """The list's items as sent: null items (and NaN/infinite ones, which become null) removed."""
    assert vt.element is not None
    e = LAMBDA_VAR
    keep = f"NOT {is_null(e, vt.element)}" if vt.element.kind != Kind.NULL else "false"
    return f"list_filter(CAST({x} AS {vt.element.sql}[]), lambda {e}: {keep})"


def value_sql(x: str, vt: ValueType, label: str, in_list: bool = False) -> ValueSql:
    """Normalise expression `x` of type `vt`: JSON text, the rules it must keep, values nulled.

    `in_list`: `x` is a lambda variable, so reasons must not mention it.
    """
    if not is_flat(vt):
        raise AssertionError(f"nested type reached normalisation: {vt.sql}")
    if vt.kind != Kind.LIST:
        nulled = [f"CAST(coalesce({is_null(x, vt)} AND {x} IS NOT NULL, false) AS INTEGER)"]
        return ValueSql(
            scalar_fragment(x, vt),
            scalar_checks(x, vt, label, in_list),
            nulled if vt.kind in (Kind.FLOAT, Kind.TIMESTAMP, Kind.DATE) else [],
        )
    element = vt.element
    assert element is not None
    e = LAMBDA_VAR
    items = list_items(x, vt)
    if element.kind == Kind.TEXT:
        inner = f"CAST(to_json(list_transform({items}, lambda {e}: CAST({e} AS VARCHAR))) AS VARCHAR)"
    else:
        inner = f"'[' || array_to_string(list_transform({items}, lambda {e}: {scalar_fragment(e, element)}), ',') || ']'"
    fragment = f"CASE WHEN {x} IS NULL THEN 'null' ELSE {inner} END"
    checks = [
        Check(f"coalesce(len(list_filter(CAST({x} AS {element.sql}[]), lambda {e}: {c.condition})) > 0, false)", c.reason)
        for c in scalar_checks(e, element, label, in_list=True)
    ]
    nulled = []
    if element.kind in (Kind.FLOAT, Kind.TIMESTAMP, Kind.DATE):
        made_null = f"{is_null(e, element)} AND {e} IS NOT NULL"
        nulled = [f"coalesce(len(list_filter(CAST({x} AS {element.sql}[]), lambda {e}: {made_null})), 0)"]
    return ValueSql(fragment, checks, nulled)


def coerce(raw: str, vt: ValueType, schema: SchemaField, where: str, label: str) -> Coerced:
    """Apply an output schema to the raw value: a coerced expression plus the rules it adds.

    `where` names the spec entry for SpecErrors (e.g. `users.output_schema.seats`).
    """
    target = schema.type
    k = vt.kind
    if schema.max_length is not None and target not in ("string", "list"):
        raise SpecError(f"{where}: max_length applies to types string and list, not {target}")
    mismatch = SpecError(f"{where}: type {target} does not fit the mapped value's type {vt.sql}")
    if k == Kind.NESTED or (k == Kind.LIST and not is_flat(vt)):
        raise mismatch
    coerced = _coerce(raw, vt, target, label, mismatch)
    out = coerced.value_type
    if not schema.nullable:
        coerced.checks.append(Check(is_null(COERCED, out), reason(label, "null not allowed")))
    if schema.max_length is not None:
        n = schema.max_length
        if target == "string":
            coerced.checks.append(
                Check(f"length({COERCED}) > {n}", reason(label, f"longer than {n} characters", f"CAST(length({COERCED}) AS VARCHAR)"))
            )
        else:
            size = f"len({list_items(COERCED, out)})"
            coerced.checks.append(Check(f"{size} > {n}", reason(label, f"more than {n} items", f"CAST({size} AS VARCHAR)")))
    return coerced


def _coerce(raw: str, vt: ValueType, target: str, label: str, mismatch: SpecError) -> Coerced:
    k = vt.kind
    text = ValueType(Kind.TEXT, "VARCHAR")
    if k == Kind.NULL:
        typed = NULL_AS[target]
        return Coerced(f"CAST(NULL AS {typed.sql})", typed)
    if target == "string":
        if k == Kind.TEXT:
            return Coerced(f"CAST({raw} AS VARCHAR)", text)
        if k == Kind.BOOL:
            return Coerced(f"CASE WHEN {raw} THEN 'true' WHEN NOT {raw} THEN 'false' END", text)
        if k in (Kind.INT, Kind.BIGINT):
            return Coerced(f"CAST({raw} AS VARCHAR)", text)
        if k == Kind.FLOAT:
            d = as_double(raw, vt)
            sql = f"CASE WHEN {is_null(raw, vt)} THEN NULL WHEN {d} = 0 THEN '0' ELSE CAST({raw} AS VARCHAR) END"
            return Coerced(sql, text, nulled=value_sql(raw, vt, label).nulled)
        if k in (Kind.TIMESTAMP, Kind.DATE):
            # The same ISO text the value would have been sent as, without the JSON quotes.
            frag = scalar_fragment(raw, vt)
            sql = f"CASE WHEN {is_null(raw, vt)} THEN NULL ELSE trim({frag}, '\"') END"
            base = value_sql(raw, vt, label)
            return Coerced(sql, text, checks=base.checks, nulled=base.nulled)
        raise mismatch
    if target == "number":
        if k in (Kind.INT, Kind.BIGINT, Kind.FLOAT):
            return Coerced(raw, vt)
        if k == Kind.TEXT:
            dbl = ValueType(Kind.FLOAT, "DOUBLE")
            return Coerced(
                f"TRY_CAST({raw} AS DOUBLE)",
                dbl,
                checks=[Check(f"({raw} IS NOT NULL AND {COERCED} IS NULL)", reason(label, "not a number", shown(raw, True)))],
            )
        raise mismatch
    if target == "integer":
        big = ValueType(Kind.BIGINT, "BIGINT")
        if k in (Kind.INT, Kind.BIGINT):
            return Coerced(raw, vt)
        if k in (Kind.FLOAT, Kind.TEXT):
            d = as_double(raw, vt) if k == Kind.FLOAT else f"TRY_CAST({raw} AS DOUBLE)"
            ok = f"isfinite({d}) AND {d} = trunc({d}) AND abs({d}) <= {TWO_53}"
            exact = f"coalesce(TRY_CAST({raw} AS BIGINT), CAST({d} AS BIGINT))" if k == Kind.TEXT else f"CAST({d} AS BIGINT)"
            checks = []
            if k == Kind.TEXT:
                checks.append(
                    Check(f"({raw} IS NOT NULL AND ({d} IS NULL OR NOT isfinite({d})))", reason(label, "not an integer", shown(raw, True)))
                )
            checks.append(
                Check(
                    f"(isfinite({d}) AND abs({d}) > {TWO_53})",
                    f"'integer beyond 2^53 in ' || {literal(label)} || ' (' || {shown(raw, False)} || ')'",
                )
            )
            checks.append(
                Check(f"(isfinite({d}) AND {d} <> trunc({d}))", reason(label, "not an integer", shown(raw, k == Kind.TEXT)))
            )
            nulled = value_sql(raw, vt, label).nulled if k == Kind.FLOAT else []
            return Coerced(f"CASE WHEN {ok} THEN {exact} END", big, checks=checks, nulled=nulled)
        raise mismatch
    if target == "boolean":
        boolean = ValueType(Kind.BOOL, "BOOLEAN")
        if k == Kind.BOOL:
            return Coerced(raw, vt)
        if k == Kind.TEXT:
            return Coerced(
                f"TRY_CAST(trim(CAST({raw} AS VARCHAR)) AS BOOLEAN)",
                boolean,
                checks=[Check(f"({raw} IS NOT NULL AND {COERCED} IS NULL)", reason(label, "not a boolean", shown(raw, True)))],
            )
        if k in (Kind.INT, Kind.BIGINT):
            return Coerced(
                f"CASE WHEN {raw} = 1 THEN true WHEN {raw} = 0 THEN false END",
                boolean,
                checks=[Check(f"({raw} IS NOT NULL AND {raw} NOT IN (0, 1))", reason(label, "not a boolean", shown(raw, False)))],
            )
        raise mismatch
    if target == "datetime":
        if k == Kind.TIMESTAMP:
            return Coerced(raw, vt)
        if k == Kind.DATE:
            # A datetime attribute is sent as a full instant: a date is its midnight, UTC.
            return Coerced(f"CAST({raw} AS TIMESTAMP)", ValueType(Kind.TIMESTAMP, "TIMESTAMP"))
        if k == Kind.TEXT:
            # Text with an offset keeps it; naive text is read in the session's zone, UTC.
            return Coerced(
                f"TRY_CAST(CAST({raw} AS VARCHAR) AS TIMESTAMPTZ)",
                ValueType(Kind.TIMESTAMP, "TIMESTAMP WITH TIME ZONE"),
                checks=[Check(f"({raw} IS NOT NULL AND {COERCED} IS NULL)", reason(label, "not a datetime", shown(raw, True)))],
            )
        raise mismatch
    if target == "list":
        if k == Kind.LIST:
            return Coerced(raw, vt)
        raise mismatch
    raise AssertionError(target)
