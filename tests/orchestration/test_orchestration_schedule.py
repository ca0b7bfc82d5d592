"""The sync schedule: every seed period on the grid through its start minute, off unless enabled."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from userflow_assets.orchestration.schedules import PERIOD_MINUTES, SYNC_RUN_TAG, build_schedule, cron_for
from userflow_assets.spec import ScheduleSpec

DAY = datetime(2026, 3, 2, tzinfo=UTC)
JOB = dg.define_asset_job("userflow_sync", selection=dg.AssetSelection.all())


def fire_minutes(cron: str) -> set[int]:
    """Minutes of one UTC day at which `cron` fires, as Dagster's own scheduler computes them."""
    minutes: set[int] = set()
    for tick in cron_string_iterator(DAY.timestamp(), cron, "UTC"):
        if tick >= DAY + timedelta(days=1):
            return minutes
        minutes.add(tick.hour * 60 + tick.minute)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("period", list(PERIOD_MINUTES))
@pytest.mark.parametrize("start_minute", [0, 7, 90, 725, 1439])
def test_each_period_fires_on_its_grid_through_the_start_minute(period: str, start_minute: int) -> None:
    every = PERIOD_MINUTES[period]
    expected = {(start_minute + k * every) % 1440 for k in range(1440 // every)}
    assert fire_minutes(cron_for(period, start_minute)) == expected


def test_cron_strings_read_as_expected() -> None:
    assert cron_for("1h", 0) == "0 * * * *"
    assert cron_for("15m", 7) == "7,22,37,52 * * * *"
    assert cron_for("8h", 90) == "30 1,9,17 * * *"
    assert cron_for("24h", 1439) == "59 23 * * *"
    assert cron_for("5m", 0) == "0,5,10,15,20,25,30,35,40,45,50,55 * * * *"


def test_default_is_hourly_on_the_hour_and_off() -> None:
    schedule = build_schedule(ScheduleSpec(), JOB)
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "userflow_sync"


def test_enabled_schedule_runs_on_load() -> None:
    schedule = build_schedule(ScheduleSpec(period="30m", start_minute=10, enabled=True), JOB)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "10,40 * * * *"


def test_a_tick_requests_one_sync_run_tagged_as_a_sync() -> None:
    schedule = build_schedule(ScheduleSpec(period="2h", start_minute=30, enabled=True), JOB)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=DAY + timedelta(minutes=30))
        data = schedule.evaluate_tick(context)
    assert data.skip_message is None
    assert len(data.run_requests or []) == 1
    assert (data.run_requests or [])[0].tags[SYNC_RUN_TAG] == "schedule"


def test_start_minute_outside_the_day_is_refused() -> None:
    with pytest.raises(ValueError, match="minute of the day"):
        ScheduleSpec(start_minute=1440)
