"""The sync log on both backends: every request's outcome, the README's example questions
answered from it, and retention pruning by the runs (a fake clock moves time)."""

import re
from datetime import timedelta
from typing import Any

import pytest
from harness import failure_message, metadata, query
from sync_harness import SyncHarness

from userflow_assets.settings import PROJECT_ROOT
from userflow_assets.sink import run as sink_run
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
