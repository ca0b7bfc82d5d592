"""A warehouse driver's Arrow types, mapped to what DuckDB stages and the transform reads.

DuckDB reads most Arrow types as they come (structs, lists, maps, large and view strings,
intervals, durations, `arrow.uuid`, `arrow.json`); only these change, batch by batch, with
one schema for the whole stream:

- decimal, scale 0 (Snowflake `NUMBER(38,0)`, every Snowflake integer): BIGINT. A value
  beyond int64 fails the read naming the column; Userflow's JSON numbers could not carry it
  anyway (cast it to text in the query to keep it).
- decimal, scale > 0, precision <= 38 (BigQuery `NUMERIC`): kept, DuckDB's exact DECIMAL.
- decimal, precision > 38 (BigQuery `BIGNUMERIC`): DOUBLE, the nearest value; DuckDB's
  DECIMAL stops at 38 digits.
- Postgres NUMERIC(p, s), which ADBC sends as text with its type modifier: the decimal it
  declares, then as above, `NaN` and `Infinity` (which no decimal holds) as null; an
  unconstrained NUMERIC: DOUBLE, like BIGNUMERIC, so Userflow gets a number, not its digits.
- JSON sent as text, recognised by field metadata (Snowflake `VARIANT`/`OBJECT`/`ARRAY`,
  BigQuery `JSON`, Postgres `json`/`jsonb`): DuckDB JSON, so filters can read paths in it.
- timestamps with a time zone: the same instants in UTC; naive timestamps stay naive (the
  transform reads them as UTC).
- dictionary-encoded columns (enums): their values; each batch's dictionary would
  otherwise differ.
- half floats: FLOAT. Other extension types: their storage type.
- unions: refused (`SourceError` naming the column); no warehouse we read returns them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from userflow_assets.warehouse.source import SourceError

INT64_DIGITS = 18  # every decimal of this many digits fits int64
DUCKDB_MAX_DECIMAL = 38
JSON = pa.json_(pa.utf8())
# Postgres NUMERIC's text for values no decimal or integer holds, compared in lower case.
NON_FINITE = pa.array(["nan", "infinity", "-infinity", "inf", "-inf"])

# Field metadata (key, value) pairs naming JSON text, compared case-insensitively.
_JSON_MARKS = {
    (b"logicaltype", b"variant"),  # Snowflake's Arrow result format
    (b"logicaltype", b"object"),
    (b"logicaltype", b"array"),
    (b"snowflake_type", b"variant"),  # Snowflake ADBC, on an empty result
    (b"snowflake_type", b"object"),
    (b"snowflake_type", b"array"),
    (b"arrow:extension:name", b"google:sqltype:json"),  # BigQuery storage read
    (b"adbc:postgresql:typname", b"json"),
    (b"adbc:postgresql:typname", b"jsonb"),
}
_KEPT_EXTENSIONS = {"arrow.json", "arrow.uuid"}  # DuckDB reads these as JSON and UUID


def _is_json_text(field: pa.Field) -> bool:
    if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
        return False
    meta = field.metadata or {}
    return any((k.lower(), v.lower()) in _JSON_MARKS for k, v in meta.items())


def numeric_from_typmod(type_modifier: int) -> pa.DataType | None:
    """Postgres/Redshift NUMERIC(p, s) from its type modifier ((p << 16 | s) + 4); None if unconstrained."""
    if type_modifier < 4:
        return None
    precision, scale = (type_modifier - 4) >> 16, (type_modifier - 4) & 0xFFFF
    if precision > DUCKDB_MAX_DECIMAL:
        return pa.decimal256(min(precision, 76), scale)
    return pa.decimal128(precision, scale)


def _is_postgres_numeric(field: pa.Field) -> bool:
    meta = field.metadata or {}
    return (meta.get(b"POSTGRESQL:type") or meta.get(b"ADBC:postgresql:typname")) == b"numeric"


def _postgres_numeric(field: pa.Field) -> pa.DataType:
    """The type a Postgres NUMERIC sent as text (ADBC's default) is staged as, from its typmod metadata."""
    declared = numeric_from_typmod(int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1")))
    return pa.float64() if declared is None else _decimal_type(declared)


def _decimal_type(t: pa.DataType) -> pa.DataType:
    if t.scale == 0:
        return pa.int64()
    if t.precision > DUCKDB_MAX_DECIMAL:
        return pa.float64()
    return pa.decimal128(t.precision, t.scale)


def _target_field(field: pa.Field, column: str) -> pa.Field:
    target = field.with_type(_target_type(field, column))
    if not field.metadata:
        return target
    # An extension name pyarrow did not recognise (BigQuery's `google:sqlType:*`) is dropped: a
    # known extension travels in the type itself, and DuckDB must not guess at an unknown one.
    kept = {k: v for k, v in field.metadata.items() if not k.startswith(b"ARROW:extension:")}
    return target.with_metadata(kept)


def _target_type(field: pa.Field, column: str) -> pa.DataType:
    """The type `field` is staged as; `column` names it (with its path) in errors."""
    t = field.type
    if _is_json_text(field):
        return JSON
    if _is_postgres_numeric(field):
        return _postgres_numeric(field)
    if isinstance(t, pa.ExtensionType):
        if t.extension_name in _KEPT_EXTENSIONS:
            return t
        return _target_type(field.with_type(t.storage_type), column)
    if pa.types.is_decimal(t):
        return _decimal_type(t)
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit, "UTC")
    if pa.types.is_dictionary(t):
        return _target_type(field.with_type(t.value_type), column)
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_union(t) or pa.types.is_run_end_encoded(t):
        raise SourceError(f"column {column!r} has type {t}, which cannot be staged; cast it in the query")
    if pa.types.is_struct(t):
        return pa.struct([_target_field(t.field(i), f"{column}.{t.field(i).name}") for i in range(t.num_fields)])
    if pa.types.is_map(t):
        key = _target_field(t.key_field, f"{column}.key")
        item = _target_field(t.item_field, f"{column}.value")
        return pa.map_(key, item)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(_target_field(t.value_field, f"{column}[]"))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_target_field(t.value_field, f"{column}[]"), t.list_size)
    return t


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """The schema the batches are staged with; raises SourceError for a type that cannot map."""
    return pa.schema([_target_field(f, f.name) for f in schema], metadata=schema.metadata)


def _convert(column: pa.Array, source: pa.Field, target: pa.Field) -> pa.Array:
    if column.type == target.type:
        return column
    try:
        if isinstance(column.type, pa.ExtensionType) and not isinstance(target.type, pa.ExtensionType):
            column = column.storage
        if _is_postgres_numeric(source) and not pa.types.is_floating(target.type):
            column = _without_non_finite(column)
        return column.cast(target.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SourceError(f"column {source.name!r} ({source.type}) cannot be read as {target.type}: {error}") from None


def _without_non_finite(column: pa.Array) -> pa.Array:
    """Postgres NUMERIC text (the driver's opaque type) with NaN and the infinities as null."""
    text = column.storage if isinstance(column.type, pa.BaseExtensionType) else column
    return pc.if_else(pc.is_in(pc.utf8_lower(text), NON_FINITE), None, text)


def normalize_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` converted to `schema` (from `normalize_schema` of the batch's own schema)."""
    columns = [_convert(batch.column(i), batch.schema.field(i), schema.field(i)) for i in range(batch.num_columns)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def normalize_reader(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """`reader`'s batches, converted one at a time as they are read."""
    source = reader.schema
    target = normalize_schema(source)
    if target.equals(source, check_metadata=True):
        return reader

    def batches() -> Iterator[pa.RecordBatch]:
        with reader:
            for batch in reader:
                yield normalize_batch(batch, target)

    return pa.RecordBatchReader.from_batches(target, batches())
