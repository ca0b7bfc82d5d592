"""The users backfill by signup date: slices through the same sink and sync state as the regular sync."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
from orchestration_harness import ALL_USERS, Emulator, Warehouse, touch_user, user_ids_in

from userflow_assets.client import UserflowResource
from userflow_assets.orchestration.backfill import (
    BACKFILL_ASSET,
    BACKFILL_GROUP,
    BACKFILL_JOB,
    DEFAULT_START,
    build_backfill_defs,
)
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.sink import run as sink_run
from userflow_assets.spec import SyncSpec


def resources(spec: SyncSpec) -> dict[str, Any]:
    found = dict(build_sync_defs(spec).resources or {})
    # Fast retries: a failing record is settled in well under a second.
    found["userflow"] = UserflowResource(
        api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=spec.userflow.base_url, max_attempts=2, max_retry_time_s=2
    )
    return found


def run_backfill(
    spec: SyncSpec,
    partition: str | None = None,
    through: tuple[str, str] | None = None,
    config: dict[str, Any] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    asset = build_backfill_defs(spec).assets[0]  # type: ignore[index]
    tags = (
        {"dagster/asset_partition_range_start": through[0], "dagster/asset_partition_range_end": through[1]}
        if through
        else None
    )
    return dg.materialize(
        [asset],  # type: ignore[list-item]
        partition_key=partition,
        tags=tags,
        resources=resources(spec),
        run_config={"ops": {BACKFILL_ASSET: {"config": config}}} if config else None,
        raise_on_error=raise_on_error,
    )


def run_sync(spec: SyncSpec) -> dg.ExecuteInProcessResult:
    defs = build_sync_defs(spec)
    unpartitioned = [a for a in defs.assets or [] if not a.partitions_def]  # the sync job's assets
    return dg.materialize([*unpartitioned, *(defs.asset_checks or [])], resources=resources(spec))  # type: ignore


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(asset)
    assert events, f"{asset} was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}


# A fixed "now": the last slice is the current one, and a real clock could cross midnight.
NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def partition_keys(spec: SyncSpec) -> list[str]:
    asset = build_backfill_defs(spec).assets[0]  # type: ignore[index]
    return asset.partitions_def.get_partition_keys(current_time=NOW)  # type: ignore[union-attr]


# Where the slices start and end


def test_monthly_slices_run_from_the_start_month_through_this_month(warehouse: Warehouse) -> None:
    keys = partition_keys(warehouse.spec(backfill={"start": "2024-12-19"}))
    assert keys[:3] == ["2024-12-01", "2025-01-01", "2025-02-01"]
    assert keys[-1] == "2026-03-01"


def test_daily_slices_start_on_the_start_day(warehouse: Warehouse) -> None:
    keys = partition_keys(warehouse.spec(backfill={"partition": "daily", "start": "2024-12-19"}))
    assert keys[:2] == ["2024-12-19", "2024-12-20"]
    assert keys[-1] == "2026-03-15"


def test_without_a_start_the_slices_begin_at_the_documented_default(warehouse: Warehouse) -> None:
    spec = warehouse.spec()
    assert partition_keys(spec)[0] == DEFAULT_START.isoformat() == "2020-01-01"
    asset = build_backfill_defs(spec).assets[0]  # type: ignore[index]
    assert "from 2020-01-01 (backfill.start)" in (asset.descriptions_by_key[asset.key] or "")


def test_the_partitions_never_depend_on_the_warehouse(warehouse: Warehouse) -> None:
    """The code server and a run worker must see the same set, whatever the warehouse holds."""
    spec = warehouse.spec(backfill={"start": "2023-05-17"})
    before = partition_keys(spec)
    warehouse.sql("UPDATE users SET signed_up_at = '2019-02-03 08:00' WHERE user_id = 'u00'")
    assert partition_keys(spec) == before
    warehouse.path.unlink()
    assert partition_keys(spec) == before
    assert before[0] == "2023-05-01"


def test_the_backfill_is_pooled_grouped_and_runs_a_quarter_per_run(warehouse: Warehouse) -> None:
    defs = build_backfill_defs(warehouse.spec())
    asset = defs.assets[0]  # type: ignore[index]
    assert asset.key == dg.AssetKey(BACKFILL_ASSET)
    assert asset.specs_by_key[asset.key].group_name == BACKFILL_GROUP
    assert asset.op.pool == "userflow_api"
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=3)
    assert [job.name for job in defs.jobs or []] == [BACKFILL_JOB]  # type: ignore[union-attr]
    daily = build_backfill_defs(warehouse.spec(backfill={"partition": "daily"})).assets[0]  # type: ignore[index]
    assert daily.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=31)


# Sending a slice


def test_a_slice_sends_exactly_its_users_and_leaves_the_regular_sync_alone(
    warehouse: Warehouse, emulator: Emulator
) -> None:
    spec = warehouse.spec(emulator.url)
    result = run_backfill(spec, "2025-03-01")
    march = user_ids_in("2025-03")
    assert len(march) == 4
    assert set(emulator.users()) == march
    assert emulator.requests_total() == 4
    meta = metadata(result, BACKFILL_ASSET)
    assert (meta["source_rows"], meta["created"], meta["unchanged"]) == (4, 4, 0)
    assert {r[0] for r in warehouse.state("SELECT id FROM sync.records WHERE object_type = 'user'")} == march
    # Neither the regular cursor nor the regular sync's own tables were touched; the slice's are gone.
    assert warehouse.state("SELECT count(*) FROM sync.cursors")[0][0] == 0
    assert warehouse.state("SELECT count(*) FROM sync.reads")[0][0] == 0
    tables = {f"{s}.{t}" for s, t in warehouse.state("SELECT schema_name, table_name FROM duckdb_tables()")}
    assert not {t for t in tables if t.startswith(("staging.", "transform."))}
    assert warehouse.state("SELECT object_type, status FROM sync.runs") == [("user", "success")]


def test_a_rerun_sends_nothing_and_full_resync_sends_the_slice_again(warehouse: Warehouse, emulator: Emulator) -> None:
    spec = warehouse.spec(emulator.url)
    run_backfill(spec, "2025-02-01")
    again = metadata(run_backfill(spec, "2025-02-01"), BACKFILL_ASSET)
    assert (again["unchanged"], again["userflow_requests"]) == (4, 0)
    assert emulator.requests_total() == 4
    forced = metadata(run_backfill(spec, "2025-02-01", config={"full_resync": True}), BACKFILL_ASSET)
    assert (forced["updated"], forced["userflow_requests"]) == (4, 4)


def test_users_the_backfill_sent_are_not_sent_again_by_the_regular_sync(
    warehouse: Warehouse, emulator: Emulator
) -> None:
    spec = warehouse.spec(emulator.url)
    run_backfill(spec, "2025-05-01")
    users = metadata(run_sync(spec), "userflow_users")
    assert (users["created"], users["unchanged"]) == (20, 4)
    assert set(emulator.users()) == ALL_USERS


def test_a_range_of_slices_in_one_run_marks_each_slice(warehouse: Warehouse, emulator: Emulator) -> None:
    spec = warehouse.spec(emulator.url)
    result = run_backfill(spec, through=("2025-01-01", "2025-03-01"))
    keys = sorted(e.partition for e in result.asset_materializations_for_node(BACKFILL_ASSET))
    assert keys == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert set(emulator.users()) == user_ids_in("2025-01") | user_ids_in("2025-02") | user_ids_in("2025-03")


def test_a_dry_run_plans_and_sends_nothing(warehouse: Warehouse, emulator: Emulator) -> None:
    meta = metadata(run_backfill(warehouse.spec(emulator.url), "2025-04-01", config={"dry_run": True}), BACKFILL_ASSET)
    assert (meta["plan_create"], meta["dry_run"]) == (4, True)
    assert emulator.requests_total() == 0
    assert warehouse.state("SELECT count(*) FROM sync.records")[0][0] == 0


def test_too_many_rejected_users_stop_the_slice_before_any_request(warehouse: Warehouse, emulator: Emulator) -> None:
    warehouse.sql("UPDATE users SET user_id = NULL WHERE user_id IN ('u16', 'u17')")  # 2 of May's 4
    result = run_backfill(warehouse.spec(emulator.url), "2025-05-01", raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node(BACKFILL_ASSET)
    assert failure is not None and "2 rejected users in signups 2025-05-01..2025-06-01 (50.00%)" in str(
        failure.user_failure_data.description if failure.user_failure_data else failure.error
    )
    assert emulator.requests_total() == 0


# Changes while a backfill runs


def test_a_user_changed_during_the_backfill_ends_up_with_its_newest_data(
    warehouse: Warehouse, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change lands after the slice was read and before it is sent: the backfill sends the
    old data, and the next regular sync, whose cursor the backfill did not move, sends the new."""
    spec = warehouse.spec(emulator.url)
    run_sync(spec)  # the regular cursor now stands at this read
    warehouse.sql("UPDATE users SET plan = 'team', updated_at = '2025-07-02' WHERE user_id = 'u08'")  # old change
    real_plan = sink_run.build_plan

    def change_then_plan(*args: Any, **kwargs: Any) -> Any:
        touch_user(warehouse, "u09", "enterprise")
        return real_plan(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(sink_run, "build_plan", change_then_plan)
        meta = metadata(run_backfill(spec, "2025-03-01"), BACKFILL_ASSET)
    assert meta["updated"] == 1  # u08's older change; u09 was read before it changed
    assert emulator.users()["u09"]["attributes"]["plan"] == "free"
    users = metadata(run_sync(spec), "userflow_users")
    assert (users["updated"], users["userflow_requests"]) == (1, 1)
    assert emulator.users()["u09"]["attributes"]["plan"] == "enterprise"
    assert emulator.users()["u08"]["attributes"]["plan"] == "team"


def test_a_backfill_after_a_change_sends_it_once(warehouse: Warehouse, emulator: Emulator) -> None:
    spec = warehouse.spec(emulator.url)
    run_sync(spec)
    touch_user(warehouse, "u13", "pro")
    meta = metadata(run_backfill(spec, "2025-04-01"), BACKFILL_ASSET)
    assert (meta["updated"], meta["unchanged"], meta["userflow_requests"]) == (1, 3, 1)
    users = metadata(run_sync(spec), "userflow_users")
    assert (users["updated"], users["userflow_requests"]) == (0, 0)
    assert emulator.users()["u13"]["attributes"]["plan"] == "pro"
