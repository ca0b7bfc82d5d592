"""The definitions once schedule, sensor and backfill are wired in (as orchestration_location does)."""

from datetime import timedelta

import dagster as dg
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy
from orchestration_harness import Warehouse
from orchestration_location import build_location_defs

from userflow_assets.orchestration.backfill import BACKFILL_ASSET, BACKFILL_JOB
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.orchestration.schedules import SCHEDULE_NAME, SYNC_RUN_TAG
from userflow_assets.orchestration.sensors import SENSOR_NAME


def test_the_sync_job_leaves_the_partitioned_backfill_out(warehouse: Warehouse) -> None:
    defs = build_location_defs(warehouse.spec())
    repository = defs.get_repository_def()
    sync = repository.get_job("userflow_sync")
    selected = {key.to_user_string() for key in sync.asset_layer.selected_asset_keys}
    assert BACKFILL_ASSET not in selected
    assert {"warehouse_users", "userflow_users", "warehouse_groups", "userflow_groups"} <= selected
    assert sync.tags[SYNC_RUN_TAG] == "launched"
    backfill = repository.get_job(BACKFILL_JOB)
    assert backfill.partitions_def is not None
    assert {key.to_user_string() for key in backfill.asset_layer.selected_asset_keys} == {BACKFILL_ASSET}


def test_schedule_and_sensor_target_the_sync_job(warehouse: Warehouse) -> None:
    repository = build_location_defs(warehouse.spec()).get_repository_def()
    assert repository.get_schedule_def(SCHEDULE_NAME).job_name == "userflow_sync"
    assert repository.get_sensor_def(SENSOR_NAME).job_name == "userflow_sync"


def test_every_asset_that_calls_userflow_is_in_the_api_pool(warehouse: Warehouse) -> None:
    events = {"key_column": "event_id", "name": "name", "user_id": "user_id"}
    repository = build_location_defs(warehouse.spec(events=events)).get_repository_def()
    calling = {
        node.key.to_user_string(): node.pools for node in repository.asset_graph.asset_nodes if "userflow" in node.kinds
    }
    assert {"userflow_users", "userflow_groups", "userflow_events", BACKFILL_ASSET} <= set(calling)
    assert all(pools == {"userflow_api"} for pools in calling.values()), calling


def test_the_backfill_asset_lists_its_slices_in_the_ui(warehouse: Warehouse) -> None:
    repository = build_location_defs(warehouse.spec()).get_repository_def()
    node = repository.asset_graph.get(dg.AssetKey(BACKFILL_ASSET))
    assert node.group_name == "backfill"
    assert node.partitions_def is not None
    assert node.partitions_def.get_partition_keys()[:6] == [f"2020-0{m}-01" for m in range(1, 7)]


def test_the_sinks_are_held_to_the_schedule_only_while_it_is_on(warehouse: Warehouse) -> None:
    def policy(spec_sections: dict) -> dict[str, object]:
        defs = build_sync_defs(warehouse.spec(**spec_sections))
        graph = defs.get_repository_def().asset_graph
        return {key: graph.get(dg.AssetKey(key)).freshness_policy for key in ("userflow_users", "userflow_groups")}

    assert set(policy({}).values()) == {None}  # the shipped default: the schedule is off
    on = policy({"schedule": {"period": "1h", "enabled": True}})
    for held in on.values():
        assert isinstance(held, TimeWindowFreshnessPolicy)
        assert (held.warn_window.to_timedelta(), held.fail_window.to_timedelta()) == (
            timedelta(minutes=90),
            timedelta(hours=3),
        )
