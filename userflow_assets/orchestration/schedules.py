"""The sync on a clock: a cron built from the spec's period and start minute (UTC)."""

from datetime import timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from userflow_assets.settings import SHIPPED, Names
from userflow_assets.spec import ScheduleSpec

SCHEDULE_NAME = "userflow_sync_schedule"
# Every sync run carries this tag; its value says what started it (launched, schedule, sensor).
SYNC_RUN_TAG = "userflow/sync"

# What `define_asset_job` returns (not exported by dagster), or a resolved job.
JobTarget = UnresolvedAssetJobDefinition | dg.JobDefinition

PERIOD_MINUTES: dict[str, int] = {
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "3h": 180,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "24h": 1440,
}


def _steps(first: int, step: int, limit: int) -> str:
    values = list(range(first, limit, step))
    return "*" if len(values) == limit else ",".join(str(v) for v in values)


def cron_for(period: str, start_minute: int) -> str:
    """A cron (UTC) firing every `period`, on the grid through `start_minute` (minute of the day).

    Every period divides an hour or a day, so the grid is the same each day: e.g. 8h from
    minute 90 is 01:30, 09:30, 17:30; 15m from minute 7 is :07, :22, :37, :52 of every hour.
    """
    minutes = PERIOD_MINUTES[period]
    if minutes < 60:
        return f"{_steps(start_minute % minutes, minutes, 60)} * * * *"
    hours = minutes // 60
    return f"{start_minute % 60} {_steps((start_minute // 60) % hours, hours, 24)} * * *"


def freshness_policy(schedule: ScheduleSpec) -> dg.FreshnessPolicy | None:
    """When the schedule is on, the sinks should have run within its period: a warning after
    1.5 periods without a materialization (one tick missed), a failure after 3."""
    if not schedule.enabled:
        return None
    period = timedelta(minutes=PERIOD_MINUTES[schedule.period])
    return dg.FreshnessPolicy.time_window(fail_window=3 * period, warn_window=period * 3 / 2)


def build_schedule(schedule: ScheduleSpec, job: JobTarget, names: Names = SHIPPED) -> dg.ScheduleDefinition:
    """`userflow_sync_schedule`: `job` every period; running on load when `enabled`, else off
    until someone turns it on in the UI (or `dagster schedule start`)."""
    status = dg.DefaultScheduleStatus.RUNNING if schedule.enabled else dg.DefaultScheduleStatus.STOPPED
    return dg.ScheduleDefinition(
        name=names(SCHEDULE_NAME),
        job=job,
        cron_schedule=cron_for(schedule.period, schedule.start_minute),
        execution_timezone="UTC",
        default_status=status,
        tags={SYNC_RUN_TAG: "schedule"},
        description=f"The sync every {schedule.period} (UTC), on the grid through minute "
        f"{schedule.start_minute} of the day.",
    )
