"""Staging from Postgres at scale: 1,000,000 sample users read from a real PostgreSQL.

Starts its own throwaway cluster (userflow_assets/devtools/pgcluster.py), loads the sample
into it (`python -m userflow_assets.sample --to`), then times, for the same query:

- the bare driver: ADBC executes it with `$LAST_SYNC_TIMESTAMP` bound and its Arrow batches
  are read and dropped (nothing kept, nothing converted);
- this project: `warehouse_users`' staging (`WarehouseResource.stage`) into a DuckDB file.

Two queries: the sample's `sql/postgres/users.sql` (memberships aggregated as JSON) and a
plain `SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP`, where the transfer is
all there is. Each measurement runs in a fresh process so its peak resident memory is its
own; each is run three times and the fastest counts. Targets: at least 0.7 of the bare driver's throughput, peak RSS at most 1.5 GB.

    .venv/bin/python benchmarks/source_scale.py [--users 1000000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.7
TARGET_BYTES = 1.5e9
EARLIEST = datetime(1, 1, 1)
REPEATS = 3
QUERIES = {
    "users.sql": None,  # read from sql/postgres/users.sql
    "select * from users": "SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP",
}


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no /proc/self/status")


def query_text(name: str) -> str:
    from userflow_assets.warehouse.queries import load_query

    text = QUERIES[name]
    return text if text is not None else load_query(ROOT / "sql" / "postgres" / "users.sql").text


def bare_driver(url: str, sql: str) -> int:
    """ADBC on its own: the query with its parameter bound, every batch read and dropped."""
    import adbc_driver_postgresql.dbapi as pg_dbapi

    from userflow_assets.warehouse.params import rewrite

    rows = 0
    with pg_dbapi.connect(url) as con, con.cursor() as cursor:
        cursor.execute(rewrite(sql, lambda _: "$1"), parameters=(EARLIEST,))
        for batch in cursor.fetch_record_batch():
            rows += batch.num_rows
    return rows


def duckdb_file(via_arrow: bool, sql: str, workdir: Path) -> int:
    """A DuckDB warehouse file staged by its in-DuckDB copy, or through Arrow like any other source."""
    import duckdb

    from userflow_assets.sqltext import qualified_parts
    from userflow_assets.warehouse.duckdb_source import DuckDBFileSource
    from userflow_assets.warehouse.staging import _stream_into

    source = DuckDBFileSource(workdir / "warehouse.duckdb")
    params = {"LAST_SYNC_TIMESTAMP": EARLIEST}
    with duckdb.connect(str(workdir / f"state-{via_arrow}.duckdb")) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS staging")
        target = qualified_parts(con.execute("SELECT current_database()").fetchall()[0][0], "staging", "warehouse_users")
        if via_arrow:
            _stream_into(con, source.fetch(sql, params), target)
        else:
            source.stage_into(con, sql, params, target)
        return con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]


def staged(url: str, sql: str, workdir: Path) -> int:
    """This project: the query staged into `staging.warehouse_users` of a DuckDB file."""
    import duckdb

    from userflow_assets.warehouse.queries import SourceQuery
    from userflow_assets.warehouse.resources import WarehouseResource

    query = SourceQuery(path=Path("users.sql"), text=sql, uses_cursor=True)
    with duckdb.connect(str(workdir / "state.duckdb")) as con:
        return WarehouseResource(url=url).stage(con, query, "warehouse_users", since=None).row_count


def measure_one(mode: str, name: str, url: str, workdir: Path) -> None:
    sql = query_text(name)
    # Imports (dagster's is long) are not what is measured.
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import duckdb  # noqa: F401

    import userflow_assets.warehouse.postgres_source
    import userflow_assets.warehouse.resources  # noqa: F401

    started = time.perf_counter()
    if mode.startswith("duckdb"):
        sql = (ROOT / "sql" / "users.sql").read_text() if name == "users.sql" else sql
        rows = duckdb_file(mode == "duckdb-arrow", sql, workdir)
    else:
        rows = bare_driver(url, sql) if mode == "bare" else staged(url, sql, workdir)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started, "peak_rss": peak_rss()}))


def in_children(modes: list[str], name: str, url: str, workdir: Path) -> list[dict[str, float]]:
    """Per mode, the fastest of REPEATS fresh processes with the highest peak RSS; the modes take
    turns, so a busy moment of the machine falls on both alike."""
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for _ in range(REPEATS):
        for mode in modes:
            argv = [sys.executable, __file__, "--one", mode, "--query", name, "--url", url, "--workdir", str(workdir)]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return [
        {**min(runs[mode], key=lambda m: m["seconds"]), "peak_rss": max(m["peak_rss"] for m in runs[mode])}
        for mode in modes
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--one", choices=["bare", "staged", "duckdb-copy", "duckdb-arrow"], help=argparse.SUPPRESS)
    parser.add_argument("--query", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure_one(args.one, args.query, args.url, args.workdir)
        return 0

    from userflow_assets.devtools.pgcluster import throwaway_cluster
    from userflow_assets.sample.postgres import load_into_postgres

    ok = True
    with throwaway_cluster() as server, tempfile.TemporaryDirectory(prefix="source-scale-") as folder:
        server.create_database("warehouse")
        url = server.url("warehouse")
        started = time.perf_counter()
        load_into_postgres(url, users=args.users)
        print(f"sample of {args.users:,} users loaded into Postgres in {time.perf_counter() - started:.1f} s\n")
        print("| query | reader | rows | time (s) | rows/s | peak RSS (MB) | throughput vs driver |")
        print("|---|---|---|---|---|---|---|")
        for name in QUERIES:
            bare, ours = in_children(["bare", "staged"], name, url, Path(folder))
            ratio = (ours["rows"] / ours["seconds"]) / (bare["rows"] / bare["seconds"])
            for label, m, shown in (("ADBC driver, batches dropped", bare, "1.00"), ("staged (this project)", ours, f"{ratio:.2f}")):
                rate = m["rows"] / m["seconds"]
                print(
                    f"| {name} | {label} | {m['rows']:,} | {m['seconds']:.2f} | {rate:,.0f} | "
                    f"{m['peak_rss'] / 1e6:,.0f} | {shown} |"
                )
            ok = ok and ratio >= TARGET_RATIO and ours["peak_rss"] <= TARGET_BYTES and ours["rows"] == bare["rows"]
    print(f"\nA DuckDB warehouse file ({args.users:,} users): the in-DuckDB copy against the Arrow path\n")
    print("| query | path | rows | time (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="source-scale-") as folder:
        from userflow_assets.sample.build import generate_warehouse

        generate_warehouse(Path(folder) / "warehouse.duckdb", users=args.users)
        for name in QUERIES:
            measured = in_children(["duckdb-copy", "duckdb-arrow"], name, "", Path(folder))
            for label, m in zip(("copy inside DuckDB", "through Arrow"), measured, strict=True):
                print(f"| {name} | {label} | {m['rows']:,} | {m['seconds']:.2f} | {m['peak_rss'] / 1e6:,.0f} |")
    print(
        f"\ntargets: staged throughput at least {TARGET_RATIO} of the driver's, peak RSS at most "
        f"{TARGET_BYTES / 1e9:.1f} GB: {'met' if ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
