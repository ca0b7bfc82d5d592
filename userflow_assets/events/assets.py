"""Event assets: `warehouse_events`, `userflow_event_records` and the `userflow_events` sink."""

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from userflow_assets.client import EventDelivery, UserflowError, UserflowResource
from userflow_assets.client.stats import counters_since
from userflow_assets.events import plan as event_plan
from userflow_assets.events.apply import EventsOutcome, apply_events
from userflow_assets.events.names import NamedIn, NearDuplicate, near_duplicates
from userflow_assets.events.transform import build_event_records
from userflow_assets.settings import API_POOL, SHIPPED, Names
from userflow_assets.sink.apply import remembered_rate_limits
from userflow_assets.sink.engine import SyncAborted
from userflow_assets.sink.run import (
    log_writeback_metadata,
    mark_dry_run,
    sync_log_metadata,
)
from userflow_assets.spec import EventsSpec, ObjectSpec
from userflow_assets.state.resources import StateDatabase
from userflow_assets.state.store import SyncState
from userflow_assets.state.types import Pending
from userflow_assets.transform.assets import (
    records_metadata,
    rejected_preview,
    rejected_share,
)
from userflow_assets.warehouse.assets import build_warehouse_asset

OBJECT_TYPE = "event"
RECORDS_ASSET = "userflow_event_records"
SINK_ASSET = "userflow_events"
SHOWN_PAIRS = 20


class EventsSinkConfig(dg.Config):
    dry_run: bool = False
    """Work out and show the plan, send nothing."""
    batch_size: int = 500
    """Events per state checkpoint."""


def build_records_asset(spec: EventsSpec, names: Names) -> dg.AssetsDefinition:
    @dg.asset(
        name=RECORDS_ASSET,
        key_prefix=names.key_prefix,
        deps=[names.key("warehouse_events")],
        group_name=names("transform"),
        required_resource_keys=names.resource_keys("sync_db"),
        kinds={"duckdb"},
        description="The events to send: the events spec's filter and mapping applied in DuckDB; bad rows are "
        f"in {event_plan.REJECTED_TABLE} with their reason.",
    )
    def _records(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        sync_db: DuckDBResource = names.resource(context, "sync_db")
        with sync_db.get_connection() as con:
            result = build_event_records(
                con, spec, "staging.warehouse_events", event_plan.RECORDS_TABLE, event_plan.REJECTED_TABLE
            )
            preview = rejected_preview(con, event_plan.REJECTED_TABLE)
        context.log.info(
            f"{result.records} event records, {result.rejected} rejected, "
            f"{result.filtered_out} filtered out of {result.source_rows} rows"
        )
        return dg.MaterializeResult(metadata=records_metadata(result, preview, event_plan.REJECTED_TABLE))

    return _records


def build_rejected_share_check(spec: EventsSpec, names: Names) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=names.key(RECORDS_ASSET),
        name="rejected_share",
        blocking=True,
        required_resource_keys=names.resource_keys("sync_db"),
        description="The share of event rows rejected stays within events.max_rejected_fraction "
        "(blocking: above it no event is sent).",
    )
    def _rejected_share(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sync_db: DuckDBResource = names.resource(context, "sync_db")
        with sync_db.get_connection() as con:
            verdict = rejected_share(
                con, event_plan.RECORDS_TABLE, event_plan.REJECTED_TABLE, spec.max_rejected_fraction
            )
        return verdict.check_result("events", "events.max_rejected_fraction")

    return _rejected_share


async def _definitions(userflow: UserflowResource) -> tuple[list[str], list[str]]:
    """Userflow's event names and user attribute names."""
    async with userflow.get_client() as client:
        events = [d["name"] async for d in client.list_event_definitions() if d.get("name")]
        attributes = [d["name"] async for d in client.list_attribute_definitions(scope="user") if d.get("name")]
    return events, attributes


def name_pairs(
    event_names: list[str],
    defined_events: list[str],
    users_spec: ObjectSpec | None,
    defined_attributes: list[str],
    event_attributes: list[str],
) -> list[NearDuplicate]:
    """Near-duplicate pairs among our names and between ours and Userflow's definitions."""
    pairs = near_duplicates(
        "event",
        [NamedIn(n, "warehouse") for n in event_names],
        [NamedIn(n, "Userflow event definition") for n in defined_events],
    )
    if users_spec is not None:
        mapped = [*users_spec.mapping, *(users_spec.transform.outputs if users_spec.transform else [])]
        pairs += near_duplicates(
            "user attribute",
            [NamedIn(n, "users mapping") for n in mapped],
            [NamedIn(n, "Userflow attribute definition") for n in defined_attributes],
        )
    pairs += near_duplicates("event attribute", [NamedIn(n, "events.attributes") for n in event_attributes], [])
    return pairs


def _stored_definitions(state: SyncState) -> tuple[list[str], list[str]] | None:
    rows = state.definitions()
    if not rows:
        return None
    return [n for k, n in rows if k == "event" and n], [n for k, n in rows if k == "user_attribute" and n]


def _store_definitions(state: SyncState, events: list[str], attributes: list[str]) -> None:
    rows = [("event", n) for n in events] + [("user_attribute", n) for n in attributes]
    # A marker row keeps "read, and empty" apart from "never read".
    state.save_definitions(rows or [("read", "")])


def build_event_names_check(
    spec: EventsSpec, users_spec: ObjectSpec | None, names: Names, pool: str
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=names.key(RECORDS_ASSET),
        name="event_names",
        blocking=False,
        pool=pool,
        required_resource_keys=names.resource_keys("sync_db", "userflow"),
        description="Warns on event and attribute names that differ only in case or separators "
        "(Userflow treats them as different names, so targeting silently misses one).",
    )
    def _event_names(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sync_db: StateDatabase = names.resource(context, "sync_db")
        userflow: UserflowResource = names.resource(context, "userflow")
        state = sync_db.ready_state()
        with sync_db.get_connection() as con:
            read = [r[0] for r in con.execute(f"SELECT DISTINCT name FROM {event_plan.RECORDS_TABLE}").fetchall()]
            new_events = con.execute(f"SELECT count(*) FROM {event_plan.RECORDS_TABLE}").fetchone()[0]
        # Names sent by earlier runs count too: an incremental read holds only the newest events.
        sent_names = list(dict.fromkeys([*read, *state.sent_event_names()]))
        stored = _stored_definitions(state)
        unavailable = ""
        if new_events or stored is None:
            try:
                defined_events, defined_attributes = asyncio.run(_definitions(userflow))
                _store_definitions(state, defined_events, defined_attributes)
            except UserflowError as error:  # still compare our own names with each other
                defined_events, defined_attributes = stored or ([], [])
                unavailable = f"; Userflow's definitions unreadable: {error}"
        else:
            # Nothing new to send: the definitions read last time are still the ones to compare
            # with, and an unchanged sync sends no request at all.
            defined_events, defined_attributes = stored
        pairs = name_pairs(sent_names, defined_events, users_spec, defined_attributes, list(spec.attributes))
        listed = [p.describe() for p in pairs]
        shown = "; ".join(listed[:SHOWN_PAIRS]) + ("; …" if len(listed) > SHOWN_PAIRS else "")
        head = f"{len(pairs)} near-duplicate name pair{'' if len(pairs) == 1 else 's'}" + (f": {shown}" if pairs else "")
        return dg.AssetCheckResult(
            passed=not pairs,
            severity=dg.AssetCheckSeverity.WARN,
            description=head + unavailable,
            metadata={
                "near_duplicates": len(pairs),
                "pairs": dg.MetadataValue.md("\n".join(f"- {line}" for line in listed) or "none"),
                "event_names": len(sent_names),
                "userflow_event_definitions": len(defined_events),
                "userflow_user_attribute_definitions": len(defined_attributes),
            },
        )

    return _event_names


def _outcome_metadata(outcome: EventsOutcome, client_counters: dict[str, float]) -> dict[str, Any]:
    return {
        "sent": outcome.sent,
        "failed": outcome.failed,
        # At least once: retried after no answer (the client's own retry, or the next run's).
        "possible_duplicates": int(client_counters.get("userflow_possible_duplicates", 0)) + outcome.ambiguous_resend,
        "possible_losses": outcome.possible_losses,
        "requests": int(client_counters.get("userflow_requests", 0)),
        "failure_examples": dg.MetadataValue.md("\n".join(f"- {e}" for e in outcome.failure_examples) or "none"),
    }


def build_sink_asset(spec: EventsSpec, users_spec: ObjectSpec | None, names: Names, pool: str) -> dg.AssetsDefinition:
    delivery = EventDelivery(spec.delivery)
    upstream = [names.key("userflow_users")] if users_spec is not None else []

    @dg.asset(
        name=SINK_ASSET,
        key_prefix=names.key_prefix,
        deps=[names.key(RECORDS_ASSET), *upstream],
        group_name=names("userflow"),
        kinds={"userflow"},
        pool=pool,
        required_resource_keys=names.resource_keys("sync_db", "userflow"),
        description="Events sent to Userflow, each once: its key is recorded after Userflow confirmed it. "
        f"Delivery when no answer comes: {spec.delivery}.",
    )
    def _sink(context: dg.AssetExecutionContext, config: EventsSinkConfig) -> dg.MaterializeResult:
        sync_db: StateDatabase = names.resource(context, "sync_db")
        userflow: UserflowResource = names.resource(context, "userflow")
        started = time.monotonic()
        run_id = context.run.run_id
        state = sync_db.ready_state()
        with state.exclusive(OBJECT_TYPE, f"run {run_id}"):
            return _send(context, config, sync_db, userflow, state, started)

    def _send(
        context: dg.AssetExecutionContext,
        config: EventsSinkConfig,
        sync_db: StateDatabase,
        userflow: UserflowResource,
        state: SyncState,
        started: float,
    ) -> dg.MaterializeResult:
        run_id = context.run.run_id
        with sync_db.held(), sync_db.get_connection() as con:
            event_plan.build_plan(
                con, state, delivery is EventDelivery.AT_LEAST_ONCE, users_spec is not None, spec.unknown_users == "wait"
            )
            summary = event_plan.summarize(con)
            preview = event_plan.preview(con)
            (rejected,) = con.execute(f"SELECT count(*) FROM {event_plan.REJECTED_TABLE}").fetchone()
            waiting = event_plan.waiting_events(con)
        plan_meta = {
            **{f"plan_{action}": n for action, n in summary.counts.items()},
            "plan_preview": dg.MetadataValue.md(preview),
        }
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=plan_meta))
        context.log.info(f"Plan for {SINK_ASSET} ({spec.delivery}): {summary.counts}, {summary.already_sent} already sent")
        base = {
            **plan_meta,
            "delivery": spec.delivery,
            "already_sent": summary.already_sent,
            "waiting": summary.counts["waiting"],
            "rejected": int(rejected),
            "dry_run": config.dry_run,
        }
        if config.dry_run:
            return dg.MaterializeResult(metadata={**mark_dry_run(context), **base})

        with sync_db.held():
            state.start_run(run_id, OBJECT_TYPE)
            # Held events are kept in the state, so they go out once their user is synced even
            # if their warehouse rows are never read again.
            state.checkpoint_events(run_id, [], [Pending(e, hold) for e, hold in waiting])
        counters_before = userflow.metadata()
        try:
            outcome = asyncio.run(_apply(userflow, sync_db, run_id, delivery, summary.to_send, config.batch_size))
        except SyncAborted:
            state.finish_run(run_id, OBJECT_TYPE, "stopped", json.dumps({}))
            raise
        client_counters = counters_since(counters_before, userflow.metadata())
        result = _outcome_metadata(outcome, client_counters)
        # Every staged event is settled now: sent, recorded as owed, held, or rejected.
        counts = {k: v for k, v in result.items() if isinstance(v, int)}
        with sync_db.held():
            cursor = state.advance_cursor(OBJECT_TYPE, run_id)
            state.finish_run(run_id, OBJECT_TYPE, "success", json.dumps(counts))
            log = sync_log_metadata(state, sync_db)
        # With the file let go: the write-back may wait on the warehouse.
        writeback = log_writeback_metadata(state, sync_db, run_id, OBJECT_TYPE)
        return dg.MaterializeResult(
            metadata={
                **base,
                **result,
                "cursor": cursor.isoformat() if cursor else "none",
                **log,
                **writeback,
                "duration_s": round(time.monotonic() - started, 3),
            }
        )

    return _sink


async def _apply(
    userflow: UserflowResource, sync_db: StateDatabase, run_id: str, delivery: EventDelivery, total: int, batch_size: int
) -> EventsOutcome:
    state = sync_db.state()
    async with userflow.get_client() as client:
        with remembered_rate_limits(client, state):
            return await apply_events(
                client, state, sync_db.get_connection, run_id, delivery=delivery, total=total, batch_size=batch_size
            )


def build_events_defs(
    spec: EventsSpec,
    *,
    users_spec: ObjectSpec | None,
    late_arrival: timedelta,
    names: Names = SHIPPED,
    pool: str = API_POOL,
    warehouse_kind: str = "duckdb",
) -> dg.Definitions:
    """`warehouse_events` -> `userflow_event_records` (checks `rejected_share`, `event_names`) ->
    `userflow_events`, which runs after `userflow_users` when users are synced; named and pooled
    as the sync they belong to."""
    warehouse_asset = build_warehouse_asset(
        OBJECT_TYPE, spec.query, late_arrival, spec.model_dump_json(), f"Events as {spec.query} returns them.", names, warehouse_kind
    )
    return dg.Definitions(
        assets=[warehouse_asset, build_records_asset(spec, names), build_sink_asset(spec, users_spec, names, pool)],
        asset_checks=[
            build_rejected_share_check(spec, names),
            build_event_names_check(spec, users_spec, names, pool),
        ],
    )
