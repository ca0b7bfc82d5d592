"""Staging maps every source's Arrow the same way (arrow_types), not only the drivers'."""

from pathlib import Path

import duckdb

from userflow_assets.warehouse.duckdb_source import files_source
from userflow_assets.warehouse.staging import stage_rows


def test_a_files_source_is_staged_with_the_one_type_mapping(tmp_path: Path) -> None:
    source = files_source("duckdb:", base_dir=tmp_path)
    sql = "SELECT 12::DECIMAL(18, 0) AS n, TIMESTAMPTZ '2024-03-04 05:06:07+02' AS seen"
    with duckdb.connect(str(tmp_path / "run.duckdb")) as con:
        con.execute("SET TimeZone='UTC'")
        staged = stage_rows(con, source, sql, {}, "typed", "typed.sql")
        row = con.execute("SELECT n, CAST(seen AS VARCHAR) FROM staging.typed").fetchone()
    # A scale-0 decimal is an integer for every warehouse; timestamps with a zone are UTC.
    assert staged.columns == [("n", "BIGINT"), ("seen", "TIMESTAMP WITH TIME ZONE")]
    assert row == (12, "2024-03-04 03:06:07+00")
