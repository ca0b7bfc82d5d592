"""A sink's whole work as one function: plan, guards, update-mode lookup, apply, record the run.

`userflow_users`, `userflow_groups` and every backfill slice call `sink_records`; what
differs between them is in `SinkJob` (their tables, flags, and whether the regular sync's
cursor moves), not in a copy of the steps.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg
import duckdb

from userflow_assets import failpoints
from userflow_assets.client import UserflowResource
from userflow_assets.client.stats import counters_since
from userflow_assets.plan.planner import (
    PlanSummary,
    build_plan,
    plan_deletes,
    plan_preview,
    summarize_plan,
)
from userflow_assets.sink.apply import (
    ApplyOutcome,
    apply_plan,
    existing_ids,
    mark_skipped,
    remembered_rate_limits,
    update_mode_candidates,
)
from userflow_assets.spec import ObjectSpec
from userflow_assets.sqltext import md_table
from userflow_assets.state.resources import StateDatabase
from userflow_assets.state.store import LOG_COLUMNS, LOG_SQL, SyncState
from userflow_assets.state.types import utcnow
from userflow_assets.state.writeback import TABLE as WRITEBACK_TABLE
from userflow_assets.state.writeback import NotMarked, Written, failure_text


@dataclass(frozen=True)
class SinkJob:
    """One application of a records table to Userflow."""

    object_type: str
    spec: ObjectSpec
    records_table: str
    plan_table: str
    staging_table: str  # the staged rows (deletes are planned against them)
    mode: str
    prune: bool
    full_resync: bool = False
    dry_run: bool = False
    batch_size: int = 500
    regular: bool = True  # the regular sync: plans deletes and moves its cursor; a slice does neither
    rejected_in: str = ""  # where the rejected rows are listed, for the `rejected` count


DRY_RUN_TAG = "userflow/dry_run"


# A dry run's materialization leads with this key, so the asset page says it before any count.
DRY_RUN_LABEL = "DRY RUN"
DRY_RUN_NOTE = "Nothing was sent to Userflow: this materialization shows the plan only."


def mark_dry_run(context: dg.AssetExecutionContext) -> dict[str, str]:
    """Tag the run, so a dry run is told apart from a sync in the runs list; the label its
    metadata leads with."""
    context.instance.add_run_tags(context.run.run_id, {DRY_RUN_TAG: "true"})
    context.log.warning("Dry run: the plan was worked out and shown; nothing was sent to Userflow")
    return {DRY_RUN_LABEL: DRY_RUN_NOTE}


FAILURES_SHOWN = 500


def failures_metadata(state: SyncState, object_type: str) -> dict[str, Any]:
    """Every record waiting to be retried (up to 500 shown) and the SQL that lists them all."""
    rows = state.failures(object_type, FAILURES_SHOWN)
    table = md_table(["id", "status", "code", "message", "attempts", "last failed"], rows, 200)
    return {
        "failures": dg.MetadataValue.md(table if rows else "none"),
        "failures_sql": dg.MetadataValue.text(state.failures_sql(object_type)),
    }


def plan_metadata(summary: PlanSummary, preview: str) -> dict[str, Any]:
    return {
        **{f"plan_{action}": n for action, n in summary.counts.items()},
        # Records sent under a primary ID whose fallback-ID twin goes (plan_migrate counts those
        # that need nothing else): one count per meaning, no two keys alike.
        "plan_fallback_switches": summary.migrations,
        "plan_preview": dg.MetadataValue.md(preview),
    }


def _plan_deletes_or_stop(con: duckdb.DuckDBPyConnection, state: SyncState, job: SinkJob, exposed: bool) -> int:
    """Plan deletes after a full read, or stop the run before any request when a guard trips.
    `exposed`: the plan has the whole state in `con` already."""
    object_type, spec = job.object_type, job.spec
    if not state.last_read_was_full(object_type):
        return 0  # only a full read can tell that a record left the query's result
    (staged,) = con.execute(f"SELECT count(*) FROM {job.staging_table}").fetchone()
    synced, _ = state.record_counts(object_type)
    if staged == 0 and synced:
        raise dg.Failure(
            description=f"The {object_type}s query returned no rows while {synced} {object_type}s are synced; "
            f"with deletes on this would delete them all, so the run stopped before any request.",
            metadata={"synced": synced, "staged_rows": 0},
        )
    id_columns = [spec.id_column, *([spec.fallback_id_column] if spec.fallback_id_column else [])]
    deleting = plan_deletes(con, state, object_type, job.staging_table, id_columns, exposed=exposed)
    share = deleting / synced if synced else 0.0
    if share > spec.max_delete_fraction:
        raise dg.Failure(
            description=f"{deleting} of {synced} synced {object_type}s ({share:.1%}) left the query's result, "
            f"more than max_delete_fraction ({spec.max_delete_fraction:.1%}); the run stopped before any "
            "request. Check the query; raise the limit in the spec if the deletes are intended.",
            metadata={"deleting": deleting, "synced": synced, "max_delete_fraction": spec.max_delete_fraction},
        )
    return deleting


def _plan(
    context: dg.AssetExecutionContext, job: SinkJob, sync_db: StateDatabase, userflow: UserflowResource
) -> int:
    """The plan table written; update mode's unknown IDs looked up (not in a dry run). Returns how
    many records update mode left unverified (a dry run's candidates)."""
    state = sync_db.state()
    with sync_db.held():
        # A full resync after an incremental read also resends what the read did not list; a
        # full read lists everything, and a backfill slice only its own users.
        resend_unread = job.full_resync and job.regular and not state.last_read_was_full(job.object_type)
        # Only an incremental read or a slice may fetch just its own IDs' state; deletes and a
        # resend of what was not read need every record.
        only_read = not resend_unread and not (job.regular and state.last_read_was_full(job.object_type))
        with sync_db.get_connection() as con:
            build_plan(
                con, state, job.object_type, job.records_table, job.full_resync, plan=job.plan_table,
                resend_unread=resend_unread, only_read=only_read,
            )
            if job.regular and job.spec.deletes == "delete":
                deleting = _plan_deletes_or_stop(con, state, job, exposed=not only_read)
                context.log.info(f"{deleting} {job.object_type}s left the query's result and will be deleted")
            candidates = update_mode_candidates(con, job.object_type, plan=job.plan_table) if job.mode == "update" else []
        lookup = bool(candidates) and not job.dry_run
        known = state.record_counts(job.object_type)[0] if lookup else 0
    if lookup:
        # Asked of Userflow with the file let go: other processes may use it meanwhile.
        found = asyncio.run(_existing(userflow, job.object_type, candidates, known))
        with sync_db.get_connection() as con:
            mark_skipped(con, job.object_type, candidates, found, plan=job.plan_table)
    # A dry run in update mode does not ask Userflow which records exist: at most these are skipped.
    return len(candidates) if job.dry_run else 0


def sink_records(
    context: dg.AssetExecutionContext,
    job: SinkJob,
    sync_db: StateDatabase,
    userflow: UserflowResource,
    *,
    rejected: int,
) -> dict[str, Any]:
    """Plan `job`, show the plan, and (unless a dry run) apply it; the run's metadata."""
    state = sync_db.ready_state()
    with state.exclusive(job.object_type, f"run {context.run.run_id}"):
        return _sink_records(context, job, sync_db, userflow, state, rejected=rejected)


LOG_SHOWN = 50


def sync_log_metadata(state: SyncState, sync_db: StateDatabase) -> dict[str, Any]:
    """Prune the sync log past its retention; the latest rows and the SQL listing them all."""
    state.prune_log(utcnow() - timedelta(days=sync_db.log_retention_days))
    rows = state.log_rows(LOG_SHOWN)
    table = md_table(LOG_COLUMNS, rows, 120)
    return {"sync_log": dg.MetadataValue.md(table if rows else "none"), "sync_log_sql": dg.MetadataValue.text(LOG_SQL)}


def log_writeback_metadata(state: SyncState, sync_db: StateDatabase, run_id: str, object_type: str) -> dict[str, Any]:
    """Write this run's log rows of `object_type` back to the warehouse, if configured, with those
    of earlier runs a failed write-back missed (`log_writeback` counts all rows written,
    `log_writeback_caught_up` those runs). A failure is a warning and `log_writeback:
    "failed: ..."`, never the step's failure: the state holds the log, and the next write-back
    fills it in. Rows written whose runs the state could not mark say so in
    `log_writeback_unmarked`: the next write-back finds them in the table and writes them once."""
    where = f"{sync_db.log_writeback_schema}.{WRITEBACK_TABLE}"
    try:
        target = sync_db.log_writeback()
        if target is None:
            return {}
        written = target.write(state, run_id, object_type)
    except NotMarked as error:
        reason = failure_text(error.__cause__ or error)
        dg.get_dagster_logger().warning(
            f"log_writeback: {error.written.rows} rows written to {where}, but the state could not mark "
            f"them written: {reason}. The next write-back finds them there and marks them."
        )
        return {**_written_metadata(error.written, where), "log_writeback_unmarked": reason}
    except Exception as error:  # noqa: BLE001 - the sync's outcome stands whatever the warehouse says
        reason = failure_text(error)
        dg.get_dagster_logger().warning(f"log_writeback: the sync log was not written to {where}: {reason}")
        return {"log_writeback": f"failed: {reason}"}
    return _written_metadata(written, where)


def _written_metadata(written: Written, where: str) -> dict[str, Any]:
    return {"log_writeback": written.rows, "log_writeback_caught_up": written.caught_up, "log_writeback_table": where}


def _sink_records(
    context: dg.AssetExecutionContext,
    job: SinkJob,
    sync_db: StateDatabase,
    userflow: UserflowResource,
    state: SyncState,
    *,
    rejected: int,
) -> dict[str, Any]:
    started = time.monotonic()
    run_id = context.run.run_id
    unverified = _plan(context, job, sync_db, userflow)
    with sync_db.held():
        with sync_db.get_connection() as con:
            summary = summarize_plan(con, job.object_type, plan=job.plan_table)
            preview = plan_preview(con, job.object_type, plan=job.plan_table)
        state.start_run(run_id, job.object_type)
    failpoints.reach("plan")
    plan_meta = plan_metadata(summary, preview)
    context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=plan_meta))
    context.log.info(f"Plan for {context.asset_key.to_user_string()} (mode {job.mode}): {summary.counts}")
    base = {
        **plan_meta,
        "mode": job.mode,
        "full_resync": job.full_resync,
        **({"prune_memberships": job.prune} if job.object_type == "user" else {}),
        "rejected": rejected,
        "rejected_in": job.rejected_in,
        "skipped": summary.counts["skipped"],
        "update_mode_unverified": unverified,
        "dry_run": job.dry_run,
    }
    if job.dry_run:
        return {**mark_dry_run(context), **base}

    counters_before = userflow.metadata()  # the run's counters are shared by every sink
    outcome = asyncio.run(_apply(userflow, sync_db, job, run_id, summary.to_send))
    client_counters = counters_since(counters_before, userflow.metadata())
    counts = {**outcome.confirmed, "failed": outcome.failed, "skipped": summary.counts["skipped"], "rejected": rejected}
    with sync_db.held():
        cursor = state.advance_cursor(job.object_type, run_id) if job.regular else None
        in_sync, _ = state.record_counts(job.object_type)
        state.finish_run(run_id, job.object_type, "success", json.dumps(counts))
        failures = failures_metadata(state, job.object_type)
        log = sync_log_metadata(state, sync_db)
    # With the file let go: the write-back may wait on the warehouse.
    writeback = log_writeback_metadata(state, sync_db, run_id, job.object_type)
    elapsed = time.monotonic() - started
    sent = sum(outcome.confirmed.values()) + outcome.failed
    return {
        **base,
        "created": outcome.confirmed["create"],
        "updated": outcome.confirmed["update"] + outcome.confirmed["retry"],
        "unchanged": summary.counts.get("unchanged", 0),
        "migrated": outcome.migrations,
        "deleted": outcome.confirmed["delete"],
        "memberships_removed": outcome.memberships_removed,
        "failed": outcome.failed,
        "in_sync_now": in_sync,
        **failures,
        **log,
        **writeback,
        **({"cursor": cursor.isoformat() if cursor else "none"} if job.regular else {}),
        "duration_s": round(elapsed, 3),
        "records_per_s": round(sent / elapsed, 2) if elapsed else 0.0,
        **client_counters,
    }


async def _existing(userflow: UserflowResource, object_type: str, candidates: list[str], known: int) -> set[str]:
    async with userflow.get_client() as client:
        return await existing_ids(client, object_type, candidates, known)


async def _apply(
    userflow: UserflowResource, sync_db: StateDatabase, job: SinkJob, run_id: str, total: int
) -> ApplyOutcome:
    state = sync_db.state()
    async with userflow.get_client() as client:
        with remembered_rate_limits(client, state):
            return await apply_plan(
                client,
                state,
                sync_db.get_connection,
                job.object_type,
                job.spec,
                run_id,
                prune=job.prune,
                total=total,
                batch_size=job.batch_size,
                plan=job.plan_table,
            )
