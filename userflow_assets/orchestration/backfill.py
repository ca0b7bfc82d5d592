"""Backfill of historical users: users.sql cut into slices by signup date, one partition each.

`userflow_users_by_signup` runs the regular stages on one slice (or a range of slices): the
source query wrapped in a signup-range filter (bound, never pasted), staged and transformed
under the slice's own table names, then planned against and applied to the SAME sync state
as `userflow_users`, so a user already confirmed with the same payload is not sent again and
a user the regular sync sends later is compared with what the backfill confirmed.

It never moves the regular sync's incremental cursor (it records no read and advances no
cursor): a user changed while a backfill runs has an `updated_at` after the last regular
read, so the next regular sync reads it and sends its newest data. The slice is sent by the
sink's own function (`sink.run.sink_records`), so it plans, guards, learns rate limits and
checkpoints exactly as `userflow_users` does.

The partitions start at `backfill.start` (default 2020-01-01) and never depend on the
warehouse, so the code server and every run worker see the same partition set.

Its one step is in the `userflow_api` pool: the read, plan and apply of a slice happen
while it holds the API budget, and a queued backfill run waits in the run queue (no process
started) until the pool has a free slot.
"""

import time
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import duckdb

from userflow_assets import recovery
from userflow_assets.client import UserflowResource
from userflow_assets.settings import API_POOL, SHIPPED, Names
from userflow_assets.sink.run import SinkJob, sink_records
from userflow_assets.spec import SyncSpec
from userflow_assets.sqltext import ident
from userflow_assets.state.resources import StateDatabase
from userflow_assets.transform import build_records
from userflow_assets.transform.assets import RejectedShare
from userflow_assets.warehouse.queries import SourceQuery
from userflow_assets.warehouse.resources import WarehouseResource

BACKFILL_ASSET = "userflow_users_by_signup"
BACKFILL_JOB = "userflow_users_backfill"
BACKFILL_GROUP = "backfill"
# The first slice when the spec does not say (README, "Backfill").
DEFAULT_START = date(2020, 1, 1)
# Slices per run of a backfill launched from the UI (BackfillPolicy.multi_run): a quarter of
# monthly slices or a month of daily ones. Each run holds the API pool for its whole range,
# so the regular sync waits at most that long for its turn, while ten years of history is
# 40 runs (monthly) or about 120 (daily), not 120 or 3,650.
PARTITIONS_PER_RUN = {"monthly": 3, "daily": 31}

SLICE_START, SLICE_END = "UF_SLICE_START", "UF_SLICE_END"


@dataclass(frozen=True)
class SlicedQuery(SourceQuery):
    """The source query restricted to signups in [start, end); the bounds are bound parameters."""

    start: datetime = datetime(1, 1, 1)
    end: datetime = datetime(1, 1, 1)

    def parameters(self, since: datetime | None) -> dict[str, datetime]:
        return {**super().parameters(since), SLICE_START: self.start, SLICE_END: self.end}


def sliced_query(query: SourceQuery, column: str, start: datetime, end: datetime) -> SlicedQuery:
    signup = ident(column)
    # The newline keeps a trailing line comment in the file from swallowing the parenthesis.
    text = f"SELECT * FROM (\n{query.text}\n) AS uf_source WHERE {signup} >= ${SLICE_START} AND {signup} < ${SLICE_END}"
    return SlicedQuery(path=query.path, text=text, uses_cursor=query.uses_cursor, start=start, end=end)


@dataclass(frozen=True)
class SliceTables:
    """The slice's own staging, records and rejected tables, beside (never over) the regular sync's."""

    suffix: str

    @staticmethod
    def for_window(start: datetime, end: datetime) -> "SliceTables":
        return SliceTables(f"{start:%Y%m%d}_{end:%Y%m%d}")

    @property
    def staging_name(self) -> str:
        return f"backfill_users_{self.suffix}"

    @property
    def staging(self) -> str:
        return f"staging.{self.staging_name}"

    @property
    def records(self) -> str:
        return f"transform.backfill_user_records_{self.suffix}"

    @property
    def rejected(self) -> str:
        return f"transform.backfill_user_rejected_{self.suffix}"

    @property
    def plan(self) -> str:
        return f"plan.backfill_user_plan_{self.suffix}"


def first_slice(spec: SyncSpec) -> date:
    """The first slice's day: `backfill.start`, else the documented default."""
    return date.fromisoformat(spec.backfill.start) if spec.backfill.start else DEFAULT_START


def build_partitions(spec: SyncSpec, first: date) -> dg.TimeWindowPartitionsDefinition:
    """Monthly or daily slices in UTC from the one holding `first`, up to and including the
    current one (a slice still filling is rerun later, or left to the regular sync)."""
    if spec.backfill.partition == "daily":
        return dg.DailyPartitionsDefinition(start_date=first.isoformat(), timezone="UTC", end_offset=1)
    return dg.MonthlyPartitionsDefinition(start_date=first.replace(day=1).isoformat(), timezone="UTC", end_offset=1)


class BackfillConfig(dg.Config):
    dry_run: bool = False
    """Work out and show each slice's plan, send nothing."""
    full_resync: bool = False
    """Send every user of the slice, even those the sync state says Userflow already has."""
    batch_size: int = 500
    """Records per state checkpoint."""


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _stage_and_transform(
    con: duckdb.DuckDBPyConnection,
    spec: SyncSpec,
    warehouse: WarehouseResource,
    tables: SliceTables,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    con.execute("SET TimeZone='UTC'")  # signup bounds are UTC, also against a TIMESTAMPTZ column
    source = sliced_query(warehouse.load_query(spec.users.query), spec.backfill.signup_column, start, end)
    warehouse.stage(con, source, tables.staging_name, since=None)
    result = build_records(con, spec.users, "user", tables.staging, tables.records, tables.rejected)
    con.execute(f"DROP TABLE IF EXISTS {tables.staging}")
    if result.rejected == 0:
        con.execute(f"DROP TABLE IF EXISTS {tables.rejected}")
    return {
        "source_rows": result.source_rows,
        "records": result.records,
        "rejected": result.rejected,
        "filtered_out": result.filtered_out,
    }


def build_backfill_defs(spec: SyncSpec, names: Names = SHIPPED, pool: str = API_POOL) -> dg.Definitions:
    """`userflow_users_by_signup` (group `backfill`, in the sync's `pool`) and the job
    `userflow_users_backfill` for `dagster job backfill`; resources come from the sync's."""
    first = first_slice(spec)
    # `backfill_policy` is a beta parameter: the choice is deliberate (module docstring), so its
    # warning would only repeat in every process that loads the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        asset = _users_by_signup_asset(spec, build_partitions(spec, first), first, names, pool)
    job = dg.define_asset_job(
        names(BACKFILL_JOB),
        selection=[names.key(BACKFILL_ASSET)],
        executor_def=dg.in_process_executor,
        description="Historical users by signup date; launch a backfill of its partitions.",
    )
    return dg.Definitions(assets=[asset], jobs=[job])


def _users_by_signup_asset(
    spec: SyncSpec, partitions: dg.TimeWindowPartitionsDefinition, first: date, names: Names, pool: str
) -> dg.AssetsDefinition:
    per_run = PARTITIONS_PER_RUN[spec.backfill.partition]
    column = spec.backfill.signup_column

    @dg.asset(
        name=BACKFILL_ASSET,
        key_prefix=names.key_prefix,
        group_name=names(BACKFILL_GROUP),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=per_run),
        pool=pool,
        deps=[names.key("userflow_groups")] if spec.groups is not None else [],
        required_resource_keys=names.resource_keys("warehouse", "sync_db", "userflow"),
        kinds={"userflow", "duckdb"},
        description=f"Historical users in {spec.backfill.partition} slices of `{column}` (UTC) from "
        f"{first.isoformat()} (backfill.start); sent through the same sync state as userflow_users, so users "
        "Userflow already has unchanged are not sent again. Users with no signup date are left to the "
        f"regular sync. A backfill from the UI runs up to {per_run} slices per run.",
    )
    def _users_by_signup(context: dg.AssetExecutionContext, config: BackfillConfig) -> dg.MaterializeResult:
        warehouse: WarehouseResource = names.resource(context, "warehouse")
        sync_db: StateDatabase = names.resource(context, "sync_db")
        userflow: UserflowResource = names.resource(context, "userflow")
        # Its one step holds the pool: the run worker recorded lets a later sync recover the
        # slot if this run is killed outright.
        recovery.record_run_worker(context)
        started = time.monotonic()
        window = context.partition_time_window
        start, end = _naive_utc(window.start), _naive_utc(window.end)
        tables = SliceTables.for_window(start, end)
        with sync_db.get_connection() as con:
            counts = _stage_and_transform(con, spec, warehouse, tables, start, end)
        _stop_on_rejected(spec, counts, tables, start, end)
        job = SinkJob(
            object_type="user",
            spec=spec.users,
            records_table=tables.records,
            plan_table=tables.plan,
            staging_table=tables.staging,
            mode=spec.users.mode,
            prune=spec.users.prune_memberships,
            full_resync=config.full_resync,
            dry_run=config.dry_run,
            batch_size=config.batch_size,
            regular=False,
            rejected_in=tables.rejected,
        )
        try:
            sent = sink_records(context, job, sync_db, userflow, rejected=counts["rejected"])
        finally:
            with sync_db.get_connection() as con:
                con.execute(f"DROP TABLE IF EXISTS {tables.records}")
                con.execute(f"DROP TABLE IF EXISTS {tables.plan}")
        window_meta = {"signups_from": start.isoformat(), "signups_before": end.isoformat(), **counts}
        duration = {"duration_s": round(time.monotonic() - started, 3)}
        return dg.MaterializeResult(metadata={**sent, **window_meta, **duration})

    return _users_by_signup


def _stop_on_rejected(
    spec: SyncSpec, counts: dict[str, Any], tables: SliceTables, start: datetime, end: datetime
) -> None:
    """The records asset's blocking `rejected_share` check, for a slice: nothing is sent above it."""
    verdict = RejectedShare(counts["records"], counts["rejected"], spec.users.max_rejected_fraction)
    if not verdict.passed:
        raise dg.Failure(
            description=f"{verdict.rejected} rejected users in signups {start:%Y-%m-%d}..{end:%Y-%m-%d} "
            f"({verdict.share:.2%}), above users.max_rejected_fraction; nothing was sent. Reasons: {tables.rejected}",
            metadata=counts,
        )
