"""The bad-input corpus: every case in values.yaml run through the users transform on a real
DuckDB file, and the spec and API faults in runs.yaml run through the whole sync in Dagster."""

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from userflow_assets.spec import ObjectSpec
from userflow_assets.transform import SpecError, build_records

HERE = Path(__file__).parent
VALUE_CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "values.yaml").read_text())
BASE_SPEC: dict[str, Any] = {"query": "users.sql", "id_column": "id", "mapping": {"name": "name"}}


def transform(tmp_path: Path, case: dict[str, Any]) -> tuple[duckdb.DuckDBPyConnection, Any]:
    con = duckdb.connect(str(tmp_path / "sync.duckdb"))
    con.execute("CREATE SCHEMA staging")
    con.execute(f"CREATE TABLE staging.src AS {case['sql']}")
    spec = ObjectSpec.model_validate({**BASE_SPEC, **case.get("spec", {})})
    return con, lambda: build_records(con, spec, "user", "staging.src", "transform.records", "transform.rejected")


@pytest.mark.parametrize("case", VALUE_CASES, ids=[c["name"] for c in VALUE_CASES])
def test_value_case(tmp_path: Path, case: dict[str, Any]) -> None:
    con, run = transform(tmp_path, case)
    with con:
        if "error" in case:
            with pytest.raises(SpecError) as raised:
                run()
            assert str(raised.value) == case["error"]
            return
        result = run()
        records = dict(con.execute("SELECT id, attributes FROM transform.records").fetchall())
        rejected = con.execute(
            'SELECT id, "column", reason, value FROM transform.rejected ORDER BY source_row'
        ).fetchall()
        if "count" in case:
            assert {"records": len(records), "rejected": len(rejected)} == case["count"]
        else:
            assert records == case["records"]
            assert [list(r) for r in rejected] == case.get("rejected", [])
        if "reasons" in case:
            assert result.rejected_by_reason == case["reasons"]
        if "memberships" in case:
            held = dict(con.execute("SELECT id, memberships FROM transform.records").fetchall())
            assert {k: json.loads(v) for k, v in held.items()} == {
                k: json.loads(v) for k, v in case["memberships"].items()
            }
