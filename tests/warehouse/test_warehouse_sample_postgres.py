"""`python -m userflow_assets.sample --to postgresql://...`: the same sample, dirty rows included, in Postgres."""

import subprocess
import sys
from pathlib import Path

import duckdb
from postgres_server import PostgresServer

from userflow_assets.sample.build import generate_warehouse
from userflow_assets.sample.generate import TABLES
from userflow_assets.settings import PROJECT_ROOT


def test_the_sample_cli_loads_the_same_tables_into_postgres(
    tmp_path: Path, postgres: PostgresServer, postgres_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "userflow_assets.sample", "--users", "200", "--seed", "7", "--to", postgres_url],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {postgres_url}: 201 users, ")
    database = postgres_url.rsplit("/", 1)[1]
    generate_warehouse(tmp_path / "warehouse.duckdb", users=200, seed=7)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        for table in TABLES:
            (expected,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert postgres.psql(f"SELECT count(*) FROM {table}", database=database) == str(expected), table
        dirty = sorted(f"{t}|{k}|{kind}" for t, k, kind in con.execute("SELECT * FROM sample_dirty_rows").fetchall())
        # The planted dirty values arrive as they are: NaN and infinite numbers, special-character IDs.
        mrr = sorted(str(v) for (v,) in con.execute("SELECT mrr FROM users WHERE NOT isfinite(mrr)").fetchall())
    loaded = postgres.psql("SELECT table_name || '|' || row_key || '|' || kind FROM sample_dirty_rows", database=database)
    assert sorted(loaded.splitlines()) == dirty
    pg_mrr = postgres.psql("SELECT mrr FROM users WHERE mrr IN ('NaN', 'Infinity', '-Infinity')", database=database)
    assert sorted(pg_mrr.replace("Infinity", "inf").replace("NaN", "nan").splitlines()) == mrr
