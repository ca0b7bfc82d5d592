"""Applying a plan: every record to send through one client, state checkpointed per batch.

A record is remembered as synced only after Userflow confirmed that exact payload (2xx);
anything else is kept as a failure with its error and retried by the next run. A wrong or
forbidden key stops the whole run at once, since no other record can succeed either.
"""

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from userflow_assets import failpoints
from userflow_assets.client import (
    BulkResult,
    UserflowTransportError,
    UserflowAuthError,
    UserflowClient,
    UserflowError,
    UserflowForbiddenError,
)
from userflow_assets.plan.planner import (
    PlannedRecord,
    plan_table,
    planned_batches,
    request_attributes,
    user_groups_fields,
)
from userflow_assets.spec import ObjectSpec
from userflow_assets.state import store

ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

# So many failures in a row means the target is down, not that records are bad.
MAX_CONSECUTIVE_FAILURES = 200
# Update mode: below this many unknown IDs, one GET each is cheaper than listing everything.
MAX_LOOKUPS = 200


class SyncAborted(RuntimeError):
    """The run stopped before its plan was applied; what was confirmed is kept."""


@dataclass
class ApplyOutcome:
    confirmed: dict[str, int] = field(
        default_factory=lambda: {"create": 0, "update": 0, "retry": 0, "migrate": 0, "delete": 0}
    )
    memberships_removed: int = 0
    unreached: int = 0  # failures where no answer came back at all (connection refused, DNS, ...)
    failed: int = 0
    migrations: int = 0
    failure_examples: list[str] = field(default_factory=list)


async def _stream(
    con_factory: ConnectionFactory, object_type: str, batch_size: int, plan: str | None
) -> AsyncIterator[PlannedRecord]:
    for batch in planned_batches(con_factory, object_type, batch_size, plan=plan):
        for planned in batch:
            yield planned


def removed_groups(previous: str | None, current: str | None) -> list[str]:
    """Groups the user was confirmed in last time that the warehouse no longer lists."""
    if not previous:
        return []
    still = {item["id"] for item in json.loads(current or "[]")}
    return sorted(item["id"] for item in json.loads(previous) if item["id"] not in still)


def _sender(
    client: UserflowClient, object_type: str, spec: ObjectSpec, prune: bool, outcome: ApplyOutcome
) -> Callable[[PlannedRecord], Any]:
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


def _settle(
    con: duckdb.DuckDBPyConnection,
    object_type: str,
    spec: ObjectSpec,
    run_id: str,
    results: list[BulkResult[PlannedRecord, None]],
) -> None:
    upserts = [r for r in results if r.item.action != "delete"]
    confirmed = [r.item.record for r in upserts if r.ok]
    # A delete that failed is planned again by the next full read; it has no payload to keep.
    deleted = [r.item.record.id for r in results if r.ok and r.item.action == "delete"]
    failed = [
        store.Failure(
            r.item.record,
            status=getattr(r.error, "status", None),
            code=getattr(r.error, "code", None),
            message=str(r.error),
        )
        for r in upserts
        if not r.ok
    ]
    migrated = [r.item for r in upserts if r.ok and r.item.migrate_from]
    forget = [p.migrate_from for p in migrated if spec.on_primary_id == "migrate"] + deleted
    with store.transaction(con):
        store.checkpoint(con, object_type, run_id, confirmed, failed, forget=forget, in_transaction=True)
        for planned in migrated:
            store.record_link(con, object_type, planned.migrate_from, planned.record.id, spec.on_primary_id, run_id)


@contextmanager
def remembered_rate_limits(client: UserflowClient, con_factory: ConnectionFactory) -> Iterator[None]:
    """Start from the rate limits the last run learned; keep what this one learned for the next."""
    with con_factory() as con:
        store.ensure_schema(con)
        limits = store.remembered_limits(con, client.limits_target)
    if limits is not None:
        client.limiter.resume(limits)
    try:
        yield
    finally:
        learned = client.limiter.learned()
        if learned is not None:
            with con_factory() as con:
                store.remember_limits(con, client.limits_target, learned)


async def apply_plan(
    client: UserflowClient,
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
    pending: list[BulkResult[PlannedRecord, None]] = []
    consecutive_failures = 0
    stop: UserflowError | None = None
    results = client.bulk(
        _stream(con_factory, object_type, batch_size, plan),
        _sender(client, object_type, spec, prune, outcome),
        total=total,
        label=f"{object_type}s",
    )
    try:
        async for result in results:
            pending.append(result)
            if result.ok:
                consecutive_failures = 0
                outcome.confirmed[result.item.action] += 1
                outcome.migrations += bool(result.item.migrate_from)
            else:
                consecutive_failures += 1
                outcome.failed += 1
                outcome.unreached += isinstance(result.error, UserflowTransportError)
                if len(outcome.failure_examples) < 5:
                    outcome.failure_examples.append(str(result.error))
                if isinstance(result.error, UserflowAuthError | UserflowForbiddenError):
                    stop = result.error
                    break
                if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    raise SyncAborted(
                        f"{consecutive_failures} requests in a row failed, so Userflow looks unreachable; "
                        f"the last error: {result.error}"
                    )
            if len(pending) == batch_size // 2:
                failpoints.reach("mid_batch")
            if len(pending) >= batch_size:
                with con_factory() as con:
                    _settle(con, object_type, spec, run_id, pending)
                pending = []
                failpoints.reach("between_batches")
    finally:
        await results.aclose()  # type: ignore[attr-defined]
        # A stopped run still records what Userflow confirmed; an auth failure is not a record's fault.
        keep = [r for r in pending if r.ok or stop is None]
        if keep:
            with con_factory() as con:
                _settle(con, object_type, spec, run_id, keep)
    if stop is not None:
        raise SyncAborted(f"Userflow refused the API key ({stop}); the run stopped and nothing more was sent")
    if outcome.unreached and outcome.unreached == outcome.failed and not any(outcome.confirmed.values()):
        # Not one request got an answer: the target is down or misconfigured, not the records bad.
        raise SyncAborted(
            f"none of {outcome.failed} requests reached Userflow at {client.base_url} "
            f"(last error: {outcome.failure_examples[-1]}); every record is kept and retried by the next run"
        )
    return outcome


async def existing_ids(client: UserflowClient, object_type: str, candidates: list[str], known: int) -> set[str]:
    """Which of `candidates` exist in Userflow: one GET each when they are few, else one listing
    (100 per page) when that costs fewer requests than the GETs would."""
    estimated_pages = (known + len(candidates)) // 100 + 1
    if len(candidates) <= MAX_LOOKUPS or len(candidates) <= estimated_pages:
        get = client.get_user if object_type == "user" else client.get_group
        found: set[str] = set()
        async for result in client.bulk(candidates, get, total=len(candidates), label=f"{object_type} lookups"):
            if result.ok:
                found.add(result.item)
            elif getattr(result.error, "status", None) != 404:
                raise SyncAborted(f"could not tell whether {object_type} {result.item!r} exists: {result.error}")
        return found
    wanted = set(candidates)
    listing = client.list_users() if object_type == "user" else client.list_groups()
    return {item["id"] async for item in listing if item["id"] in wanted}


def mark_skipped(
    con: duckdb.DuckDBPyConnection,
    object_type: str,
    candidates: list[str],
    existing: set[str],
    *,
    plan: str | None = None,
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


def update_mode_candidates(
    con: duckdb.DuckDBPyConnection, object_type: str, *, plan: str | None = None
) -> tuple[list[str], int]:
    """IDs the plan would send that the state has never seen confirmed, and how many it has."""
    candidates = [
        row[0]
        for row in con.execute(
            f"SELECT id FROM {plan or plan_table(object_type)} WHERE action IN ('create', 'retry') "
            "AND previous_attributes IS NULL"
        ).fetchall()
    ]
    known = con.execute("SELECT count(*) FROM sync.records WHERE object_type = ?", [object_type]).fetchone()[0]
    return candidates, known
