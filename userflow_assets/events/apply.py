"""Sending the planned events: the events' kind of the one send loop (`sink.engine`).

Events are not idempotent, so a stop (a refused key, Userflow unreachable) does not cancel
requests already in flight: the loop stops feeding new events and waits for the ones sent,
so every event Userflow confirmed is recorded and never sent again.
"""

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from userflow_assets.client import BulkResult, EventDelivery, Outcome, UserflowClient
from userflow_assets.client.types import EventObject
from userflow_assets.events.plan import planned_batches
from userflow_assets.sink.engine import Kind, log_entries, send_all
from userflow_assets.state.store import ConnectionFactory, SyncState
from userflow_assets.state.types import Event, Pending, Sent

Planned = tuple[str, Event]  # (action, event)
# Also checkpoint this often: a crash resends only events confirmed since the last checkpoint.
FLUSH_INTERVAL_S = float(os.environ.get("USERFLOW_EVENTS_FLUSH_INTERVAL_S", "2.0"))


@dataclass
class EventsOutcome:
    sent: int = 0
    failed: int = 0
    ambiguous_resend: int = 0  # at least once: no answer, sent again by the next run
    possible_losses: int = 0  # at most once: no answer, never sent again
    failure_examples: list[str] = field(default_factory=list)


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


def _settled(result: BulkResult[Planned, EventObject], delivery: EventDelivery) -> Sent | Pending:
    event = result.item[1]
    if result.outcome is Outcome.OK:
        return Sent(event, "sent", (result.value or {}).get("id"))
    if result.outcome is Outcome.AMBIGUOUS and delivery is EventDelivery.AT_MOST_ONCE:
        return Sent(event, "possibly_lost", None)
    status = "ambiguous" if result.outcome is Outcome.AMBIGUOUS else "failed"
    error = result.error
    return Pending(event, status, getattr(error, "status", None), getattr(error, "code", None), str(error))


async def apply_events(
    client: UserflowClient,
    state: SyncState,
    con_factory: ConnectionFactory,
    run_id: str,
    *,
    delivery: EventDelivery,
    total: int,
    batch_size: int = 500,
) -> EventsOutcome:
    """Send every planned event; raise SyncAborted after recording what was settled if stopped."""
    outcome = EventsOutcome()

    def settle(results: list[BulkResult[Planned, EventObject]]) -> None:
        settled = [_settled(r, delivery) for r in results]
        sent = [s for s in settled if isinstance(s, Sent)]
        log = log_entries(results, run_id, "event", lambda p: (p[1].key, p[0]))
        state.checkpoint_events(run_id, sent, [p for p in settled if isinstance(p, Pending)], log=log)

    def count(result: BulkResult[Planned, EventObject]) -> None:
        settled = _settled(result, delivery)
        if result.ok:
            outcome.sent += 1
        elif isinstance(settled, Sent):
            outcome.possible_losses += 1
        elif settled.status == "ambiguous":
            # Every unanswered attempt may have landed: the resend can make that many copies.
            outcome.ambiguous_resend += getattr(result.error, "unanswered", 1)
        else:
            outcome.failed += 1

    kind = Kind(
        label="events",
        noun="events",
        send=_sender(client, delivery),
        settle=settle,
        idempotent=False,
        failpoint_prefix="events_",
        flush_interval_s=FLUSH_INTERVAL_S,
        kept_for="every event is kept for the next run",
    )
    tally = await send_all(
        client, kind, planned_batches(con_factory, batch_size), total=total, batch_size=batch_size, on_result=count
    )
    outcome.failure_examples = tally.failure_examples
    return outcome
