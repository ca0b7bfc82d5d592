"""Redshift, Databricks and MySQL through their real drivers, up to where a server would answer.

No Redshift or Databricks server can run here (redshift_connector cannot even open a session
on a plain PostgreSQL: it sends Redshift's own startup parameters). What runs: the URL's
options, the real connection attempt against a refused loopback port with our message, the
driver's column types turned into Arrow and staged into DuckDB, and the probe's checksum SQL
(checked as text).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from ports import refused_port

from userflow_assets.warehouse.arrow_types import normalize_reader
from userflow_assets.warehouse.drivers import databricks, mysql, redshift
from userflow_assets.warehouse.drivers.common import rows_batch
from userflow_assets.warehouse.source import SourceError, load_factory

PASSWORD = "Pa55-word-never-shown"
PARAMS = {"LAST_SYNC_TIMESTAMP": dt.datetime(2024, 1, 1)}
CURSOR_SQL = "SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"


def staged(batch: pa.RecordBatch) -> list[tuple]:
    """Column types and the rows, after staging `batch` into DuckDB as the sync does."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.register("src", normalize_reader(pa.RecordBatchReader.from_batches(batch.schema, [batch])))
        con.execute("CREATE TABLE staged AS SELECT * FROM src")
        types = [r[0] for r in con.execute("SELECT data_type FROM information_schema.columns WHERE table_name='staged' ORDER BY ordinal_position").fetchall()]
        return [tuple(types), *con.execute("SELECT * FROM staged").fetchall()]


@pytest.mark.parametrize(
    ("scheme", "url", "where"),
    [
        ("redshift", "redshift://sync@127.0.0.1:{port}/analytics?connect_timeout=5", "127.0.0.1:{port} (database analytics)"),
        ("mysql", "mysql://sync@127.0.0.1:{port}/app?connect_timeout=5", "127.0.0.1:{port} (database app)"),
        (
            "databricks",
            "databricks://127.0.0.1:{port}/sql/1.0/warehouses/abc?catalog=main&connect_timeout=2",
            "127.0.0.1:{port}/sql/1.0/warehouses/abc (catalog main)",
        ),
    ],
)
def test_an_unreachable_warehouse_is_named_with_its_address_and_never_the_password(scheme, url, where):
    with refused_port() as port:
        source = load_factory(scheme)(url.format(port=port), password=PASSWORD)
        with pytest.raises(SourceError) as caught:
            source.fetch(CURSOR_SQL, PARAMS)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the {scheme} warehouse at {where.format(port=port)}: ")
    assert PASSWORD not in message and PASSWORD not in repr(source)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


# --- Redshift ----------------------------------------------------------------------------


def test_redshift_url_defaults_port_and_database_and_keeps_tls_on():
    source = redshift.redshift_source("redshift://sync@cluster.abc.eu-west-1.redshift.amazonaws.com")
    assert (source.port, source.database, source.ssl, source.user) == (5439, "dev", True, "sync")
    assert redshift.redshift_source("redshift://sync@h/db?ssl=false").ssl is False


def test_redshift_numeric_modifier_gives_precision_and_scale():
    assert redshift.numeric_type((12 << 16 | 2) + 4) == pa.decimal128(12, 2)
    assert redshift.numeric_type((38 << 16) + 4) == pa.decimal128(38, 0)
    assert redshift.numeric_type(-1) == pa.float64()  # unconstrained: a number, as from Postgres


def test_redshift_rows_become_typed_arrow_that_duckdb_stages():
    # The row description and values as redshift_connector returns them.
    row_desc = [
        {"type_oid": 20, "type_modifier": -1},
        {"type_oid": 1700, "type_modifier": (19 << 16 | 0) + 4},
        {"type_oid": 1700, "type_modifier": (12 << 16 | 2) + 4},
        {"type_oid": 1184, "type_modifier": -1},
        {"type_oid": 1114, "type_modifier": -1},
        {"type_oid": 4000, "type_modifier": -1},
        {"type_oid": 1043, "type_modifier": -1},
        {"type_oid": 2950, "type_modifier": -1},
    ]
    names = ["id", "account_id", "arr", "seen_at", "signed_up_at", "traits", "email", "uid"]
    schema = redshift.arrow_schema(row_desc, names)
    utc = dt.timezone.utc
    rows = [
        (1, Decimal("9000000000000000001"), Decimal("12.50"), dt.datetime(2024, 5, 1, 8, tzinfo=utc),
         dt.datetime(2024, 1, 2, 3, 4, 5), '{"plan": "pro"}', "a@x.io", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        (2, None, None, None, None, None, None, None),
    ]
    out = staged(rows_batch(rows, schema))
    assert out[0] == ("BIGINT", "BIGINT", "DECIMAL(12,2)", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "JSON", "VARCHAR", "VARCHAR")
    assert out[1] == (1, 9000000000000000001, Decimal("12.50"), dt.datetime(2024, 5, 1, 8, tzinfo=utc),
                      dt.datetime(2024, 1, 2, 3, 4, 5), '{"plan": "pro"}', "a@x.io", "0f8fad5b-d9cb-469f-a165-70867728950e")
    assert out[2] == (2, None, None, None, None, None, None, None)


def test_a_value_that_does_not_fit_its_column_type_names_the_column():
    schema = redshift.arrow_schema([{"type_oid": 1700, "type_modifier": (4 << 16 | 2) + 4}], ["price"])
    with pytest.raises(SourceError, match=r"column 'price' cannot be read as decimal128\(4, 2\)"):
        rows_batch([(Decimal("123.45"),)], schema)


def test_redshift_checksum_sums_row_hashes_over_quoted_columns():
    source = redshift.redshift_source("redshift://u@h/db")
    assert source.checksum_sql("SELECT 1", ["id", 'we"ird']) == (
        "SELECT count(*), SUM(STRTOL(LEFT(MD5("
        "COALESCE(QUOTE_LITERAL(\"id\"::VARCHAR), 'NULL') || ',' || COALESCE(QUOTE_LITERAL(\"we\"\"ird\"::VARCHAR), 'NULL')"
        "), 15), 16)::DECIMAL(38, 0)) FROM (\nSELECT 1\n) AS src"
    )


# --- Databricks --------------------------------------------------------------------------


def test_databricks_url_gives_the_connection_arguments():
    source = databricks.databricks_source(
        "databricks://dbc-1234.cloud.databricks.com/sql/1.0/warehouses/8a7b?catalog=main&schema=product",
        password=PASSWORD,
    )
    kwargs = source.connect_kwargs()
    assert kwargs["server_hostname"] == "dbc-1234.cloud.databricks.com"
    assert kwargs["http_path"] == "/sql/1.0/warehouses/8a7b"
    assert (kwargs["catalog"], kwargs["schema"], kwargs["_port"]) == ("main", "product", 443)
    assert kwargs["access_token"] == PASSWORD
    assert "_retry_stop_after_attempts_duration" not in kwargs  # the connector's own patience unless asked


def test_databricks_url_without_a_path_is_refused():
    with pytest.raises(SourceError, match="names no HTTP path"):
        databricks.databricks_source("databricks://dbc-1234.cloud.databricks.com")


def test_databricks_checksum_hashes_whole_rows():
    source = databricks.databricks_source("databricks://h/sql/1.0/warehouses/x")
    assert source.checksum_sql("SELECT 1", ["a"]) == "SELECT count(*), bit_xor(xxhash64(*)) FROM (\nSELECT 1\n) AS src"


# --- MySQL -------------------------------------------------------------------------------


def test_mysql_description_types_become_arrow_that_duckdb_stages():
    # cursor.description entries: (name, type code, 4 x None, null_ok, flags, charset).
    description = [
        ("id", 8, None, None, None, None, 0, 32, 63),  # BIGINT UNSIGNED
        ("seats", 3, None, None, None, None, 1, 0, 63),  # INT
        ("arr", 246, None, None, None, None, 1, 0, 63),  # DECIMAL(12,2)
        ("updated_at", 7, None, None, None, None, 1, 0, 63),  # TIMESTAMP
        ("traits", 245, None, None, None, None, 1, 0, 63),  # JSON
        ("plan", 254, None, None, None, None, 1, 256, 255),  # ENUM, as the binary protocol tags it
        ("avatar", 252, None, None, None, None, 1, 128, 63),  # BLOB
        ("name", 253, None, None, None, None, 1, 0, 255),  # VARCHAR utf8mb4
        ("usage", 11, None, None, None, None, 1, 0, 63),  # TIME
    ]
    schema = mysql.arrow_schema(description)
    rows = [
        (2**63 + 5, 3, Decimal("12.50"), dt.datetime(2024, 5, 1, 8), '{"a": 1}', "pro", bytearray(b"\x89PNG"),
         "Zoë", dt.timedelta(hours=30)),
        (1, None, None, None, None, None, None, None, None),
    ]
    out = staged(rows_batch(rows, schema))
    assert out[0] == ("UBIGINT", "BIGINT", "DOUBLE", "TIMESTAMP", "JSON", "VARCHAR", "BLOB", "VARCHAR", "INTERVAL")
    assert out[1] == (2**63 + 5, 3, 12.5, dt.datetime(2024, 5, 1, 8), '{"a": 1}', "pro", b"\x89PNG", "Zoë", dt.timedelta(hours=30))
    assert out[2] == (1, None, None, None, None, None, None, None, None)


def test_mysql_checksum_xors_row_hashes_telling_null_from_the_text_null():
    source = mysql.mysql_source("mysql://u@h/db")
    assert source.checksum_sql("SELECT 1", ["id", "na`me"]) == (
        "SELECT count(*), BIT_XOR(CAST(CONV(LEFT(MD5(CONCAT_WS(',', QUOTE(`id`), QUOTE(`na``me`))), 16), 16, 10) AS UNSIGNED))"
        " FROM (\nSELECT 1\n) AS src"
    )


def test_mysql_url_defaults():
    source = mysql.mysql_source("mysql://sync@db.internal/app")
    assert (source.host, source.port, source.database, source.ssl_disabled) == ("db.internal", 3306, "app", False)
