"""Sink assets: `userflow_groups` and `userflow_users`, the plan applied to Userflow."""

import asyncio
import enum
import json
import time
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from userflow_assets import failpoints
from userflow_assets.client import UserflowResource
from userflow_assets.plan.planner import PlanSummary, build_plan, plan_deletes, plan_preview, summarize_plan
from userflow_assets.sink.apply import (
    apply_plan,
    existing_ids,
    mark_skipped,
    remembered_rate_limits,
    update_mode_candidates,
)
from userflow_assets.settings import API_POOL
from userflow_assets.spec import ObjectSpec
from userflow_assets.state import store
from userflow_assets.transform.assets import records_table, rejected_table
from userflow_assets.values import same_value

READ_BACK_SHARE = 100  # one record read back per this many written ...
READ_BACK_MAX = 20  # ... and at most this many: the reads spend the same rate budget


class SyncMode(enum.Enum):
    upsert = "upsert"
    update = "update"


class SinkConfig(dg.Config):
    dry_run: bool = False
    """Work out and show the plan, send nothing."""
    full_resync: bool = False
    """Send every record, ignoring what the sync state says Userflow already has."""
    mode: SyncMode | None = None
    """Override the spec's mode for this run: upsert creates and updates, update never creates."""
    prune_memberships: bool | None = None
    """Override the spec's prune_memberships for this run (users only)."""
    batch_size: int = 500
    """Records per state checkpoint."""


def _plan_metadata(summary: PlanSummary, preview: str) -> dict[str, Any]:
    return {
        **{f"plan_{action}": n for action, n in summary.counts.items()},
        "plan_migrations": summary.migrations,
        "plan_preview": dg.MetadataValue.md(preview),
    }


def _plan_deletes_or_stop(con: duckdb.DuckDBPyConnection, object_type: str, spec: ObjectSpec) -> int:
    """Plan deletes after a full read, or stop the run before any request when a guard trips."""
    staged, full_read = con.execute(
        f"SELECT (SELECT count(*) FROM staging.warehouse_{object_type}s), "
        "(SELECT since IS NULL FROM sync.reads WHERE object_type = ?)",
        [object_type],
    ).fetchone()
    if not full_read:
        return 0  # only a full read can tell that a record left the query's result
    synced = con.execute("SELECT count(*) FROM sync.records WHERE object_type = ?", [object_type]).fetchone()[0]
    if staged == 0 and synced:
        raise dg.Failure(
            description=f"The {object_type}s query returned no rows while {synced} {object_type}s are synced; "
            f"with deletes on this would delete them all, so the run stopped before any request.",
            metadata={"synced": synced, "staged_rows": 0},
        )
    id_columns = [spec.id_column, *([spec.fallback_id_column] if spec.fallback_id_column else [])]
    deleting = plan_deletes(con, object_type, f"staging.warehouse_{object_type}s", id_columns)
    share = deleting / synced if synced else 0.0
    if share > spec.max_delete_fraction:
        raise dg.Failure(
            description=f"{deleting} of {synced} synced {object_type}s ({share:.1%}) left the query's result, "
            f"more than max_delete_fraction ({spec.max_delete_fraction:.1%}); the run stopped before any "
            "request. Check the query; raise the limit in the spec if the deletes are intended.",
            metadata={"deleting": deleting, "synced": synced, "max_delete_fraction": spec.max_delete_fraction},
        )
    return deleting


def build_sink_defs(object_type: str, spec: ObjectSpec, upstream: list[str]) -> dg.Definitions:
    name = f"userflow_{object_type}s"

    @dg.asset(
        name=name,
        deps=[f"userflow_{object_type}_records", *upstream],
        group_name="userflow",
        kinds={"userflow"},
        pool=API_POOL,
        description=f"{object_type.capitalize()}s written to Userflow: only what changed since Userflow last "
        "confirmed it, checkpointed in the sync state after each batch.",
    )
    def _sink(
        context: dg.AssetExecutionContext, config: SinkConfig, sync_db: DuckDBResource, userflow: UserflowResource
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        mode = config.mode.value if config.mode else spec.mode
        prune = spec.prune_memberships if config.prune_memberships is None else config.prune_memberships
        with sync_db.get_connection() as con:
            store.ensure_schema(con)
            build_plan(con, object_type, records_table(object_type), config.full_resync)
            rejected = con.execute(f"SELECT count(*) FROM {rejected_table(object_type)}").fetchone()[0]
            if spec.deletes == "delete":
                deleting = _plan_deletes_or_stop(con, object_type, spec)
                context.log.info(f"{deleting} {object_type}s left the query's result and will be deleted")
            candidates, known = update_mode_candidates(con, object_type) if mode == "update" else ([], 0)

        if candidates and not config.dry_run:
            found = asyncio.run(_existing(userflow, object_type, candidates, known))
            with sync_db.get_connection() as con:
                mark_skipped(con, object_type, candidates, found)
        with sync_db.get_connection() as con:
            summary = summarize_plan(con, object_type)
            plan_md = plan_preview(con, object_type)
            store.start_run(con, context.run.run_id, object_type)
        failpoints.reach("plan")
        plan_meta = _plan_metadata(summary, plan_md)
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=plan_meta))
        context.log.info(f"Plan for {name} (mode {mode}): {summary.counts}")
        # A dry run in update mode does not ask Userflow which records exist: at most these are skipped.
        unverified = len(candidates) if config.dry_run else 0
        base = {
            **plan_meta,
            "mode": mode,
            "rejected": rejected,
            "skipped": summary.counts["skipped"],
            "update_mode_unverified": unverified,
            "dry_run": config.dry_run,
        }
        if config.dry_run:
            return dg.MaterializeResult(metadata=base)

        counters_before = userflow.metadata()  # the run's counters are shared by both sinks
        outcome = asyncio.run(
            _apply(userflow, sync_db, object_type, spec, context.run.run_id, prune, summary.to_send, config.batch_size)
        )
        client_counters = {k: v - counters_before.get(k, 0) for k, v in userflow.metadata().items()}
        with sync_db.get_connection() as con:
            cursor = store.advance_cursor(con, object_type, context.run.run_id)
            counts = {
                **outcome.confirmed,
                "failed": outcome.failed,
                "skipped": summary.counts["skipped"],
                "rejected": rejected,
            }
            store.finish_run(con, context.run.run_id, object_type, "success", json.dumps(counts))
        elapsed = time.monotonic() - started
        sent = sum(outcome.confirmed.values()) + outcome.failed
        return dg.MaterializeResult(
            metadata={
                **base,
                "created": outcome.confirmed["create"],
                "updated": outcome.confirmed["update"] + outcome.confirmed["retry"],
                "unchanged": summary.counts.get("unchanged", 0),
                "migrated": outcome.migrations,
                "deleted": outcome.confirmed["delete"],
                "memberships_removed": outcome.memberships_removed,
                "failed": outcome.failed,
                "failure_examples": dg.MetadataValue.md(
                    "\n".join(f"- {e}" for e in outcome.failure_examples) or "none"
                ),
                "cursor": cursor.isoformat() if cursor else "none",
                "duration_s": round(elapsed, 3),
                "records_per_s": round(sent / elapsed, 2) if elapsed else 0.0,
                **client_counters,
            }
        )

    @dg.asset_check(asset=_sink, name="failed_share")
    def _failed_share(sync_db: DuckDBResource) -> dg.AssetCheckResult:
        with sync_db.get_connection() as con:
            store.ensure_schema(con)
            synced, failed = con.execute(
                """
                SELECT (SELECT count(*) FROM sync.records WHERE object_type = $t),
                       (SELECT count(*) FROM sync.failures WHERE object_type = $t)
                """,
                {"t": object_type},
            ).fetchone()
        share = failed / (synced + failed) if synced + failed else 0.0
        return dg.AssetCheckResult(
            passed=share <= spec.max_rejected_fraction,
            description=f"{failed} {object_type}s wait to be retried, {synced} are synced ({share:.2%})",
            metadata={"failed": failed, "synced": synced, "failed_share": share},
        )

    @dg.asset_check(asset=_sink, name="read_back", pool=API_POOL)  # it calls Userflow too
    def _read_back(
        context: dg.AssetCheckExecutionContext, sync_db: DuckDBResource, userflow: UserflowResource
    ) -> dg.AssetCheckResult:
        # A sample of what this run wrote, 1% of it (1 to 20): a run that wrote nothing reads
        # nothing back, and a small change costs one read, not twenty.
        with sync_db.get_connection() as con:
            store.ensure_schema(con)
            sample = con.execute(
                "SELECT id, attributes FROM sync.records WHERE object_type = $type AND run_id = $run "
                "ORDER BY hash(id) LIMIT least($max, ceil((SELECT count(*) FROM sync.records "
                "WHERE object_type = $type AND run_id = $run) / $share))",
                {"type": object_type, "run": context.run.run_id, "max": READ_BACK_MAX, "share": READ_BACK_SHARE},
            ).fetchall()
        mismatches = asyncio.run(_compare(userflow, object_type, sample))
        return dg.AssetCheckResult(
            passed=not mismatches,
            description=f"{len(sample)} {object_type}s read back; {len(mismatches)} differ from the sync state",
            metadata={"sampled": len(sample), "mismatches": dg.MetadataValue.md("\n".join(mismatches) or "none")},
        )

    return dg.Definitions(assets=[_sink], asset_checks=[_failed_share, _read_back])


async def _existing(userflow: UserflowResource, object_type: str, candidates: list[str], known: int) -> set[str]:
    async with userflow.get_client() as client:
        return await existing_ids(client, object_type, candidates, known)


async def _apply(
    userflow: UserflowResource,
    sync_db: DuckDBResource,
    object_type: str,
    spec: ObjectSpec,
    run_id: str,
    prune: bool,
    total: int,
    batch_size: int,
):
    async with userflow.get_client() as client:
        with remembered_rate_limits(client, sync_db.get_connection):
            return await apply_plan(
                client, sync_db.get_connection, object_type, spec, run_id, prune=prune, total=total, batch_size=batch_size
            )


async def _compare(userflow: UserflowResource, object_type: str, sample: list[tuple[str, str]]) -> list[str]:
    """Each sampled record's set attributes must read back as the same value from Userflow."""
    mismatches: list[str] = []
    async with userflow.get_client() as client:
        get = client.get_user if object_type == "user" else client.get_group
        async for result in client.bulk(sample, lambda item: get(item[0]), label=f"{object_type} reads"):
            record_id, attributes = result.item
            if not result.ok:  # a missing record is a finding, not a crash of the check
                mismatches.append(f"- {record_id}: {result.error}")
                continue
            held = (result.value or {}).get("attributes") or {}
            differing = [k for k, v in json.loads(attributes).items() if v is not None and not same_value(v, held.get(k))]
            if differing:
                mismatches.append(f"- {record_id}: {', '.join(sorted(differing))}")
    return sorted(mismatches)
