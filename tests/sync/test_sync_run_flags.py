"""Launchpad flags do what they say, and every run says which flags it ran with."""

import dagster as dg
import pytest
from harness import metadata
from sync_harness import SyncHarness

from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.sink.run import DRY_RUN_LABEL, DRY_RUN_TAG


@pytest.mark.slow  # 12 s on a busy machine: scheduled first (tests/conftest.py)
def test_full_resync_sends_every_record_even_on_an_incremental_read(harness: SyncHarness) -> None:
    harness.run()
    before = harness.requests_total()
    # Nothing changed: the incremental read stages no row, yet full_resync means every record.
    result = harness.run(sink={"full_resync": True})
    users, groups = metadata(result, "userflow_users"), metadata(result, "userflow_groups")
    assert (users["plan_update"], users["updated"], users["full_resync"]) == (100, 100, True)
    assert (groups["plan_update"], groups["updated"]) == (5, 5)
    assert metadata(result, "warehouse_users")["dagster/row_count"] == 0
    sent = harness.emulator("requests")["by_endpoint"]
    assert sent["POST /users"]["200"] == 200 and sent["POST /groups"]["200"] == 10
    assert harness.requests_total() - before >= 105
    # What was resent is what Userflow last confirmed: nothing about a user changed.
    assert harness.users()["u007"]["attributes"]["plan"] == "pro"
    assert harness.run().asset_materializations_for_node("userflow_users")  # and then back to nothing to send
    assert metadata(harness.run(), "userflow_users")["plan_update"] == 0


def test_run_flags_are_echoed(harness: SyncHarness) -> None:
    result = harness.run(sink={"dry_run": True, "prune_memberships": True}, read={"full_refresh": True})
    users = metadata(result, "userflow_users")
    assert (users["dry_run"], users["prune_memberships"], users["full_resync"], users["mode"]) == (
        True,
        True,
        False,
        "upsert",
    )
    assert metadata(result, "warehouse_users")["full_refresh"] is True
    assert harness.requests_total() == 0


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_dry_run_is_tagged_as_one_and_a_sync_is_not(harness: SyncHarness, dry_run: bool) -> None:
    defs = build_sync_defs(harness.spec())
    sinks = {name: {"config": {"dry_run": dry_run}} for name in ("userflow_users", "userflow_groups")}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [a for a in defs.assets or [] if not a.partitions_def],  # type: ignore[union-attr]
            resources=defs.resources,
            run_config={"ops": sinks},
            instance=instance,
        )
        tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
        leading = {
            sink: next(iter(instance.get_latest_materialization_event(dg.AssetKey(sink)).asset_materialization.metadata))  # type: ignore[union-attr]
            for sink in sinks
        }
    assert (tags.get(DRY_RUN_TAG) == "true") is dry_run
    # The asset page says it first: a dry run's materialization leads with the label, a sync's never has it.
    assert all((key == DRY_RUN_LABEL) is dry_run for key in leading.values()), leading
    assert (harness.requests_total() == 0) is dry_run
