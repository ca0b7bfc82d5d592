"""Sink assets: `userflow_groups` and `userflow_users`, the plan applied to Userflow."""

import asyncio
import enum
import json

import dagster as dg

from userflow_assets.client import UserflowResource
from userflow_assets.plan.planner import plan_table
from userflow_assets.settings import API_POOL, SHIPPED, Names
from userflow_assets.sink.run import SinkJob, sink_records
from userflow_assets.spec import ObjectSpec
from userflow_assets.state.resources import StateDatabase
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


def build_sink_defs(
    object_type: str,
    spec: ObjectSpec,
    upstream: list[dg.AssetKey],
    freshness: dg.FreshnessPolicy | None = None,
    *,
    names: Names = SHIPPED,
    pool: str = API_POOL,
) -> dg.Definitions:
    """`userflow_<object>s` and its checks; its steps that call Userflow are in `pool`."""
    name = f"userflow_{object_type}s"
    records = names.key(f"userflow_{object_type}_records")

    @dg.asset(
        name=name,
        key_prefix=names.key_prefix,
        deps=[records, *upstream],
        group_name=names("userflow"),
        kinds={"userflow"},
        pool=pool,
        required_resource_keys=names.resource_keys("sync_db", "userflow"),
        freshness_policy=freshness,  # from the schedule, when it is on: the UI flags a sync fallen behind
        description=f"{object_type.capitalize()}s written to Userflow: only what changed since Userflow last "
        "confirmed it, checkpointed in the sync state after each batch.",
    )
    def _sink(context: dg.AssetExecutionContext, config: SinkConfig) -> dg.MaterializeResult:
        sync_db: StateDatabase = names.resource(context, "sync_db")
        userflow: UserflowResource = names.resource(context, "userflow")
        job = SinkJob(
            object_type=object_type,
            spec=spec,
            records_table=records_table(object_type),
            plan_table=plan_table(object_type),
            staging_table=f"staging.warehouse_{object_type}s",
            mode=config.mode.value if config.mode else spec.mode,
            prune=spec.prune_memberships if config.prune_memberships is None else config.prune_memberships,
            full_resync=config.full_resync,
            dry_run=config.dry_run,
            batch_size=config.batch_size,
            rejected_in=f"{records.to_user_string()} ({rejected_table(object_type)})",
        )
        with sync_db.get_connection() as con:
            (rejected,) = con.execute(f"SELECT count(*) FROM {rejected_table(object_type)}").fetchone()
        return dg.MaterializeResult(metadata=sink_records(context, job, sync_db, userflow, rejected=rejected))

    @dg.asset_check(
        asset=_sink,
        name="failed_share",
        required_resource_keys=names.resource_keys("sync_db"),
        description=f"The share of {object_type}s waiting to be retried (Userflow did not confirm them) stays "
        f"within {object_type}s.max_rejected_fraction; the next run retries them either way.",
    )
    def _failed_share(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sync_db: StateDatabase = names.resource(context, "sync_db")
        with sync_db.held():
            synced, failed = sync_db.ready_state().record_counts(object_type)
        known = synced + failed
        share = failed / known if known else 0.0
        limit = spec.max_rejected_fraction
        return dg.AssetCheckResult(
            passed=share <= limit,
            description=f"{failed} of {known} {object_type}s wait to be retried ({share:.2%}; {synced} synced); "
            f"the limit is {limit:.2%} ({object_type}s.max_rejected_fraction)",
            metadata={
                "failed": failed,
                "synced": synced,
                "failed_share": dg.MetadataValue.float(share),
                "limit": dg.MetadataValue.float(limit),
            },
        )

    @dg.asset_check(  # it calls Userflow too: in the pool
        asset=_sink,
        name="read_back",
        pool=pool,
        required_resource_keys=names.resource_keys("sync_db", "userflow"),
        description=f"Reads back 1% of the {object_type}s this run wrote (1 to {READ_BACK_MAX}) and compares "
        "every attribute with what the sync state says Userflow confirmed.",
    )
    def _read_back(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sync_db: StateDatabase = names.resource(context, "sync_db")
        userflow: UserflowResource = names.resource(context, "userflow")
        # A sample of what this run wrote, 1% of it (1 to 20): a run that wrote nothing reads
        # nothing back, and a small change costs one read, not twenty.
        with sync_db.held():
            sample = sync_db.ready_state().written_sample(object_type, context.run.run_id, READ_BACK_SHARE, READ_BACK_MAX)
        mismatches = asyncio.run(_compare(userflow, object_type, sample))
        return dg.AssetCheckResult(
            passed=not mismatches,
            description=f"{len(sample)} {object_type}s read back; {len(mismatches)} differ from the sync state",
            metadata={"sampled": len(sample), "mismatches": dg.MetadataValue.md("\n".join(mismatches) or "none")},
        )

    return dg.Definitions(assets=[_sink], asset_checks=[_failed_share, _read_back])


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
