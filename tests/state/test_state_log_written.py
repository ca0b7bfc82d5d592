"""The log write-back's marks: a run written to the warehouse once is never filled in again.

The same contract on both state backends (`unwritten_log_runs`, `mark_log_written`, pruning),
then the write-back itself into a DuckDB warehouse file: a failed run is filled in, rows the
user deleted stay deleted, and a state from before the marks writes no run twice.
"""

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from userflow_assets.state.postgres import PostgresState
from userflow_assets.state.store import DuckDBState, SyncState
from userflow_assets.state.types import LogEntry, utcnow
from userflow_assets.state.writeback import LogWriteback, Written

TABLE = "userflow_sync.sync_log"


def log(state: SyncState, run_id: str, *record_ids: str, object_type: str = "user", days_ago: int = 0) -> None:
    at = utcnow() - timedelta(days=days_ago)
    entries = [LogEntry(run_id, object_type, r, "create", "confirmed", None, None, None, None, at) for r in record_ids]
    state.checkpoint(object_type, run_id, [], [], log=entries)


@pytest.fixture(params=["duckdb", "postgres"])
def state(request: pytest.FixtureRequest) -> SyncState:
    if request.param == "duckdb":
        return request.getfixturevalue("duckdb_state")
    made = PostgresState(request.getfixturevalue("postgres_url"))
    made.ensure_schema()
    return made


def test_marked_runs_are_no_longer_unwritten_per_object_type(state: SyncState) -> None:
    log(state, "run-a", "u1", "u2")
    log(state, "run-b", "u3")
    log(state, "run-b", "g1", object_type="group")
    assert state.unwritten_log_runs("user") == {"run-a", "run-b"}
    state.mark_log_written({"run-a"}, "user")
    state.mark_log_written({"run-a"}, "user")  # again: still one mark
    assert state.unwritten_log_runs("user") == {"run-b"}
    assert state.unwritten_log_runs("group") == {"run-b"}, "a mark is per object type"
    assert state.dump()["log_written"].num_rows == 1


def test_pruning_the_log_prunes_the_marks_made_before_the_cutoff(state: SyncState) -> None:
    log(state, "run-old", "u1", days_ago=40)
    state.mark_log_written({"run-old"}, "user")
    log(state, "run-new", "u2")
    state.mark_log_written({"run-new"}, "user")
    assert state.prune_log(utcnow() - timedelta(days=30)) == 1
    # run-old's mark was made today, after its rows were logged: it outlives them, and goes
    # with a later prune; it never makes a run with rows unwritten.
    assert state.unwritten_log_runs("user") == set()
    assert state.prune_log(utcnow() + timedelta(days=1)) == 1
    assert state.dump()["log_written"].num_rows == 0


@pytest.fixture
def duckdb_state(tmp_path: Path) -> DuckDBState:
    made = DuckDBState(lambda: duckdb.connect(str(tmp_path / "state.duckdb")))
    made.ensure_schema()
    return made


def warehouse_runs(path: Path) -> list[tuple[str, int]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT run_id, count(*) FROM {TABLE} GROUP BY run_id ORDER BY run_id").fetchall()


def delete_run(path: Path, run_id: str) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(f"DELETE FROM {TABLE} WHERE run_id = ?", [run_id])


def test_rows_the_user_deleted_are_not_written_again(duckdb_state: DuckDBState, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    writeback = LogWriteback(schema="userflow_sync", database=str(warehouse))
    log(duckdb_state, "run-a", "u1", "u2")
    assert writeback.write(duckdb_state, "run-a", "user") == Written(rows=2, caught_up=0)
    delete_run(warehouse, "run-a")  # the user's own retention, or a person's data removed
    log(duckdb_state, "run-b", "u3")
    assert writeback.write(duckdb_state, "run-b", "user") == Written(rows=1, caught_up=0)
    assert warehouse_runs(warehouse) == [("run-b", 1)]


def test_a_run_no_write_back_wrote_is_filled_in_once(duckdb_state: DuckDBState, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    writeback = LogWriteback(schema="userflow_sync", database=str(warehouse))
    log(duckdb_state, "run-a", "u1", "u2")  # its write-back failed: nothing marked, nothing written
    log(duckdb_state, "run-b", "u3")
    assert writeback.write(duckdb_state, "run-b", "user") == Written(rows=3, caught_up=1)
    assert warehouse_runs(warehouse) == [("run-a", 2), ("run-b", 1)]
    delete_run(warehouse, "run-a")
    log(duckdb_state, "run-c", "u4")
    assert writeback.write(duckdb_state, "run-c", "user") == Written(rows=1, caught_up=0)
    assert warehouse_runs(warehouse) == [("run-b", 1), ("run-c", 1)]


def test_a_state_from_before_the_marks_writes_no_run_twice(duckdb_state: DuckDBState, tmp_path: Path) -> None:
    # Written by an earlier version, which kept no marks: run-a reached the warehouse, run-b did not.
    warehouse = tmp_path / "warehouse.duckdb"
    writeback = LogWriteback(schema="userflow_sync", database=str(warehouse))
    log(duckdb_state, "run-a", "u1")
    writeback.write(duckdb_state, "run-a", "user")
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        con.execute("DELETE FROM sync.log_written")
    log(duckdb_state, "run-b", "u2")
    log(duckdb_state, "run-c", "u3")
    written = writeback.write(duckdb_state, "run-c", "user")
    assert written == Written(rows=2, caught_up=1), "run-b filled in; run-a, already there, not rewritten"
    assert warehouse_runs(warehouse) == [("run-a", 1), ("run-b", 1), ("run-c", 1)]
    assert duckdb_state.unwritten_log_runs("user") == set(), "every run is marked now"


def test_the_state_copy_carries_the_marks(duckdb_state: DuckDBState, tmp_path: Path, postgres_url: str) -> None:
    from userflow_assets.state.__main__ import copy

    source = duckdb_state
    log(source, "run-a", "u1")
    log(source, "run-b", "u2")
    source.mark_log_written({"run-a"}, "user")
    copy(str(tmp_path / "state.duckdb"), postgres_url, replace=True)
    assert PostgresState(postgres_url).unwritten_log_runs("user") == {"run-b"}


class MarkingFails:
    """The state, except that marking runs written fails, as a state gone away after the
    warehouse committed would."""

    def __init__(self, state: SyncState) -> None:
        self._state = state

    def __getattr__(self, name: str) -> object:
        return getattr(self._state, name)

    def mark_log_written(self, run_ids: object, object_type: str) -> None:
        raise duckdb.IOException("the state went away")


def test_rows_written_but_not_marked_are_counted_and_not_written_again(
    duckdb_state: DuckDBState, tmp_path: Path
) -> None:
    from userflow_assets.sink.run import log_writeback_metadata
    from userflow_assets.state.resources import StateDatabase

    warehouse = tmp_path / "warehouse.duckdb"
    sync_db = StateDatabase(database=str(tmp_path / "work.duckdb"), log_writeback_database=str(warehouse))
    log(duckdb_state, "run-a", "u1", "u2")
    meta = log_writeback_metadata(MarkingFails(duckdb_state), sync_db, "run-a", "user")
    assert meta["log_writeback"] == 2, "the rows are in the warehouse: not a failed write-back"
    assert meta["log_writeback_unmarked"] == "IOException: the state went away"
    assert warehouse_runs(warehouse) == [("run-a", 2)]
    assert duckdb_state.unwritten_log_runs("user") == {"run-a"}
    log(duckdb_state, "run-b", "u3")
    meta = log_writeback_metadata(duckdb_state, sync_db, "run-b", "user")
    assert meta == {"log_writeback": 1, "log_writeback_caught_up": 0, "log_writeback_table": TABLE}
    assert warehouse_runs(warehouse) == [("run-a", 2), ("run-b", 1)], "run-a found there, not written twice"
    assert duckdb_state.unwritten_log_runs("user") == set()
