"""A DuckDB file opened through `open_file` behaves as a direct connection to it would: its own
catalog name and settings, waits while another process holds it, lets it go after the last
block, and is shared by the threads of a process without a second instance on the file."""

import multiprocessing
import os
import threading
from pathlib import Path

import duckdb
import pytest
from harness import held_elsewhere

from userflow_assets import duckdb_files
from userflow_assets.duckdb_files import IDLE_HOSTS, open_file



def test_the_file_is_the_default_catalog_with_its_own_settings_and_is_let_go_after(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    with open_file(str(path), "300MB") as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        assert con.execute("SELECT current_database()").fetchone() == ("state",)
        spill, cap = con.execute("SELECT current_setting('temp_directory'), current_setting('memory_limit')").fetchone()
        assert spill == f"{path}.tmp"  # where a direct connection to the file spills
        assert cap.startswith("286.1 MiB")  # 300 MB
    assert not Path(f"{path}.wal").exists()  # checkpointed when let go
    with duckdb.connect(str(path)) as direct:  # nothing of this process holds it any more
        assert direct.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_two_files_of_the_same_name_are_open_at_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "state.duckdb", tmp_path / "b" / "state.duckdb"
    first.parent.mkdir()
    second.parent.mkdir()
    with open_file(str(first), "1GB") as a, open_file(str(second), "1GB") as b:
        a.execute("CREATE TABLE t AS SELECT 'a' AS x")
        b.execute("CREATE TABLE t AS SELECT 'b' AS x")
        assert a.execute("SELECT x FROM t").fetchall() == [("a",)]
        assert b.execute("SELECT x FROM t").fetchall() == [("b",)]


def test_it_waits_while_another_process_holds_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.duckdb"
    holder = held_elsewhere(path)
    waits: list[float] = []

    def let_go_instead_of_sleeping(seconds: float) -> None:
        # The first attempt met the lock: the holder lets go, as a finished run would.
        waits.append(seconds)
        holder.communicate("\n", timeout=60)

    monkeypatch.setattr(duckdb_files, "sleep", let_go_instead_of_sleeping)
    with open_file(str(path), "1GB") as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    assert waits == [duckdb_files.LOCK_FIRST_WAIT_S]


def test_a_file_that_is_not_duckdb_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.duckdb"
    path.write_text("not a database " * 100)
    waits: list[float] = []
    monkeypatch.setattr(duckdb_files, "sleep", waits.append)
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database file"):
        with open_file(str(path), "1GB"):
            pass
    assert waits == []  # no retry: waiting would not make it a database


def test_threads_share_the_file_and_it_is_let_go_after_the_last(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    with open_file(str(path), "1GB") as con:
        con.execute("CREATE TABLE hits (thread INTEGER, n INTEGER)")
    rounds = 40
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def hit(thread: int) -> None:
        try:
            start.wait()
            for n in range(rounds):
                with open_file(str(path), "1GB") as own:
                    own.execute("INSERT INTO hits VALUES (?, ?)", [thread, n])
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=hit, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with duckdb.connect(str(path)) as direct:
        assert direct.execute("SELECT thread, count(*) FROM hits GROUP BY ALL ORDER BY 1").fetchall() == [
            (0, rounds),
            (1, rounds),
        ]


WAITED = 3  # the child's exit status once it waits for the file


def _write_in_child(path: str) -> None:
    with open_file(path, "1GB") as con:
        con.execute("INSERT INTO t VALUES ('child')")


def test_a_forked_child_waits_for_the_file_its_parent_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Inherited, the parent's attached file would let the child write beside it: two processes
    # writing one file. Its own instance instead meets the parent's lock, and waits.
    monkeypatch.setattr(duckdb_files, "sleep", lambda seconds: os._exit(WAITED))
    path = str(tmp_path / "state.duckdb")
    with open_file(path, "1GB") as con:
        con.execute("CREATE TABLE t (x VARCHAR)")
        child = multiprocessing.get_context("fork").Process(target=_write_in_child, args=(path,))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == WAITED
        assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_instances_with_no_file_attached_are_closed_beyond_the_cap(tmp_path: Path) -> None:
    paths = [tmp_path / f"s{n}.duckdb" for n in range(IDLE_HOSTS + 3)]
    for path in paths:
        with open_file(str(path), "1GB") as con:
            con.execute("SELECT 1")
    kept = [key for key in duckdb_files._hosts if key.startswith(str(tmp_path))]
    assert kept == [str(path) for path in paths[-IDLE_HOSTS:]]  # the most recently used
