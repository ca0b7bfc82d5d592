"""Sending the planned events through one client, their outcome checkpointed per batch.

Events are not idempotent, so a stop (a refused key, Userflow unreachable) does not cancel
requests already in flight: the run stops feeding new events and waits for the ones sent,
so every event Userflow confirmed is recorded and never sent again.
"""

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from userflow_assets import failpoints
from userflow_assets.client import (
    BulkResult,
    EventDelivery,
    Outcome,
    UserflowAuthError,
    UserflowClient,
    UserflowError,
    UserflowForbiddenError,
    UserflowTransportError,
)
from userflow_assets.client.types import EventObject
from userflow_assets.events.plan import ConnectionFactory, planned_batches
from userflow_assets.events.state import Event, Pending, Sent, checkpoint
from userflow_assets.sink.apply import MAX_CONSECUTIVE_FAILURES, SyncAborted

Planned = tuple[str, Event]  # (action, event)
# Also checkpoint this often: a crash resends only events confirmed since the last checkpoint.
FLUSH_INTERVAL_S = 2.0


@dataclass
class EventsOutcome:
    sent: int = 0
    failed: int = 0
    ambiguous_resend: int = 0  # at least once: no answer, sent again by the next run
    possible_losses: int = 0  # at most once: no answer, never sent again
    unreached: int = 0  # refused before sending (connection refused, DNS, ...)
    failure_examples: list[str] = field(default_factory=list)


@dataclass
class _Stop:
    error: UserflowError | None = None
    reason: str = ""


def _sender(client: UserflowClient, delivery: EventDelivery) -> Callable[[Planned], Awaitable[EventObject]]:
    async def send(planned: Planned) -> EventObject:
        event = planned[1]
        attributes = json.loads(event.attributes)
        return await client.track_event(
            event.name,
            user_id=event.user_id,
            group_id=event.group_id,
            attributes=attributes or None,
            time=event.time,
            delivery=delivery,
        )

    return send


async def _stream(con_factory: ConnectionFactory, batch_size: int, stop: _Stop) -> AsyncIterator[Planned]:
    for batch in planned_batches(con_factory, batch_size):
        for planned in batch:
            if stop.reason:
                return  # stop feeding; events already in flight still report
            yield planned


def _settled(result: BulkResult[Planned, EventObject], delivery: EventDelivery) -> Sent | Pending:
    event = result.item[1]
    if result.outcome is Outcome.OK:
        return Sent(event, "sent", (result.value or {}).get("id"))
    if result.outcome is Outcome.AMBIGUOUS and delivery is EventDelivery.AT_MOST_ONCE:
        return Sent(event, "possibly_lost", None)
    status = "ambiguous" if result.outcome is Outcome.AMBIGUOUS else "failed"
    error = result.error
    return Pending(event, status, getattr(error, "status", None), getattr(error, "code", None), str(error))


def _save(con_factory: ConnectionFactory, run_id: str, settled: list[Sent | Pending]) -> None:
    if settled:
        with con_factory() as con:
            checkpoint(
                con,
                run_id,
                [s for s in settled if isinstance(s, Sent)],
                [p for p in settled if isinstance(p, Pending)],
            )


async def apply_events(
    client: UserflowClient,
    con_factory: ConnectionFactory,
    run_id: str,
    *,
    delivery: EventDelivery,
    total: int,
    batch_size: int = 500,
) -> EventsOutcome:
    """Send every planned event; raise SyncAborted after recording what was settled if stopped."""
    outcome = EventsOutcome()
    stop = _Stop()
    pending: list[Sent | Pending] = []
    consecutive_failures = 0
    flushed_at = time.monotonic()
    results = client.bulk(_stream(con_factory, batch_size, stop), _sender(client, delivery), total=total, label="events")
    try:
        async for result in results:
            if isinstance(result.error, UserflowAuthError | UserflowForbiddenError):
                # Not the event's fault: left unrecorded, so the next run sends it as planned.
                stop.error, stop.reason = result.error, "key"
                continue
            settled = _settled(result, delivery)
            pending.append(settled)
            if result.ok:
                outcome.sent += 1
                consecutive_failures = 0
            else:
                consecutive_failures += 1
                outcome.unreached += isinstance(result.error, UserflowTransportError)
                if isinstance(settled, Sent):
                    outcome.possible_losses += 1
                elif settled.status == "ambiguous":
                    # Every unanswered attempt may have landed: the resend can make that many copies.
                    outcome.ambiguous_resend += getattr(result.error, "unanswered", 1)
                else:
                    outcome.failed += 1
                if len(outcome.failure_examples) < 5:
                    outcome.failure_examples.append(str(result.error))
                if consecutive_failures >= MAX_CONSECUTIVE_FAILURES and not stop.reason:
                    stop.error, stop.reason = result.error, "unreachable"
            if len(pending) == batch_size // 2:
                failpoints.reach("events_mid_batch")  # half a batch confirmed, none of it recorded
            if len(pending) >= batch_size or time.monotonic() - flushed_at >= FLUSH_INTERVAL_S:
                _save(con_factory, run_id, pending)
                pending, flushed_at = [], time.monotonic()
                failpoints.reach("events_between_batches")
    finally:
        await results.aclose()  # type: ignore[attr-defined]
        _save(con_factory, run_id, pending)
    if stop.reason == "key":
        raise SyncAborted(f"Userflow refused the API key ({stop.error}); the run stopped and nothing more was sent")
    if stop.reason:
        raise SyncAborted(
            f"{MAX_CONSECUTIVE_FAILURES} events in a row failed, so Userflow looks unreachable; "
            f"the last error: {stop.error}"
        )
    unanswered = outcome.failed + outcome.ambiguous_resend + outcome.possible_losses
    if outcome.unreached and outcome.unreached == unanswered and not outcome.sent:
        # Not one event reached Userflow: the target is down or misconfigured, not the events bad.
        raise SyncAborted(
            f"none of {unanswered} events reached Userflow at {client.base_url} "
            f"(last error: {outcome.failure_examples[-1]}); every event is kept for the next run"
        )
    return outcome
