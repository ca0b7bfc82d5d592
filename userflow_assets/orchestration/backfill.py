"""Backfill of historical users: users.sql cut into slices by signup date, one partition each.

`userflow_users_by_signup` runs the regular stages on one slice (or a range of slices): the
source query wrapped in a signup-range filter (bound, never pasted), staged and transformed
under the slice's own table names, then planned against and applied to the SAME sync state
as `userflow_users`, so a user already confirmed with the same payload is not sent again and
a user the regular sync sends later is compared with what the backfill confirmed.

It never moves the regular sync's incremental cursor (it writes neither `sync.reads` nor
`sync.cursors`): a user changed while a backfill runs has an `updated_at` after the last
regular read, so the next regular sync reads it and sends its newest data.

Its one step is in the `userflow_api` pool: the read, plan and apply of a slice happen
while it holds the API budget, and a queued backfill run waits in the run queue (no process
started) until the pool has a free slot.
"""

import asyncio
import json
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from userflow_assets import recovery
from userflow_assets.client import UserflowResource
from userflow_assets.plan.planner import PlanSummary, build_plan, plan_preview, summarize_plan
from userflow_assets.settings import API_POOL, project_path
from userflow_assets.sink.apply import apply_plan, existing_ids, mark_skipped, update_mode_candidates
from userflow_assets.spec import SyncSpec
from userflow_assets.sqltext import attach_read_only, ident
from userflow_assets.state import store
from userflow_assets.transform import build_records
from userflow_assets.warehouse.queries import SourceQuery
from userflow_assets.warehouse.resources import WarehouseResource

BACKFILL_ASSET = "userflow_users_by_signup"
BACKFILL_JOB = "userflow_users_backfill"
BACKFILL_GROUP = "backfill"
# The first slice when neither the spec nor the warehouse says (the warehouse file is missing).
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


def earliest_signup(warehouse: WarehouseResource, query_file: str, column: str) -> datetime | None:
    """The earliest signup users.sql returns, or None when it cannot be read: the code location
    must load (and show why in the asset's description) even with no warehouse yet."""
    try:
        query = warehouse.load_query(query_file)
        path = warehouse.database_path()
        if not path.is_file():
            return None
        with duckdb.connect(":memory:") as con:
            con.execute("SET TimeZone='UTC'")
            attach_read_only(con, path, "warehouse")
            con.execute("USE warehouse")
            row = con.execute(
                f"SELECT min({ident(column)}) FROM (\n{query.text}\n)", query.parameters(None)
            ).fetchone()
    except Exception:  # noqa: BLE001 - a locked, missing or broken warehouse only moves the first slice
        return None
    value = row[0] if row else None
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime.combine(value, datetime.min.time()) if isinstance(value, date) else None


def partitions_start(spec: SyncSpec) -> tuple[date, str]:
    """The first slice's day and where it came from: the spec, the warehouse, or the default."""
    if spec.backfill.start:
        return date.fromisoformat(spec.backfill.start), "backfill.start"
    warehouse = WarehouseResource(
        database=str(project_path(spec.warehouse.database)), sql_dir=str(project_path(spec.warehouse.sql_dir))
    )
    earliest = earliest_signup(warehouse, spec.users.query, spec.backfill.signup_column)
    if earliest is not None:
        return earliest.date(), "the earliest signup in the warehouse"
    return DEFAULT_START, "the default (the warehouse could not be read when the code location loaded)"


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
    store.ensure_schema(con)
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


async def _existing(userflow: UserflowResource, candidates: list[str], known: int) -> set[str]:
    async with userflow.get_client() as client:
        return await existing_ids(client, "user", candidates, known)


async def _apply(
    userflow: UserflowResource,
    sync_db: DuckDBResource,
    spec: SyncSpec,
    run_id: str,
    total: int,
    batch_size: int,
    plan: str,
) -> Any:
    async with userflow.get_client() as client:
        return await apply_plan(
            client,
            sync_db.get_connection,
            "user",
            spec.users,
            run_id,
            prune=spec.users.prune_memberships,
            total=total,
            batch_size=batch_size,
            plan=plan,
        )


def build_backfill_defs(spec: SyncSpec) -> dg.Definitions:
    """`userflow_users_by_signup` (group `backfill`, pool `userflow_api`) and the job
    `userflow_users_backfill` for `dagster job backfill`; resources come from the sync's."""
    first, origin = partitions_start(spec)
    # `backfill_policy` is a beta parameter: the choice is deliberate (module docstring), so its
    # warning would only repeat in every process that loads the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        asset = _users_by_signup_asset(spec, build_partitions(spec, first), first, origin)
    job = dg.define_asset_job(
        BACKFILL_JOB,
        selection=[BACKFILL_ASSET],
        executor_def=dg.in_process_executor,
        description="Historical users by signup date; launch a backfill of its partitions.",
    )
    return dg.Definitions(assets=[asset], jobs=[job])


def _users_by_signup_asset(
    spec: SyncSpec, partitions: dg.TimeWindowPartitionsDefinition, first: date, origin: str
) -> dg.AssetsDefinition:
    per_run = PARTITIONS_PER_RUN[spec.backfill.partition]
    column = spec.backfill.signup_column

    @dg.asset(
        name=BACKFILL_ASSET,
        group_name=BACKFILL_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=per_run),
        pool=API_POOL,
        deps=["userflow_groups"] if spec.groups is not None else [],
        kinds={"userflow", "duckdb"},
        description=f"Historical users in {spec.backfill.partition} slices of `{column}` (UTC) from "
        f"{first.isoformat()} ({origin}); sent through the same sync state as userflow_users, so users "
        "Userflow already has unchanged are not sent again. Users with no signup date are left to the "
        f"regular sync. A backfill from the UI runs up to {per_run} slices per run.",
    )
    def _users_by_signup(
        context: dg.AssetExecutionContext,
        config: BackfillConfig,
        warehouse: WarehouseResource,
        sync_db: DuckDBResource,
        userflow: UserflowResource,
    ) -> dg.MaterializeResult:
        # Its one step holds the pool: the run worker recorded lets a later sync recover the
        # slot if this run is killed outright.
        recovery.record_run_worker(context)
        started = time.monotonic()
        window = context.partition_time_window
        start, end = _naive_utc(window.start), _naive_utc(window.end)
        tables = SliceTables.for_window(start, end)
        run_id = context.run.run_id
        with sync_db.get_connection() as con:
            counts = _stage_and_transform(con, spec, warehouse, tables, start, end)
        _stop_on_rejected(spec, counts, tables, start, end)
        summary, preview = _plan_slice(spec, tables, config, run_id, sync_db, userflow)
        context.log.info(f"Users who signed up in [{start:%Y-%m-%d}, {end:%Y-%m-%d}): plan {summary.counts}")
        metadata: dict[str, Any] = {
            "signups_from": start.isoformat(),
            "signups_before": end.isoformat(),
            **counts,
            **{f"plan_{action}": n for action, n in summary.counts.items()},
            "plan_preview": dg.MetadataValue.md(preview),
            "dry_run": config.dry_run,
        }
        if not config.dry_run:
            metadata |= _send_slice(spec, tables, summary, config, run_id, sync_db, userflow)
        with sync_db.get_connection() as con:
            con.execute(f"DROP TABLE IF EXISTS {tables.records}")
            con.execute(f"DROP TABLE IF EXISTS {tables.plan}")
        return dg.MaterializeResult(metadata={**metadata, "duration_s": round(time.monotonic() - started, 3)})

    return _users_by_signup


def _stop_on_rejected(
    spec: SyncSpec, counts: dict[str, Any], tables: SliceTables, start: datetime, end: datetime
) -> None:
    """The records asset's blocking `rejected_share` check, for a slice: nothing is sent above it."""
    rejected, records = counts["rejected"], counts["records"]
    share = rejected / (records + rejected) if rejected else 0.0
    if share > spec.users.max_rejected_fraction:
        raise dg.Failure(
            description=f"{rejected} rejected users in signups {start:%Y-%m-%d}..{end:%Y-%m-%d} ({share:.2%}), "
            f"above users.max_rejected_fraction; nothing was sent. Reasons: {tables.rejected}",
            metadata=counts,
        )


def _plan_slice(
    spec: SyncSpec,
    tables: SliceTables,
    config: BackfillConfig,
    run_id: str,
    sync_db: DuckDBResource,
    userflow: UserflowResource,
) -> tuple[PlanSummary, str]:
    """The slice diffed against the shared sync state, as the users sink plans (update mode included)."""
    with sync_db.get_connection() as con:
        build_plan(con, "user", tables.records, config.full_resync, plan=tables.plan)
        update = spec.users.mode == "update"
        candidates, known = update_mode_candidates(con, "user", plan=tables.plan) if update else ([], 0)
    if candidates and not config.dry_run:
        found = asyncio.run(_existing(userflow, candidates, known))
        with sync_db.get_connection() as con:
            mark_skipped(con, "user", candidates, found, plan=tables.plan)
    with sync_db.get_connection() as con:
        store.start_run(con, run_id, "user")
        return summarize_plan(con, "user", plan=tables.plan), plan_preview(con, "user", plan=tables.plan)


def _send_slice(
    spec: SyncSpec,
    tables: SliceTables,
    summary: PlanSummary,
    config: BackfillConfig,
    run_id: str,
    sync_db: DuckDBResource,
    userflow: UserflowResource,
) -> dict[str, Any]:
    """Apply the plan through the client, checkpointing each batch in the sync state."""
    before = userflow.metadata()
    outcome = asyncio.run(_apply(userflow, sync_db, spec, run_id, summary.to_send, config.batch_size, tables.plan))
    client_counters = {k: v - before.get(k, 0) for k, v in userflow.metadata().items()}
    sent = {**outcome.confirmed, "failed": outcome.failed, "skipped": summary.counts["skipped"]}
    with sync_db.get_connection() as con:
        # No store.advance_cursor: the regular sync's cursor is its own (module docstring).
        store.finish_run(con, run_id, "user", "success", json.dumps(sent))
    return {
        "created": outcome.confirmed["create"],
        "updated": outcome.confirmed["update"] + outcome.confirmed["retry"],
        "unchanged": summary.counts.get("unchanged", 0),
        "failed": outcome.failed,
        **client_counters,
    }
