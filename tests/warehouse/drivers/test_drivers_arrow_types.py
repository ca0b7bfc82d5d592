"""Each Arrow type a warehouse driver returns, normalized and staged into DuckDB with its values.

The arrays have the shapes the drivers send: Snowflake ADBC's decimal128(38,0) integers and
VARIANT text with `logicalType` metadata, BigQuery's NUMERIC/BIGNUMERIC decimals, JSON text
tagged `google:sqlType:json`, STRUCT and ARRAY, and the rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from userflow_assets.warehouse.arrow_types import normalize_reader, normalize_schema
from userflow_assets.warehouse.source import SourceError


def reader_of(*batches: pa.Array, field: pa.Field | None = None) -> pa.RecordBatchReader:
    """One column `c`, one batch per array (so the stream has more than one batch)."""
    field = field or pa.field("c", batches[0].type)
    schema = pa.schema([field])
    return pa.RecordBatchReader.from_batches(schema, [pa.record_batch([a], schema=schema) for a in batches])


def staged(reader: pa.RecordBatchReader) -> tuple[str, list]:
    """DuckDB's type for `c` and its values, after CREATE TABLE AS from the normalized reader."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.register("src", normalize_reader(reader))
        con.execute("CREATE TABLE staged AS SELECT * FROM src")
        kind = con.execute("SELECT data_type FROM information_schema.columns WHERE table_name='staged'").fetchone()[0]
        return kind, [r[0] for r in con.execute("SELECT c FROM staged").fetchall()]


def test_snowflake_number_38_0_becomes_bigint():
    big = pa.array([Decimal(1), Decimal(2**62)], pa.decimal128(38, 0))
    assert staged(reader_of(big, pa.array([None], pa.decimal128(38, 0)))) == ("BIGINT", [1, 2**62, None])


def test_a_scale_0_value_beyond_int64_names_the_column():
    too_big = pa.array([Decimal(2**63)], pa.decimal128(38, 0))
    reader = normalize_reader(reader_of(pa.array([Decimal(1)], pa.decimal128(38, 0)), too_big))
    assert reader.read_next_batch().column(0).to_pylist() == [1]  # batches are converted as they come
    with pytest.raises(SourceError, match=r"column 'c' \(decimal128\(38, 0\)\) cannot be read as int64"):
        reader.read_next_batch()


def test_bigquery_numeric_stays_an_exact_decimal():
    numeric = pa.array([Decimal("12345678901234567890.123456789"), None], pa.decimal128(38, 9))
    assert staged(reader_of(numeric)) == ("DECIMAL(38,9)", [Decimal("12345678901234567890.123456789"), None])


def test_bigquery_bignumeric_becomes_the_nearest_double():
    big = pa.array([Decimal("1.5"), Decimal("-123456789012345678901234567890.25")], pa.decimal256(76, 38))
    assert staged(reader_of(big)) == ("DOUBLE", [1.5, -1.2345678901234568e29])


def test_a_narrow_decimal256_is_kept_exact():
    assert staged(reader_of(pa.array([Decimal("2.25")], pa.decimal256(20, 2)))) == ("DECIMAL(20,2)", [Decimal("2.25")])


@pytest.mark.parametrize(
    "metadata",
    [
        {"logicalType": "VARIANT"},
        {"logicalType": "OBJECT"},
        {"SNOWFLAKE_TYPE": "array"},
        {"ARROW:extension:name": "google:sqlType:json"},
        {"ADBC:postgresql:typname": "jsonb"},
    ],
)
def test_json_sent_as_text_becomes_duckdb_json(metadata):
    field = pa.field("c", pa.string(), metadata=metadata)
    kind, values = staged(reader_of(pa.array(['{"plan": "pro", "seats": [1, 2]}', None]), field=field))
    assert kind == "JSON"
    assert values == ['{"plan": "pro", "seats": [1, 2]}', None]


def test_json_paths_read_from_the_staged_json():
    field = pa.field("c", pa.large_string(), metadata={"logicalType": "VARIANT"})
    with duckdb.connect() as con:
        con.register("src", normalize_reader(reader_of(pa.array(['{"plan": "pro"}'], pa.large_string()), field=field)))
        assert con.execute("SELECT c->>'plan' FROM src").fetchone() == ("pro",)


def test_bigquery_geography_text_loses_its_unknown_extension_name_and_stays_text():
    field = pa.field("c", pa.string(), metadata={"ARROW:extension:name": "google:sqlType:geography"})
    reader = reader_of(pa.array(["POINT(1 2)"]), field=field)
    assert normalize_schema(reader.schema).field("c").metadata in (None, {})
    assert staged(reader) == ("VARCHAR", ["POINT(1 2)"])


def test_plain_text_is_not_taken_for_json():
    field = pa.field("c", pa.string(), metadata={"logicalType": "TEXT"})
    assert staged(reader_of(pa.array(["{not json"]), field=field)) == ("VARCHAR", ["{not json"])


def test_bigquery_struct_and_array_load_natively_with_nested_types_mapped():
    struct = pa.struct([("id", pa.decimal128(38, 0)), ("role", pa.dictionary(pa.int8(), pa.string()))])
    values = pa.array([[{"id": Decimal(7), "role": "admin"}], []], pa.list_(struct))
    kind, rows = staged(reader_of(values))
    assert kind == "STRUCT(id BIGINT, \"role\" VARCHAR)[]"
    assert rows == [[{"id": 7, "role": "admin"}], []]


def test_uuid_extension_becomes_duckdb_uuid():
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert staged(reader_of(pa.array([ident.bytes, None], pa.uuid()))) == ("UUID", [ident, None])


def test_month_day_nano_interval_loads_as_interval():
    reader = reader_of(pa.array([pa.MonthDayNano([1, 2, 3_000_000_000])], pa.month_day_nano_interval()))
    with duckdb.connect() as con:
        con.register("src", normalize_reader(reader))
        con.execute("CREATE TABLE staged AS SELECT * FROM src")
        assert con.execute("SELECT typeof(c), c::VARCHAR FROM staged").fetchone() == ("INTERVAL", "1 month 2 days 00:00:03")


def test_timestamps_with_a_zone_are_staged_as_the_same_instants_in_utc():
    new_york = pa.array([dt.datetime(2024, 3, 10, 12, 0)], pa.timestamp("us")).cast(pa.timestamp("us", "UTC"))
    reader = reader_of(new_york.cast(pa.timestamp("us", "America/New_York")))
    assert normalize_schema(reader.schema).field("c").type == pa.timestamp("us", "UTC")
    assert staged(reader) == ("TIMESTAMP WITH TIME ZONE", [dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.timezone.utc)])


def test_naive_timestamps_stay_naive_whatever_the_unit():
    ns = pa.array([1_700_000_000_123_456_000], pa.timestamp("ns"))
    assert staged(reader_of(ns)) == ("TIMESTAMP_NS", [dt.datetime(2023, 11, 14, 22, 13, 20, 123456)])


def test_large_string_and_large_binary_load_as_varchar_and_blob():
    assert staged(reader_of(pa.array(["é" * 3], pa.large_string()))) == ("VARCHAR", ["ééé"])
    assert staged(reader_of(pa.array([b"\x00\xff"], pa.large_binary()))) == ("BLOB", [b"\x00\xff"])


def test_dictionary_encoded_enums_become_text_across_batches_with_different_dictionaries():
    first = pa.array(["free", "pro"]).dictionary_encode()
    second = pa.array(["enterprise"]).dictionary_encode()
    assert staged(reader_of(first, second)) == ("VARCHAR", ["free", "pro", "enterprise"])


def test_time_and_date_load_as_time_and_date():
    assert staged(reader_of(pa.array([3_600_000_000], pa.time64("us")))) == ("TIME", [dt.time(1, 0)])
    assert staged(reader_of(pa.array([86_400_000], pa.date64()))) == ("DATE", [dt.date(1970, 1, 2)])


def test_a_null_typed_column_loads():
    kind, values = staged(reader_of(pa.array([None, None], pa.null())))
    assert values == [None, None]
    assert kind in ('"NULL"', "NULL", "INTEGER")


def test_half_floats_become_float():
    assert staged(reader_of(pa.array(np.array([1.5], dtype=np.float16)))) == ("FLOAT", [1.5])


def test_a_union_is_refused_naming_the_column_and_its_type():
    union = pa.UnionArray.from_dense(pa.array([0], pa.int8()), pa.array([0], pa.int32()), [pa.array([1]), pa.array(["a"])])
    schema = pa.schema([pa.field("payload", union.type)])
    with pytest.raises(SourceError, match=r"column 'payload' has type dense_union<.*>, which cannot be staged"):
        normalize_schema(schema)


def test_a_union_inside_a_struct_names_its_path():
    union = pa.sparse_union([pa.field("0", pa.int64())])
    schema = pa.schema([pa.field("meta", pa.struct([("v", union)]))])
    with pytest.raises(SourceError, match=r"column 'meta.v'"):
        normalize_schema(schema)


def test_a_reader_needing_no_change_is_returned_as_it_is():
    reader = reader_of(pa.array([1, 2]))
    assert normalize_reader(reader) is reader


def test_an_empty_result_still_stages_its_mapped_columns():
    schema = pa.schema([pa.field("id", pa.decimal128(38, 0)), pa.field("traits", pa.string(), metadata={"logicalType": "OBJECT"})])
    with duckdb.connect() as con:
        con.register("src", normalize_reader(pa.RecordBatchReader.from_batches(schema, [])))
        con.execute("CREATE TABLE staged AS SELECT * FROM src")
        assert con.execute("SELECT count(*) FROM staged").fetchone() == (0,)
        types = con.execute("SELECT data_type FROM information_schema.columns WHERE table_name='staged' ORDER BY ordinal_position").fetchall()
    assert types == [("BIGINT",), ("JSON",)]
