"""The warehouse tests' kit: the shipped spec pointed at a DuckDB file or a Postgres database
holding the same sample, and what a sync left in the emulator, comparable across runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from harness import emulator_get, query

from userflow_assets.settings import PROJECT_ROOT
from userflow_assets.spec import SyncSpec

KEY = "uf_test_warehouse_key"
SAMPLE_USERS = 300
SAMPLE_SEED = 42
# Set by the emulator, not by the sync: differ between two otherwise equal runs.
SERVER_FIELDS = {"created_at"}


def shipped_spec(warehouse: dict[str, Any], state_db: Path, url: str) -> SyncSpec:
    """defs.yaml with its events section, reading `warehouse`; a small sample's dirty share allowed."""
    raw = yaml.safe_load((PROJECT_ROOT / "userflow_assets/defs/userflow_sync/defs.yaml").read_text())["attributes"]
    raw["warehouse"] = {"sql_dir": str(PROJECT_ROOT / "sql"), **warehouse}
    raw["state_database"] = str(state_db)
    raw["userflow"]["base_url"] = url
    raw["mirror"] = {"enabled": False}
    for name in ("users", "groups", "events"):
        raw[name]["max_rejected_fraction"] = 0.25
    return SyncSpec.model_validate(raw)


def postgres_block(url: str) -> dict[str, Any]:
    return {"url": url, "sql_dir": str(PROJECT_ROOT / "sql" / "postgres")}


def _strip(item: dict[str, Any], kind: str) -> dict[str, Any]:
    # An event's ID is the emulator's counter, in arrival order.
    dropped = SERVER_FIELDS | ({"id"} if kind == "events" else set())
    return {k: v for k, v in item.items() if k not in dropped}


def emulator_snapshot(url: str) -> dict[str, Any]:
    """Groups, users, memberships and events in the emulator, in a stable order."""
    state = emulator_get(url, "state")
    snapshot: dict[str, Any] = {}
    for kind in ("groups", "users", "memberships", "events"):
        items = [_strip(item, kind) for item in state[kind]]
        snapshot[kind] = sorted(items, key=lambda item: repr(sorted(item.items())))
    return snapshot


def rejected_rows(state_db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Each transform.*_rejected table's rows (ID or key, column, reason, value), sorted; not the row's
    position, which depends on the order the warehouse returned the rows in."""
    tables = query(
        state_db,
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'transform' AND table_name LIKE '%rejected'",
        read_only=True,
    )
    return {
        t: sorted(
            query(state_db, f"SELECT * EXCLUDE (source_row) FROM transform.{t}", read_only=True),
            key=repr,
        )
        for (t,) in tables
    }
