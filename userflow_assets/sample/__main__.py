"""Command line: write the sample warehouse and print a one-line summary with the elapsed time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from userflow_assets.sample.build import generate_warehouse
from userflow_assets.sample.generate import MIN_USERS
from userflow_assets.warehouse.source import redact_url


def _users(text: str) -> int:
    value = int(text)
    if value < MIN_USERS:
        raise argparse.ArgumentTypeError(f"at least {MIN_USERS} users are needed to plant every dirty kind")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m userflow_assets.sample",
        description="Write a deterministic sample warehouse (DuckDB) with users, accounts, memberships, events and dirty rows.",
    )
    parser.add_argument("--users", type=_users, default=10_000, help="number of users (default 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same data (default 42)")
    parser.add_argument("--out", type=Path, default=Path("data/warehouse.duckdb"), help="DuckDB file to write (replaced atomically)")
    parser.add_argument(
        "--to",
        metavar="URL",
        help="load the sample into this PostgreSQL database instead (postgresql://user@host:5432/db; "
        "password from PGPASSWORD); its sample tables are replaced in one transaction",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.to:
        from userflow_assets.sample.postgres import load_into_postgres

        summary = load_into_postgres(args.to, users=args.users, seed=args.seed)
        where = redact_url(args.to)
    else:
        summary = generate_warehouse(args.out, users=args.users, seed=args.seed)
        where = str(args.out)
    elapsed = time.perf_counter() - started
    t = summary["tables"]
    planted = sum(summary["dirty_kinds"].values())
    kinds = sum(1 for n in summary["dirty_kinds"].values() if n)
    print(
        f"wrote {where}: {t['users']:,} users, {t['accounts']:,} accounts, "
        f"{t['account_memberships']:,} memberships, {t['events']:,} events, "
        f"{planted:,} dirty rows of {kinds} kinds (seed {args.seed}) in {elapsed:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
