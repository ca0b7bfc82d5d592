"""The change sensor, evaluated tick by tick against a real warehouse file."""

import subprocess
import sys
from typing import Any

import dagster as dg
import pytest
from orchestration_harness import Warehouse, touch_user

from userflow_assets.orchestration.schedules import SYNC_RUN_TAG
from userflow_assets.orchestration.sensors import SENSOR_NAME, ProbeCursor, build_change_sensor

JOB = dg.define_asset_job("userflow_sync", selection=dg.AssetSelection.all())


def tick(sensor: dg.SensorDefinition, warehouse: Warehouse, cursor: str | None) -> Any:
    context = dg.build_sensor_context(cursor=cursor, resources={"warehouse": warehouse.resource()})
    return sensor.evaluate_tick(context)


def test_first_tick_asks_for_one_run_and_records_every_probe(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(
        warehouse.spec(events={"key_column": "event_id", "name": "name", "user_id": "user_id"}), JOB
    )
    data = tick(sensor, warehouse, None)
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    assert request.tags[SYNC_RUN_TAG] == "sensor"
    assert request.tags["userflow/changed"] == "events,groups,users"
    cursor = ProbeCursor.parse(data.cursor)
    assert cursor.generation == 1
    # users.sql binds $LAST_SYNC_TIMESTAMP: the probe reads as a full read does (all 24 rows).
    assert cursor.probes["users"] == ["24", "2025-07-01 00:00:00"]
    assert cursor.probes["groups"] == ["3", "2025-07-01 00:00:00"]
    # events.sql has no updated_at: row count and a checksum of the rows.
    assert cursor.probes["events"][0] == "1" and len(cursor.probes["events"]) == 2


def test_no_run_without_a_change(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(), JOB)
    cursor = tick(sensor, warehouse, None).cursor
    for _ in range(2):
        data = tick(sensor, warehouse, cursor)
        assert data.run_requests == []
        assert data.skip_message == "No change in groups, users"
        assert data.cursor == cursor  # as it was


def test_one_run_per_change_each_with_its_own_key(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(), JOB)
    first = tick(sensor, warehouse, None)
    cursor = first.cursor
    keys = [first.run_requests[0].run_key]
    changes = [
        lambda: touch_user(warehouse, "u03", "pro"),
        lambda: warehouse.sql("INSERT INTO users VALUES ('u99', 'x@example.com', 'free', '2025-06-30', '2025-07-01')"),
        lambda: warehouse.sql("UPDATE accounts SET name = 'Renamed', updated_at = now() WHERE account_id = 'a1'"),
    ]
    for change in changes:
        change()
        data = tick(sensor, warehouse, cursor)
        assert len(data.run_requests) == 1
        keys.append(data.run_requests[0].run_key)
        cursor = data.cursor
        assert tick(sensor, warehouse, cursor).run_requests == []
    assert len(set(keys)) == 4
    assert ProbeCursor.parse(cursor).generation == 4
    assert data.run_requests[0].tags["userflow/changed"] == "groups"


def test_a_repeated_tick_asks_for_the_same_run_key(warehouse: Warehouse) -> None:
    """A tick whose cursor update was lost repeats from the old cursor: the same key, so one run."""
    sensor = build_change_sensor(warehouse.spec(), JOB)
    cursor = tick(sensor, warehouse, None).cursor
    touch_user(warehouse, "u01", "pro")
    again = [tick(sensor, warehouse, cursor) for _ in range(2)]
    assert again[0].run_requests[0].run_key == again[1].run_requests[0].run_key
    assert again[0].cursor == again[1].cursor


def test_a_change_back_to_earlier_answers_is_still_a_new_run(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(), JOB)
    start = tick(sensor, warehouse, None)
    warehouse.sql("INSERT INTO accounts VALUES ('a9', 'Temp', '2025-07-01')")
    added = tick(sensor, warehouse, start.cursor)
    warehouse.sql("DELETE FROM accounts WHERE account_id = 'a9'")
    removed = tick(sensor, warehouse, added.cursor)
    assert ProbeCursor.parse(removed.cursor).probes == ProbeCursor.parse(start.cursor).probes
    assert removed.run_requests[0].run_key != start.run_requests[0].run_key


def test_missing_warehouse_skips_with_the_reason_and_keeps_the_cursor(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(), JOB)
    cursor = tick(sensor, warehouse, None).cursor
    moved = warehouse.path.rename(warehouse.path.with_suffix(".moved"))
    data = tick(sensor, warehouse, cursor)
    assert data.run_requests == []
    assert data.cursor == cursor
    assert data.skip_message == (
        f"Probe failed, cursor kept: Warehouse file not found: {warehouse.path} "
        "(resource 'warehouse', setting 'database'; create the sample with `python -m userflow_assets.sample`)"
    )
    moved.rename(warehouse.path)
    touch_user(warehouse, "u02", "pro")
    # The change made while the probe failed is seen against the kept cursor.
    assert len(tick(sensor, warehouse, cursor).run_requests) == 1


def test_a_broken_query_skips_naming_the_file(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(), JOB)
    cursor = tick(sensor, warehouse, None).cursor
    (warehouse.sql_dir / "groups.sql").write_text("SELECT account_id, nme FROM accounts")
    data = tick(sensor, warehouse, cursor)
    assert data.run_requests == [] and data.cursor == cursor
    assert data.skip_message.startswith(f"Probe failed, cursor kept: groups: {warehouse.sql_dir / 'groups.sql'}: ")
    assert "nme" in data.skip_message


def test_a_warehouse_locked_by_its_writer_skips_and_keeps_the_cursor(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(), JOB)
    cursor = tick(sensor, warehouse, None).cursor
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(warehouse.path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        data = tick(sensor, warehouse, cursor)
    finally:
        holder.communicate(timeout=30)
    assert data.run_requests == [] and data.cursor == cursor
    assert data.skip_message.startswith(f"Probe failed, cursor kept: cannot open the warehouse {warehouse.path}: ")


def test_the_spec_probe_replaces_the_default(warehouse: Warehouse) -> None:
    """A membership change leaves users' count and max(updated_at) alone; a spec probe can see it."""
    membership_change = "UPDATE memberships SET account_id = 'a2', updated_at = now() WHERE user_id = 'u00'"
    default = build_change_sensor(warehouse.spec(), JOB)
    probed = build_change_sensor(
        warehouse.spec(
            sensor={
                "probes": {
                    "users": "SELECT count(*), max(updated_at) FROM memberships WHERE updated_at > $LAST_SYNC_TIMESTAMP"
                }
            }
        ),
        JOB,
    )
    default_cursor = tick(default, warehouse, None).cursor
    probed_cursor = tick(probed, warehouse, None).cursor
    warehouse.sql(membership_change)
    assert tick(default, warehouse, default_cursor).run_requests == []
    data = tick(probed, warehouse, probed_cursor)
    assert len(data.run_requests) == 1
    assert data.run_requests[0].tags["userflow/changed"] == "users"


def test_a_spec_probe_with_an_unknown_parameter_skips_with_the_reason(warehouse: Warehouse) -> None:
    sensor = build_change_sensor(warehouse.spec(sensor={"probes": {"groups": "SELECT max(updated_at) > $SINCE"}}), JOB)
    data = tick(sensor, warehouse, None)
    assert data.run_requests == [] and data.cursor is None
    assert data.skip_message == (
        "Probe failed, cursor kept: groups: sensor.probes.groups: unknown parameter $SINCE; "
        "a probe may only use $LAST_SYNC_TIMESTAMP"
    )


def test_a_probe_for_an_object_not_synced_is_refused_at_load(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="sensor.probes names accounts, which the spec does not sync"):
        build_change_sensor(warehouse.spec(sensor={"probes": {"accounts": "SELECT 1"}}), JOB)


def test_status_and_interval_come_from_the_spec(warehouse: Warehouse) -> None:
    off = build_change_sensor(warehouse.spec(), JOB)
    on = build_change_sensor(warehouse.spec(sensor={"enabled": True, "interval_seconds": 15}), JOB)
    assert off.name == on.name == SENSOR_NAME
    assert off.default_status == dg.DefaultSensorStatus.STOPPED
    assert on.default_status == dg.DefaultSensorStatus.RUNNING
    assert (off.minimum_interval_seconds, on.minimum_interval_seconds) == (60, 15)
    assert on.job_name == "userflow_sync"
