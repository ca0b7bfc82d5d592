"""The command line writes the warehouse, replaces an old one in one step, and rejects bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from userflow_assets.sample import generate_warehouse
from userflow_assets.sample.dirty import DIRTY_KINDS, dirty_count

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "userflow_assets.sample", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def test_cli_writes_the_warehouse(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "dir" / "warehouse.duckdb"
    done = _run("--users", "500", "--seed", "7", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["warehouse.duckdb"]  # no temporary file left behind
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and lines[0].endswith(" s")
    with duckdb.connect(str(out), read_only=True) as con:
        users = con.execute("SELECT count(*) FROM users").fetchone()[0]
        kinds = {r[0] for r in con.execute("SELECT DISTINCT kind FROM sample_dirty_rows").fetchall()}
    assert users == 500 + dirty_count("duplicate_user_id", "users", 500)
    assert f"{users:,} users" in lines[0]
    assert kinds == set(DIRTY_KINDS)


def test_cli_output_matches_the_function(tmp_path: Path) -> None:
    assert _run("--users", "300", "--seed", "4", "--out", str(tmp_path / "cli.duckdb")).returncode == 0
    generate_warehouse(tmp_path / "fn.duckdb", users=300, seed=4)
    with duckdb.connect(str(tmp_path / "cli.duckdb"), read_only=True) as a, \
            duckdb.connect(str(tmp_path / "fn.duckdb"), read_only=True) as b:
        sql = "SELECT * FROM events ORDER BY rowid"
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall()


def test_existing_file_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(out)) as con:
        con.execute("CREATE TABLE leftover AS SELECT 1 AS x")
    generate_warehouse(out, users=120, seed=1)
    with duckdb.connect(str(out), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "leftover" not in tables and "users" in tables
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_cli_rejects_too_few_users(tmp_path: Path) -> None:
    out = tmp_path / "w.duckdb"
    done = _run("--users", "10", "--out", str(out))
    assert done.returncode == 2
    assert "at least 100 users" in done.stderr
    assert not out.exists()
