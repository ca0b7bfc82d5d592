"""The bad-input corpus: every case in values.yaml run through the users transform on a real
DuckDB file, and the spec and API faults in runs.yaml run through the whole sync in Dagster."""

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pydantic
import pytest
import yaml
from bad_inputs_kit import (
    USERS,
    html_server,
    make_spec,
    make_warehouse,
    run_sync,
    synced,
)
from harness import (
    Emulator,
    emulator_get,
    failure_messages,
    query,
    serve_emulator,
    state_count,
)
from ports import refused_port

from userflow_assets.redaction import fingerprint
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


# ---- spec and API faults through the whole sync --------------------------------------------

RUN_CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "runs.yaml").read_text())
RUN_KEY = "uf_bad_inputs_key"


@pytest.fixture(scope="module")
def bad_inputs_emulator() -> Iterator[Emulator]:
    with serve_emulator(RUN_KEY) as emulator:
        yield emulator


@contextmanager
def target(kind: str, emulator_url: str) -> Iterator[str]:
    if kind.startswith("html_"):
        with html_server(int(kind.removeprefix("html_"))) as (url, _):
            yield url
    elif kind == "unreachable":
        with refused_port() as port:
            yield f"http://127.0.0.1:{port}"
    else:
        yield emulator_url


def user_failures(state_db: Path) -> list[tuple[str, str]]:
    failures = "SELECT id, message FROM sync.failures WHERE object_type = 'user' ORDER BY id"
    return query(state_db, failures, read_only=True)


@pytest.mark.parametrize("case", RUN_CASES, ids=[c["name"] for c in RUN_CASES])
def test_run_case(
    tmp_path: Path, case: dict[str, Any], bad_inputs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = case.get("target", "emulator")
    key = "uf_some_other_key" if kind == "wrong_key" else RUN_KEY
    bad_inputs_emulator.fresh(monkeypatch, key=key)
    bad_inputs_url = bad_inputs_emulator.url
    make_warehouse(tmp_path)
    if "users_sql" in case:
        (tmp_path / "sql" / "users.sql").write_text(case["users_sql"])
    with target(kind, bad_inputs_url) as url:
        if "load_error" in case:
            with pytest.raises(pydantic.ValidationError, match=re.escape(case["load_error"])):
                make_spec(tmp_path, url, case.get("users", {}))
            return
        result = run_sync(make_spec(tmp_path, url, case.get("users", {})))
    state_db = tmp_path / "state.duckdb"
    assert result.success is case["success"]
    failures = failure_messages(result)
    if "failure" in case:
        expected = case["failure"].replace("{url}", url).replace("{fingerprint}", fingerprint(key))
        assert len(failures) == 1 and expected in failures[0], failures
    assert synced(state_db) == case["synced"]
    if "user_posts" in case:
        posts = emulator_get(bad_inputs_url, "requests")["by_endpoint"]
        assert sum(posts.get("POST /users", {}).values()) == case["user_posts"]
    if "failed" in case:
        assert state_count_failures(state_db) == case["failed"]
    if "failure_message" in case:
        expected = [(f"u{i}", case["failure_message"].format(id=f"u{i}")) for i in range(USERS)]
        assert user_failures(state_db) == sorted(expected)


def state_count_failures(state_db: Path) -> int:
    return state_count(state_db, "failures")


def test_unreachable_base_url_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERFLOW_API_KEY", RUN_KEY)
    make_warehouse(tmp_path)
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        result = run_sync(make_spec(tmp_path, url, {}))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "userflow_groups", "the first sink stops the run: users are not tried in vain"
    error = failure.step_failure_data.error
    text = "".join(e.message for e in (error, error.cause) if e) if error else ""
    assert f"none of 1 requests reached Userflow at {url}" in text
    assert synced(tmp_path / "state.duckdb") == 0
    # Nothing lost: the group is kept for the next run, the users were never planned as sent.
    assert state_count_failures(tmp_path / "state.duckdb") == 1
