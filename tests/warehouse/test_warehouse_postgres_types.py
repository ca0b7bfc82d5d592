"""Every Postgres type the sync meets, staged as transform reads it and sent as Userflow takes it."""

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from postgres_server import PostgresServer

from userflow_assets.spec import ObjectSpec
from userflow_assets.transform import build_records
from userflow_assets.warehouse.resources import WarehouseResource
from userflow_assets.warehouse.staging import stage_rows

ROWS = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE typed (
    id text, amount numeric(10, 2), ratio numeric, props jsonb, doc json, counts int[], tags text[],
    ref uuid, seen_at timestamptz, born_at timestamp, waited interval, feeling mood
);
INSERT INTO typed VALUES
    ('u1', 1234.5, 0.125, '{"plan": "pro", "seats": 3}', '{"a": [1, 2]}', '{1,2,3}', '{x,y}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-04 05:06:07+02', '2024-03-04 05:06:07', '1 day 02:00:00', 'happy'),
    ('u2', 'NaN', 'Infinity', NULL, NULL, '{}', NULL, NULL, NULL, NULL, NULL, NULL);
"""


@pytest.fixture
def staged(tmp_path: Path, postgres: PostgresServer, postgres_url: str) -> duckdb.DuckDBPyConnection:
    postgres.psql(ROWS, database=postgres_url.rsplit("/", 1)[1])
    con = duckdb.connect(str(tmp_path / "state.duckdb"))
    con.execute("SET TimeZone='UTC'")
    source = WarehouseResource(url=postgres_url).source()
    stage_rows(con, source, "SELECT * FROM typed ORDER BY id", {}, "typed", "typed.sql")
    return con


def _type(con: duckdb.DuckDBPyConnection, name: str) -> str:
    query = "SELECT data_type FROM information_schema.columns WHERE table_name = 'typed' AND column_name = ?"
    return con.execute(query, [name]).fetchone()[0]


@pytest.mark.parametrize(
    ("column", "duckdb_type", "values"),
    [
        # numeric(p,s) arrives as text: DECIMAL(p,s); NaN, which a decimal cannot hold, is null.
        ("amount", "DECIMAL(10,2)", ["1234.50", None]),
        # Unconstrained numeric: DOUBLE, Infinity kept (sent as null, like any non-finite number).
        ("ratio", "DOUBLE", ["0.125", "inf"]),
        ("props", "JSON", ['{"plan": "pro", "seats": 3}', None]),
        ("doc", "JSON", ['{"a": [1, 2]}', None]),
        ("counts", "INTEGER[]", ["[1, 2, 3]", "[]"]),
        ("tags", "VARCHAR[]", ["[x, y]", None]),
        ("ref", "UUID", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None]),
        ("seen_at", "TIMESTAMP WITH TIME ZONE", ["2024-03-04 03:06:07+00", None]),
        ("born_at", "TIMESTAMP", ["2024-03-04 05:06:07", None]),
        ("waited", "INTERVAL", ["1 day 02:00:00", None]),
        ("feeling", "VARCHAR", ["happy", None]),
    ],
)
def test_each_postgres_type_is_staged_as_its_duckdb_type(
    staged: duckdb.DuckDBPyConnection, column: str, duckdb_type: str, values: list[Any]
) -> None:
    kind = _type(staged, column)
    as_text = [r[0] for r in staged.execute(f"SELECT CAST({column} AS VARCHAR) FROM staging.typed ORDER BY id").fetchall()]
    assert (kind, as_text) == (duckdb_type, values)


def test_each_type_is_sent_as_userflow_takes_it(staged: duckdb.DuckDBPyConnection) -> None:
    staged.execute("CREATE SCHEMA IF NOT EXISTS transform")
    mapping = {
        name: name for name in ("amount", "ratio", "counts", "tags", "ref", "seen_at", "born_at", "waited", "feeling")
    }
    mapping["plan"] = "json_extract_string(props, '$.plan')"
    spec = ObjectSpec(query="typed.sql", id_column="id", mapping=mapping)
    result = build_records(staged, spec, "user", "staging.typed", "transform.r", "transform.rej")
    assert (result.records, result.rejected) == (2, 0)
    sent = {i: json.loads(a) for i, a in staged.execute("SELECT id, attributes FROM transform.r").fetchall()}
    assert sent["u1"] == {
        "amount": 1234.5,
        "ratio": 0.125,
        "counts": [1, 2, 3],
        "tags": ["x", "y"],
        "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "seen_at": "2024-03-04T03:06:07Z",
        "born_at": "2024-03-04T05:06:07Z",
        "waited": "1 day 02:00:00",
        "feeling": "happy",
        "plan": "pro",
    }
    assert sent["u2"] == {
        "amount": None, "ratio": None, "counts": [], "tags": None, "ref": None, "seen_at": None,
        "born_at": None, "waited": None, "feeling": None, "plan": None,
    }
