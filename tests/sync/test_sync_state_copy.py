"""`python -m userflow_assets.state copy` moves a whole sync state between a DuckDB file and
Postgres, either way; the next sync from the copy, even reading every row, sends nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
from harness import failure_message, metadata
from sync_harness import SyncHarness

from userflow_assets.state.postgres import PostgresState

FULL_READ = {"full_refresh": True}


def copy_state(source: str | Path, target: str | Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "userflow_assets.state", "copy", "--from", str(source), "--to", str(target), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )


def sends_nothing(harness: SyncHarness) -> None:
    before = harness.requests_total()
    result = harness.run(read=FULL_READ)
    assert result.success, failure_message(result)
    assert metadata(result, "userflow_users")["unchanged"] == 100
    assert harness.requests_total() == before


@pytest.mark.slow  # 19 s on a busy machine: scheduled first (tests/conftest.py)
def test_a_duckdb_state_copied_to_postgres_and_back_sends_nothing(
    harness: SyncHarness, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.post("faults", {"next": ["500"], "path_prefix": "/users", "method": "POST"})
    first = harness.run(max_attempts=1)
    assert metadata(first, "userflow_users")["failed"] == 1

    done = copy_state(harness.state_db, postgres_url)
    assert done.returncode == 0, done.stderr
    assert "sync.records: 104 rows" in done.stdout and "sync.failures: 1 rows" in done.stdout
    assert PostgresState(postgres_url).record_counts("user") == (99, 1)
    refused = copy_state(harness.state_db, postgres_url)
    assert refused.returncode != 0 and "already holds a sync state; pass --replace" in refused.stderr

    harness.spec_overrides = {"state_database": postgres_url, "work_database": str(harness.root / "work.duckdb")}
    retried = harness.run(read=FULL_READ)
    assert metadata(retried, "userflow_users")["updated"] == 1, "the failure came along and is retried"
    sends_nothing(harness)

    back = harness.root / "back" / "state.duckdb"
    done = copy_state(postgres_url, back)
    assert done.returncode == 0, done.stderr
    harness.spec_overrides = {"state_database": str(back)}
    sends_nothing(harness)
