"""Applying a plan of users or groups: the records' kind of the one send loop (`engine`).

A record is remembered as synced only after Userflow confirmed that exact payload (2xx);
anything else is kept as a failure with its error and retried by the next run.
"""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from userflow_assets.client import BulkResult, UserflowClient
from userflow_assets.client.client import PAGE_SIZE
from userflow_assets.plan.planner import PlannedRecord, plan_table, planned_batches
from userflow_assets.sink.engine import Kind, SyncAborted, log_entries, send_all
from userflow_assets.sink.requests import (
    removed_groups,
    request_attributes,
    user_groups_fields,
)
from userflow_assets.spec import ObjectSpec
from userflow_assets.state.store import ConnectionFactory, SyncState
from userflow_assets.state.types import Failure, Link

# Update mode: below this many unknown IDs, one GET each is cheaper than listing everything.
MAX_LOOKUPS = 200

@dataclass
class ApplyOutcome:
    confirmed: dict[str, int] = field(
        default_factory=lambda: {"create": 0, "update": 0, "retry": 0, "migrate": 0, "delete": 0}
    )
    memberships_removed: int = 0
    failed: int = 0
    migrations: int = 0


def _sender(
    client: UserflowClient, object_type: str, spec: ObjectSpec, prune: bool, outcome: ApplyOutcome
) -> Callable[[PlannedRecord], Awaitable[None]]:
    delete = client.delete_user if object_type == "user" else client.delete_group
    # Without pruning, a membership that left the warehouse needs a request of its own.
    remove_left = object_type == "user" and spec.remove_memberships and not prune and spec.memberships is not None

    async def send(planned: PlannedRecord) -> None:
        record = planned.record
        if planned.action == "delete":
            await delete(record.id)
            return
        if planned.action != "migrate":
            attributes = request_attributes(record.attributes, planned.previous_attributes, spec.nulls)
            if object_type == "user":
                await client.upsert_user(record.id, attributes, **user_groups_fields(record.memberships, spec, prune))
            else:
                await client.upsert_group(record.id, attributes)
            if remove_left:
                for group_id in removed_groups(planned.previous_memberships, record.memberships):
                    await client.remove_membership(record.id, group_id)
                    outcome.memberships_removed += 1
        if planned.migrate_from and spec.on_primary_id == "migrate":
            await delete(planned.migrate_from)

    return send


def _settler(
    state: SyncState, object_type: str, spec: ObjectSpec, run_id: str
) -> Callable[[list[BulkResult[PlannedRecord, None]]], None]:
    def settle(results: list[BulkResult[PlannedRecord, None]]) -> None:
        upserts = [r for r in results if r.item.action != "delete"]
        # A delete that failed is planned again by the next full read; it has no payload to keep.
        deleted = [r.item.record.id for r in results if r.ok and r.item.action == "delete"]
        failed = [
            Failure(r.item.record, getattr(r.error, "status", None), getattr(r.error, "code", None), str(r.error))
            for r in upserts
            if not r.ok
        ]
        migrated = [r.item for r in upserts if r.ok and r.item.migrate_from]
        forget = [p.migrate_from for p in migrated if spec.on_primary_id == "migrate"] + deleted
        links = [Link(p.migrate_from, p.record.id, spec.on_primary_id) for p in migrated]
        confirmed = [r.item.record for r in upserts if r.ok]
        log = log_entries(results, run_id, object_type, lambda p: (p.record.id, p.action))
        state.checkpoint(object_type, run_id, confirmed, failed, forget=forget, links=links, log=log)

    return settle


@contextmanager
def remembered_rate_limits(client: UserflowClient, state: SyncState) -> Iterator[None]:
    """Start from the rate limits the last run learned; keep what this one learned for the next."""
    limits = state.remembered_limits(client.limits_target)
    if limits is not None:
        client.limiter.resume(limits)
    try:
        yield
    finally:
        learned = client.limiter.learned()
        if learned is not None:
            state.remember_limits(client.limits_target, learned)


async def apply_plan(
    client: UserflowClient,
    state: SyncState,
    con_factory: ConnectionFactory,
    object_type: str,
    spec: ObjectSpec,
    run_id: str,
    *,
    prune: bool,
    total: int,
    batch_size: int = 500,
    plan: str | None = None,
) -> ApplyOutcome:
    """Send the plan (`plan.<object>_plan`, or the table named by `plan`) and settle each batch."""
    outcome = ApplyOutcome()

    def count(result: BulkResult[PlannedRecord, None]) -> None:
        if result.ok:
            outcome.confirmed[result.item.action] += 1
            outcome.migrations += bool(result.item.migrate_from)

    kind = Kind(
        label=f"{object_type}s",
        noun="requests",
        send=_sender(client, object_type, spec, prune, outcome),
        settle=_settler(state, object_type, spec, run_id),
    )
    batches = planned_batches(con_factory, object_type, batch_size, plan=plan)
    tally = await send_all(client, kind, batches, total=total, batch_size=batch_size, on_result=count)
    outcome.failed = tally.failed
    return outcome


async def existing_ids(client: UserflowClient, object_type: str, candidates: list[str], known: int) -> set[str]:
    """Which of `candidates` exist in Userflow: one GET each when they are few, else one listing
    (100 per page) when that costs fewer requests than the GETs would.

    The estimate takes Userflow to hold about what the state knows; a workspace holding far
    more (a fresh state over a long-used workspace) would make a listing cost without bound.
    So a listing stops once it has read as many pages as there are candidates, or found them
    all, and the candidates it has not met are looked up one by one: at most twice the GETs.
    """
    estimated_pages = (known + len(candidates)) // 100 + 1
    if len(candidates) <= MAX_LOOKUPS or len(candidates) <= estimated_pages:
        return await _looked_up(client, object_type, candidates)
    wanted, found = set(candidates), set()
    budget = len(candidates) * PAGE_SIZE  # items: as many pages as there are candidates
    listing = client.list_users() if object_type == "user" else client.list_groups()
    async with aclosing(listing) as items:
        read = 0
        async for item in items:
            if item["id"] in wanted:
                found.add(item["id"])
            read += 1
            if len(found) == len(wanted):
                return found
            if read >= budget:
                break
        else:
            return found  # the whole listing: the rest do not exist
    return found | await _looked_up(client, object_type, [c for c in candidates if c not in found])


async def _looked_up(client: UserflowClient, object_type: str, ids: list[str]) -> set[str]:
    """The `ids` Userflow has, one GET each (404: it has not)."""
    get = client.get_user if object_type == "user" else client.get_group
    found: set[str] = set()
    async for result in client.bulk(ids, get, total=len(ids), label=f"{object_type} lookups"):
        if result.ok:
            found.add(result.item)
        elif getattr(result.error, "status", None) != 404:
            raise SyncAborted(f"could not tell whether {object_type} {result.item!r} exists: {result.error}")
    return found


def mark_skipped(
    con: duckdb.DuckDBPyConnection, object_type: str, candidates: list[str], existing: set[str], *, plan: str | None = None
) -> int:
    """Update mode never creates: records Userflow does not have are skipped."""
    missing = pd.DataFrame({"id": [c for c in candidates if c not in existing]}, dtype=object)
    con.register("_missing", missing)
    try:
        con.execute(
            f"UPDATE {plan or plan_table(object_type)} SET action = 'skipped' WHERE id IN (SELECT id FROM _missing)"
        )
    finally:
        con.unregister("_missing")
    return len(missing)


def update_mode_candidates(con: duckdb.DuckDBPyConnection, object_type: str, *, plan: str | None = None) -> list[str]:
    """IDs the plan would send that the state has never seen confirmed."""
    return [
        row[0]
        for row in con.execute(
            f"SELECT id FROM {plan or plan_table(object_type)} WHERE action IN ('create', 'retry') "
            "AND previous_attributes IS NULL"
        ).fetchall()
    ]
