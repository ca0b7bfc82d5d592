"""The type mapping on what the real ADBC Postgres driver returns from a real server.

This reads through the driver directly (the Postgres source itself is tested with it
elsewhere): only `normalize_reader`'s handling of its Arrow is under test here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import duckdb
import pytest

from userflow_assets.warehouse.arrow_types import normalize_reader
from userflow_assets.warehouse.source import SourceError

adbc_pg = pytest.importorskip("adbc_driver_postgresql.dbapi")

TABLE = """
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE t (
  id int, account numeric(20, 0), arr numeric(12, 2), big numeric(50, 10), free numeric,
  traits jsonb, ident uuid, tags text[], seen timestamptz, made timestamp, span interval, m mood
);
INSERT INTO t VALUES (
  1, 12345678901234567, 1234.50, 1.5, 3.14159265358979323846,
  '{"plan": "pro"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a,b}',
  '2024-05-01 10:00:00+02', '2024-05-01 10:00:00', '1 day 2 hours', 'sad'
);
INSERT INTO t (id) VALUES (2);
"""


def staged(url: str, sql: str) -> tuple[dict, list[tuple]]:
    with adbc_pg.connect(url) as conn, conn.cursor() as cursor, duckdb.connect() as con:
        cursor.execute(sql)
        con.execute("SET TimeZone='UTC'")
        con.register("src", normalize_reader(cursor.fetch_record_batch()))
        con.execute("CREATE TABLE staged AS SELECT * FROM src")
        types = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name='staged' ORDER BY ordinal_position").fetchall()
        return dict(types), con.execute("SELECT * FROM staged ORDER BY id").fetchall()


def test_postgres_types_as_the_adbc_driver_sends_them_are_staged_with_their_values(postgres, postgres_url):
    postgres.psql(TABLE, postgres_url.rsplit("/", 1)[1])
    types, rows = staged(postgres_url, "SELECT * FROM t")
    assert types == {
        "id": "INTEGER", "account": "BIGINT", "arr": "DECIMAL(12,2)", "big": "DOUBLE", "free": "DOUBLE",
        "traits": "JSON", "ident": "UUID", "tags": "VARCHAR[]", "seen": "TIMESTAMP WITH TIME ZONE",
        "made": "TIMESTAMP", "span": "INTERVAL", "m": "VARCHAR",
    }
    assert rows[0] == (
        1, 12345678901234567, Decimal("1234.50"), 1.5, 3.141592653589793,
        '{"plan": "pro"}', uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ["a", "b"],
        dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc), dt.datetime(2024, 5, 1, 10, 0), dt.timedelta(days=1, hours=2), "sad",
    )
    assert rows[1] == (2, *([None] * 11))


def test_a_postgres_numeric_no_decimal_holds_is_null(postgres, postgres_url):
    # NaN (the only non-finite value a constrained numeric holds): Userflow's JSON numbers cannot carry it.
    sql = "SELECT 1 AS id, 'NaN'::numeric(6, 2) AS ratio, 'NaN'::numeric(20, 0) AS n, 2.5::numeric(6, 2) AS ok"
    assert staged(postgres_url, sql)[1] == [(1, None, None, Decimal("2.50"))]


def test_a_postgres_numeric_beyond_bigint_names_the_column(postgres, postgres_url):
    with pytest.raises((SourceError, duckdb.Error), match=r"column 'account' .*cannot be read as int64"):
        staged(postgres_url, "SELECT 1 AS id, 99999999999999999999::numeric(20, 0) AS account")
