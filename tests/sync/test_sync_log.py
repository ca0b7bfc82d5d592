"""The sync log on both backends: every request's outcome, the README's example questions
answered from it, and retention pruning by the runs (a fake clock moves time)."""

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from harness import failure_message, metadata, query
from sync_harness import SyncHarness

from pydantic import ValidationError

from userflow_assets.orchestration.component import state_resource
from userflow_assets.settings import PROJECT_ROOT
from userflow_assets.sink import run as sink_run
from userflow_assets.spec import SyncSpec
from userflow_assets.state.types import utcnow

BACKENDS = ["duckdb", "postgres"]


def readme_queries() -> dict[str, str]:
    """The README's sync-log SQL blocks, by their first line (the question)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### The sync log\n", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```sql\n(-- [^\n]+)\n(.*?)```", section, re.S)
    return {question: sql.strip().rstrip(";") for question, sql in blocks}  # ADBC runs one statement


@pytest.fixture(params=BACKENDS)
def logged(request: pytest.FixtureRequest, harness: SyncHarness) -> SyncHarness:
    """The harness with its state on one backend; `rows(sql)` reads that state."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        harness.spec_overrides = {"state_database": url, "work_database": str(harness.root / "work.duckdb")}
    return harness


def rows(harness: SyncHarness, sql: str) -> list[tuple[Any, ...]]:
    url = harness.spec_overrides.get("state_database")
    if url is None:
        return query(harness.state_db, sql)
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(url) as con, con.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_the_log_answers_the_readme_questions(logged: SyncHarness) -> None:
    questions = readme_queries()
    assert len(questions) == 3, questions.keys()
    failed_last_week, last_change, per_run = questions.values()

    logged.post("faults", {"next": ["500"], "path_prefix": "/users", "method": "POST"})
    first = logged.run(max_attempts=1)
    assert first.success, failure_message(first)
    assert "u0" in metadata(first, "userflow_users")["sync_log"]
    query(logged.warehouse, "UPDATE users SET plan = 'team', updated_at = ? WHERE user_id = 'u005'", [utcnow()])
    second = logged.run()
    assert second.success, failure_message(second)

    (failure,) = rows(logged, failed_last_week)
    failed_id = failure[0]
    assert failure[1:4] == ("create", 500, "internal_error") and "500" in failure[4]
    assert failure[5] == 1

    (change,) = rows(logged, last_change)
    assert change[1] == "update" and change[2] == second.run_id and '"plan":"team"' in change[3].replace(" ", "")

    spent = {r[0]: r[1:4] for r in rows(logged, per_run)}
    retried = 1 if failed_id != "u005" else 0  # the failed user comes back as a retry
    assert spent == {first.run_id: (105, 105, 1), second.run_id: (1 + retried, 1 + retried, 0)}


def test_the_runs_prune_log_rows_past_the_retention(logged: SyncHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    first = logged.run()
    assert first.success, failure_message(first)
    count = "SELECT count(*) FROM sync.log"
    assert rows(logged, count) == [(105,)]

    monkeypatch.setattr(sink_run, "utcnow", lambda: utcnow() + timedelta(days=29))
    assert logged.run().success
    assert rows(logged, count) == [(105,)], "29 days old: kept"

    monkeypatch.setattr(sink_run, "utcnow", lambda: utcnow() + timedelta(days=31))
    pruned = logged.run()
    assert pruned.success
    assert rows(logged, count) == [(0,)], "31 days old: pruned by the run"
    assert metadata(pruned, "userflow_users")["sync_log"] == "none"


# ---- log_writeback: the log appended to the warehouse ------------------------------------------

WRITTEN_BACK = "SELECT * FROM userflow_sync.sync_log WHERE run_id = ? AND object_type = ? ORDER BY logged_at, record_id"


def state_log(harness: SyncHarness, run_id: str, object_type: str) -> list[tuple[Any, ...]]:
    """The state's log rows of one run and object type, on either backend (run IDs are UUIDs)."""
    where = f"run_id = '{run_id}' AND object_type = '{object_type}'"
    return rows(harness, f"SELECT * FROM sync.log WHERE {where} ORDER BY logged_at, record_id")


def test_log_writeback_appends_each_runs_log_to_the_duckdb_warehouse(logged: SyncHarness) -> None:
    logged.spec_overrides = {**logged.spec_overrides, "log_writeback": True}
    logged.faults(["500"], "/users")
    first = logged.run(max_attempts=1)
    assert first.success, failure_message(first)

    for object_type, asset in (("user", "userflow_users"), ("group", "userflow_groups")):
        in_state = state_log(logged, first.run_id, object_type)
        assert in_state, object_type
        assert query(logged.warehouse, WRITTEN_BACK, [first.run_id, object_type]) == in_state
        assert metadata(first, asset)["log_writeback"] == len(in_state)
        assert metadata(first, asset)["log_writeback_table"] == "userflow_sync.sync_log"
    assert len(state_log(logged, first.run_id, "user")) == 100
    assert any(row[5] == 500 for row in query(logged.warehouse, WRITTEN_BACK, [first.run_id, "user"]))

    # The step's end run again with the same run ID replaces that run's rows, never adds to them.
    sync_db = state_resource(logged.spec())
    state = sync_db.state()
    assert sink_run.log_writeback_metadata(state, sync_db, first.run_id, "user")["log_writeback"] == 100
    assert sink_run.log_writeback_metadata(state, sync_db, first.run_id, "user")["log_writeback"] == 100
    assert query(logged.warehouse, "SELECT count(*) FROM userflow_sync.sync_log WHERE object_type = 'user'") == [
        (100,)
    ]

    # A later run appends its own rows (the retried user), the first run's stay.
    second = logged.run()
    assert second.success, failure_message(second)
    counts = "SELECT run_id, count(*) FROM userflow_sync.sync_log WHERE object_type = 'user' GROUP BY run_id"
    assert dict(query(logged.warehouse, counts)) == {first.run_id: 100, second.run_id: 1}
    assert metadata(second, "userflow_users")["log_writeback"] == 1


ALL_WRITTEN_BACK = (
    "SELECT * FROM userflow_sync.sync_log WHERE object_type = ? ORDER BY logged_at, record_id, action, outcome"
)


def whole_state_log(harness: SyncHarness, object_type: str) -> list[tuple[Any, ...]]:
    """Every log row of one object type in the state, in ALL_WRITTEN_BACK's order."""
    where = f"object_type = '{object_type}'"
    return rows(harness, f"SELECT * FROM sync.log WHERE {where} ORDER BY logged_at, record_id, action, outcome")


@pytest.mark.slow  # 8-13 s on a busy machine: scheduled first (tests/conftest.py)
def test_a_failed_log_writeback_is_filled_in_by_the_next(
    logged: SyncHarness, caplog: pytest.LogCaptureFixture
) -> None:
    logged.spec_overrides = {**logged.spec_overrides, "log_writeback": True}
    sinks = {"user": "userflow_users", "group": "userflow_groups"}

    def change(user: str, account: str) -> None:
        logged.sql("UPDATE users SET plan = 'team', updated_at = ? WHERE user_id = ?", [utcnow(), user])
        logged.sql("UPDATE accounts SET name = name || '!', updated_at = ? WHERE account_id = ?", [utcnow(), account])

    first = logged.run()
    assert first.success, failure_message(first)
    for asset in sinks.values():
        assert metadata(first, asset)["log_writeback_caught_up"] == 0

    # The second run finds a view where the table was: its write-back fails, the sync does not.
    logged.sql("ALTER TABLE userflow_sync.sync_log RENAME TO sync_log_kept")
    logged.sql("CREATE VIEW userflow_sync.sync_log AS SELECT * FROM userflow_sync.sync_log_kept")
    change("u001", "a1")
    with caplog.at_level(logging.WARNING):
        second = logged.run()
    assert second.success, failure_message(second)
    for object_type, asset in sinks.items():
        shown = metadata(second, asset)["log_writeback"]
        assert shown.startswith("failed: ") and "log_writeback_caught_up" not in metadata(second, asset), shown
        assert len(state_log(logged, second.run_id, object_type)) == 1, "the state keeps the run's log"
    warned = [r.getMessage() for r in caplog.records if "log_writeback" in r.getMessage()]
    assert len(warned) == 2 and all("userflow_sync.sync_log" in m for m in warned), warned
    logged.sql("DROP VIEW userflow_sync.sync_log")
    logged.sql("ALTER TABLE userflow_sync.sync_log_kept RENAME TO sync_log")
    assert query(logged.warehouse, WRITTEN_BACK, [second.run_id, "user"]) == []

    # The third run writes its own rows and the second's, in one go.
    change("u002", "a2")
    third = logged.run()
    assert third.success, failure_message(third)
    for object_type, asset in sinks.items():
        shown = metadata(third, asset)
        assert shown["log_writeback_caught_up"] == 1, object_type
        assert shown["log_writeback"] == 2, "one row of the third run, one of the second"
        in_state = whole_state_log(logged, object_type)
        assert {row[0] for row in in_state} == {first.run_id, second.run_id, third.run_id}
        assert query(logged.warehouse, ALL_WRITTEN_BACK, [object_type]) == in_state

    # A fourth run with nothing to send writes nothing, and fills in nothing twice.
    fourth = logged.run()
    assert fourth.success, failure_message(fourth)
    for object_type, asset in sinks.items():
        assert metadata(fourth, asset)["log_writeback"] == 0
        assert metadata(fourth, asset)["log_writeback_caught_up"] == 0
        assert query(logged.warehouse, ALL_WRITTEN_BACK, [object_type]) == whole_state_log(logged, object_type)


def test_without_log_writeback_the_warehouse_is_not_written(harness: SyncHarness) -> None:
    result = harness.run()
    assert result.success, failure_message(result)
    assert "log_writeback" not in metadata(result, "userflow_users")
    assert query(harness.warehouse, "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'userflow_sync'") == [
        (0,)
    ]


@pytest.mark.parametrize(
    "url",
    ["snowflake://reader@acme-xy12345/ANALYTICS/PUBLIC?warehouse=WH", "duckdb:", "bigquery://my-project/analytics"],
)
def test_log_writeback_with_another_warehouse_is_refused_at_load(harness: SyncHarness, url: str) -> None:
    spec = harness.spec().model_dump()
    spec["warehouse"] = {"url": url, "sql_dir": spec["warehouse"]["sql_dir"]}
    SyncSpec.model_validate(spec)  # that warehouse itself is fine
    with pytest.raises(ValidationError, match=r"log_writeback: true needs a Postgres warehouse .* set log_writeback to false"):
        SyncSpec.model_validate({**spec, "log_writeback": True})
