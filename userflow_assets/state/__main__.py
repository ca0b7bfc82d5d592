"""`python -m userflow_assets.state copy --from SOURCE --to TARGET`: move a whole sync state
between a DuckDB file and Postgres (either way), so the next sync resumes from it."""

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

import duckdb

from userflow_assets.state.postgres import (
    PostgresState,
    describe,
    is_postgres_url,
    password_from_env,
)
from userflow_assets.state.store import DuckDBState, SyncState

PASSWORD_VARIABLE = "USERFLOW_STATE_PASSWORD"


def open_state(target: str, password_env: str) -> PostgresState | DuckDBState:
    if is_postgres_url(target):
        return PostgresState(target, password_from_env(password_env))
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    return DuckDBState(lambda: duckdb.connect(target))


def shown(target: str) -> str:
    return describe(target) if is_postgres_url(target) else target


def synced(state: SyncState) -> int:
    return sum(state.record_counts(kind)[0] for kind in ("user", "group")) + state.event_counts()["sent"]


def copy(source: str, target: str, *, replace: bool, password_env: str = PASSWORD_VARIABLE) -> dict[str, int]:
    """Copy every state table from `source` to `target` (one transaction); rows per table."""
    if not is_postgres_url(source) and not Path(source).is_file():
        raise SystemExit(f"no state at {source}")
    src, dst = open_state(source, password_env), open_state(target, password_env)
    src.ensure_schema()  # an older state gains the newer tables (empty) first
    dst.ensure_schema()
    if not replace and synced(dst):
        raise SystemExit(f"{shown(target)} already holds a sync state; pass --replace to overwrite it")
    tables = src.dump()
    # Hold every object type's lock: no sync writes the target while it is replaced.
    with ExitStack() as locks:
        for object_type in ("group", "user", "event"):
            locks.enter_context(dst.exclusive(object_type, "state copy"))
        dst.load(tables)
    return {name: table.num_rows for name, table in tables.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m userflow_assets.state", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    copying = commands.add_parser("copy", help="copy a whole sync state between a DuckDB file and Postgres")
    copying.add_argument("--from", dest="source", required=True, help="a DuckDB state file or a postgresql:// URL")
    copying.add_argument("--to", dest="target", required=True, help="a DuckDB state file or a postgresql:// URL")
    copying.add_argument("--replace", action="store_true", help="overwrite a target that already holds a state")
    copying.add_argument(
        "--password-env", default=PASSWORD_VARIABLE, help="variable holding a Postgres password (else PGPASSWORD)"
    )
    args = parser.parse_args(argv)
    counts = copy(args.source, args.target, replace=args.replace, password_env=args.password_env)
    print(f"copied the sync state from {shown(args.source)} to {shown(args.target)}:")
    for name, rows in counts.items():
        print(f"  sync.{name}: {rows} rows")


if __name__ == "__main__":
    main(sys.argv[1:])
