"""The transform's scratch tables are written uncompressed (faster), and nothing else is."""

from __future__ import annotations

import duckdb
import pytest
from transform_kit import RECORDS, con, load, make_spec, run  # noqa: F401 - con is a fixture

from userflow_assets.sqltext import scratch_writes


def compressions(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    con.execute("CHECKPOINT")
    schema, name = table.split(".")
    rows = con.execute(
        f"SELECT DISTINCT compression FROM pragma_storage_info('{schema}.{name}') WHERE segment_type = 'VARCHAR'"
    ).fetchall()
    return {r[0] for r in rows}


def test_records_are_stored_uncompressed_and_the_setting_is_set_back(con: duckdb.DuckDBPyConnection) -> None:
    # Few distinct names over many rows: DuckDB's own choice would be a dictionary. Enough rows
    # for whole row groups, which DuckDB writes to the file as they are inserted (under the setting),
    # not at the next checkpoint.
    load(con, "SELECT 'u' || i AS id, 'plan_' || (i % 3) AS name FROM range(300000) t(i)")
    run(con, make_spec())
    assert compressions(con, RECORDS) == {"Uncompressed"}
    assert con.execute("SELECT current_setting('force_compression')").fetchone()[0] == "auto"
    # The control: the same rows written after the transform, outside it, are compressed.
    con.execute(f"CREATE TABLE main.control AS SELECT * FROM {RECORDS}")
    assert "Uncompressed" not in compressions(con, "main.control")


def test_the_setting_is_set_back_when_the_block_fails(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.Error), scratch_writes(con):
        assert con.execute("SELECT current_setting('force_compression')").fetchone()[0] == "uncompressed"
        con.execute("SELECT * FROM no_such_table")
    assert con.execute("SELECT current_setting('force_compression')").fetchone()[0] == "auto"
