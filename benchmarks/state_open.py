"""What one use of the state file costs: open it, run a statement, let it go.

A sync uses its DuckDB state file some 30 times a run and lets it go between uses, so other
processes can open it. `StateDatabase.get_connection` attaches the file to an in-memory DuckDB
kept for the process (userflow_assets/duckdb_files.py); the baseline, in the same run on the same file,
is a direct `duckdb.connect` and `close`, which creates a database instance and frees it.

Prints a markdown table: wall and CPU milliseconds per use, for a read (`SELECT count(*)`) and
for a write (an INSERT, checkpointed when the file is let go), and the ratio to the baseline.

Usage: .venv/bin/python benchmarks/state_open.py [--uses 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb

from userflow_assets.state.resources import StateDatabase

Opener = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
STATEMENTS = {
    "read": "SELECT count(*) FROM sync_like",
    "write": "INSERT INTO sync_like VALUES (42, 'x')",
}


def per_use(open_file: Opener, sql: str, uses: int) -> tuple[float, float]:
    """Wall and CPU milliseconds per use of the file, over `uses` uses."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(uses):
        with open_file() as con:
            con.execute(sql).fetchall()
    return (time.perf_counter() - wall) * 1000 / uses, (time.process_time() - cpu) * 1000 / uses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uses", type=int, default=200, help="uses of the file per measurement (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="state_open_") as tmp:
        path = Path(tmp) / "state.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE sync_like AS SELECT range AS id, 'x' AS v FROM range(100000)")
        attached = StateDatabase(database=str(path)).get_connection
        direct: Opener = lambda: duckdb.connect(str(path))  # noqa: E731 - the baseline's opener
        print(f"{args.uses} uses of a DuckDB state file per row, in one process\n")
        print("| use | opened by | wall ms per use | CPU ms per use | vs direct connect (wall) |")
        print("|---|---|---|---|---|")
        for name, sql in STATEMENTS.items():
            base_wall, base_cpu = per_use(direct, sql, args.uses)
            wall, cpu = per_use(attached, sql, args.uses)
            print(f"| {name} | direct `duckdb.connect` (baseline) | {base_wall:.1f} | {base_cpu:.1f} | 1.00x |")
            print(f"| {name} | `StateDatabase.get_connection` | {wall:.1f} | {cpu:.1f} | {wall / base_wall:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
