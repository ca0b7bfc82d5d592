"""The sample warehouse loaded into PostgreSQL: the same tables and rows, dirty ones included.

The DuckDB sample is built first (in a temporary folder), then each table travels as Arrow
into Postgres (ADBC's bulk ingest, binary COPY), all in one transaction: a reader of the
database sees the old tables or the new ones, never half of them. The password, if any,
comes from libpq's own `PGPASSWORD` variable, never from the command line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb

from userflow_assets.sample.build import generate_warehouse
from userflow_assets.sample.generate import TABLES

# The indexes the sample's queries filter and join on, as a real warehouse would have them.
INDEXES = (
    "CREATE INDEX ON users (updated_at)",
    "CREATE INDEX ON users (user_id)",
    "CREATE INDEX ON account_memberships (user_id)",
    "CREATE INDEX ON account_memberships (updated_at)",
    "CREATE INDEX ON accounts (updated_at)",
    "CREATE INDEX ON events (occurred_at)",
)


def load_into_postgres(url: str, users: int = 10_000, seed: int = 42) -> dict[str, dict[str, int]]:
    """Replace the sample tables in the Postgres database at `url`; returns the same summary as the DuckDB sample."""
    import adbc_driver_postgresql.dbapi as pg_dbapi  # the `postgres` extra

    with tempfile.TemporaryDirectory(prefix="userflow-sample-") as folder:
        path = Path(folder) / "warehouse.duckdb"
        summary = generate_warehouse(path, users=users, seed=seed)
        with duckdb.connect(str(path), read_only=True) as source, pg_dbapi.connect(url) as target:
            source.execute("SET TimeZone='UTC'")
            with target.cursor() as cursor:
                for table in TABLES:
                    cursor.adbc_ingest(table, source.table(table).to_arrow_reader(), mode="replace")
                for statement in INDEXES:
                    cursor.execute(statement)
            target.commit()
    return summary
