"""The DuckDB state file is held only around work that sends nothing: while a sync's requests
are in flight, another process can open it (a second run's step, the CLI's state copy)."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
from harness import emulator_get
from sync_harness import SyncHarness

from userflow_assets.state.resources import StateDatabase

# Opens the file read-write, as another run's step would: DuckDB refuses while a process holds it.
OPEN_ELSEWHERE = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"


def open_elsewhere(path: Path) -> str:
    """Open `path` in another process: "" when it could, else why not."""
    done = subprocess.run(
        [sys.executable, "-c", OPEN_ELSEWHERE, str(path)], check=False, capture_output=True, text=True, timeout=120
    )
    return "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


def test_the_state_file_is_free_while_requests_are_in_flight(harness: SyncHarness) -> None:
    harness.post("hold", {})
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(harness.run)
        try:
            # The emulator answers once the run's first request is held in flight.
            held = emulator_get(harness.url, "requests", limit=0, in_flight_at_least=1)
            assert held["in_flight"] >= 1, "no request of the run came in flight"
            refused = open_elsewhere(harness.state_db)
        finally:
            harness.post("release", {})
        result = run.result()
    assert result.success
    assert refused == "", f"the state file was held while a request was in flight: {refused}"


def test_held_hands_out_connections_of_their_own_and_lets_the_file_go(tmp_path: Path) -> None:
    sync_db = StateDatabase(database=str(tmp_path / "state.duckdb"))
    with sync_db.held():
        with sync_db.held(), sync_db.get_connection() as first, sync_db.get_connection() as second:
            first.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
            first.execute("CREATE TABLE shared AS SELECT 2 AS x")
            with pytest.raises(duckdb.CatalogException):
                second.execute("SELECT * FROM mine")  # a temp table is its connection's own
            assert second.execute("SELECT x FROM shared").fetchall() == [(2,)]
        assert "Could not set lock" in open_elsewhere(tmp_path / "state.duckdb")  # the outer block holds it
    assert open_elsewhere(tmp_path / "state.duckdb") == ""
    with sync_db.get_connection() as con:
        assert con.execute("SELECT x FROM shared").fetchall() == [(2,)]
