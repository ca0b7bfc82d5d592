"""What the checks tell a data engineer in the UI: descriptions, shares with their limit, and
counts that include what was rejected before the check ran."""

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from sync_harness import SyncHarness

from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.sink.assets import build_sink_defs
from userflow_assets.spec import ObjectSpec
from userflow_assets.state.resources import StateDatabase
from userflow_assets.state.types import Failure, Record

GROUPS = ObjectSpec.model_validate({"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}})


def checks_of(defs: dg.Definitions) -> dict[str, Any]:
    found = {}
    for check in defs.asset_checks or []:
        for spec in check.check_specs:  # type: ignore[union-attr]
            found[f"{spec.asset_key.to_user_string()}:{spec.name}"] = (check, spec)
    return found


def test_every_check_says_what_it_checks(harness: SyncHarness) -> None:
    checks = checks_of(build_sync_defs(harness.spec()))
    assert len(checks) >= 6
    undescribed = [name for name, (_, spec) in checks.items() if not spec.description]
    assert not undescribed


def test_failed_share_counts_over_every_known_record_and_shows_its_limit(tmp_path: Path) -> None:
    sync_db = StateDatabase(database=str(tmp_path / "state.duckdb"))
    state = sync_db.state()
    state.ensure_schema()

    def record(i: int) -> Record:
        return Record(f"g{i}", "h", "{}", None, None, None)

    failed = [Failure(record(1000 + i), 500, "internal_error", "boom") for i in range(35)]
    state.checkpoint("group", "run-1", [record(i) for i in range(497)], failed)
    check, _ = checks_of(build_sink_defs("group", GROUPS, []))["userflow_groups:failed_share"]
    result = check(dg.build_asset_check_context(resources={"sync_db": sync_db}))
    assert not result.passed
    assert result.description == (
        "35 of 532 groups wait to be retried (6.58%; 497 synced); the limit is 5.00% (groups.max_rejected_fraction)"
    )
    assert result.metadata["failed_share"].value == pytest.approx(35 / 532)
    assert result.metadata["limit"].value == 0.05


def test_ids_unique_and_present_counts_the_ids_rejected_before_it(harness: SyncHarness) -> None:
    with duckdb.connect(str(harness.warehouse)) as con:
        con.execute("UPDATE users SET user_id = NULL WHERE user_id IN ('u001', 'u002')")
        # u004 twice with different data: both copies are rejected as duplicates.
        con.execute(
            "INSERT INTO users SELECT user_id, email, 'Someone else', plan, seats, updated_at, memberships "
            "FROM users WHERE user_id = 'u004'"
        )
    result = harness.run(spec=harness.spec(max_rejected_fraction=0.5))
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "ids_unique_and_present"
        and e.asset_key == dg.AssetKey("userflow_user_records")
    )
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert (meta["missing_ids"], meta["duplicate_ids"]) == (0, 0)
    assert (meta["rejected_missing_ids"], meta["rejected_duplicate_ids"]) == (2, 2)
    assert "rejected 2 rows without an ID and 2 with a duplicate ID" in (evaluation.description or "")
