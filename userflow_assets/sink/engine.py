"""The one send loop: planned items in batches, through one client, outcomes checkpointed.

Users, groups, deletes, fallback migrations, backfill slices and events all go through
`send_all`. What differs per kind of record is passed in as a `Kind`: how an item becomes
a request, how a batch of outcomes is checkpointed, and whether requests are idempotent.

- A refused key (401/403) stops the run: no other item can succeed either. Its results are
  never recorded as the item's failure, so the next run sends them as planned.
- So many failures in a row means Userflow is unreachable, not that items are bad: stop.
- Stopping an idempotent kind cancels what is in flight (a resend is harmless). A kind that
  is not idempotent (events) stops feeding new items and waits for those sent, so every
  item Userflow confirmed is recorded and never sent again.
- A run in which no request got any answer at all fails, keeping every item for the next run.
"""

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from userflow_assets import failpoints
from userflow_assets.client import (
    BulkResult,
    UserflowAuthError,
    UserflowClient,
    UserflowError,
    UserflowForbiddenError,
    UserflowTransportError,
)
from userflow_assets.settings import API_KEY_VARIABLE, BASE_URL_VARIABLE
from userflow_assets.state.types import LogEntry, utcnow

T = TypeVar("T")
V = TypeVar("V")

# So many failures in a row means the target is down, not that records are bad.
MAX_CONSECUTIVE_FAILURES = 200
FAILURE_EXAMPLES = 5


class SyncAborted(RuntimeError):
    """The run stopped before its plan was applied; what was confirmed is kept."""


@dataclass(frozen=True)
class Kind(Generic[T, V]):
    """What one kind of record brings to the loop."""

    label: str  # "users", "events": in progress lines
    noun: str  # "requests", "events": in stop messages
    send: Callable[[T], Awaitable[V]]  # one item's request(s)
    settle: Callable[[list[BulkResult[T, V]]], None]  # checkpoint outcomes, in one transaction
    idempotent: bool = True  # False: a stop lets requests in flight finish and records them
    failpoint_prefix: str = ""  # "events_" names the events' crash points
    flush_interval_s: float | None = None  # also checkpoint this often, not only per batch
    kept_for: str = "every record is kept and retried by the next run"


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0  # every result without a confirmation
    unreached: int = 0  # failures where no answer came back at all (connection refused, DNS, ...)
    failure_examples: list[str] = field(default_factory=list)


@dataclass
class _Stop:
    error: UserflowError | None = None
    reason: str = ""  # "key" | "unreachable"


async def _feed(batches: Iterable[list[T]], stop: _Stop) -> AsyncIterator[T]:
    for batch in batches:
        for item in batch:
            if stop.reason:
                return  # stop feeding; requests already in flight still report
            yield item


def _refused(error: BaseException | None) -> bool:
    return isinstance(error, UserflowAuthError | UserflowForbiddenError)


async def send_all(
    client: UserflowClient,
    kind: Kind[T, V],
    batches: Iterable[list[T]],
    *,
    total: int,
    batch_size: int,
    on_result: Callable[[BulkResult[T, V]], None] = lambda result: None,
) -> Tally:
    """Send every item of `batches`; checkpoint each `batch_size` outcomes through
    `kind.settle`; raise SyncAborted, after checkpointing what was settled, if stopped."""
    tally, stop = Tally(), _Stop()
    pending: list[BulkResult[T, V]] = []
    consecutive = 0
    flushed_at = time.monotonic()
    results = client.bulk(_feed(batches, stop), kind.send, total=total, label=kind.label)
    try:
        async for result in results:
            if _refused(result.error):
                # Not the item's fault: left unrecorded, so the next run sends it as planned.
                stop.error, stop.reason = result.error, "key"
                if kind.idempotent:
                    break
                continue
            pending.append(result)
            on_result(result)
            if result.ok:
                tally.ok += 1
                consecutive = 0
            else:
                consecutive += 1
                tally.failed += 1
                tally.unreached += isinstance(result.error, UserflowTransportError)
                if len(tally.failure_examples) < FAILURE_EXAMPLES:
                    tally.failure_examples.append(str(result.error))
                if consecutive >= MAX_CONSECUTIVE_FAILURES and not stop.reason:
                    stop.error, stop.reason = result.error, "unreachable"
                    if kind.idempotent:
                        break
            if len(pending) == batch_size // 2:
                failpoints.reach(f"{kind.failpoint_prefix}mid_batch")  # half a batch confirmed, none recorded
            overdue = kind.flush_interval_s is not None and time.monotonic() - flushed_at >= kind.flush_interval_s
            if len(pending) >= batch_size or overdue:
                kind.settle(pending)
                pending, flushed_at = [], time.monotonic()
                failpoints.reach(f"{kind.failpoint_prefix}between_batches")
    finally:
        await results.aclose()  # type: ignore[attr-defined]
        if pending:
            kind.settle(pending)
    _raise_if_stopped(client, kind, tally, stop)
    return tally


def log_entries(
    results: list[BulkResult[T, V]], run_id: str, object_type: str, describe: Callable[[T], tuple[str, str]]
) -> list[LogEntry]:
    """The sync log's rows of settled results; `describe` gives an item's (record ID, action)."""
    now = utcnow()
    entries = []
    for result in results:
        record_id, action = describe(result.item)
        error = result.error
        entries.append(
            LogEntry(
                run_id, object_type, record_id, action,
                "confirmed" if result.ok else str(result.outcome),
                getattr(error, "status", None), getattr(error, "code", None),
                None if error is None else str(error), None if result.ok else getattr(error, "attempts", 1), now,
            )
        )
    return entries


def key_refused_message(client: UserflowClient, error: UserflowError | None) -> str:
    """The cause and the fix first; no record ID (the key, not a record, is at fault)."""
    answer = " ".join(str(part) for part in (getattr(error, "status", None), getattr(error, "code", None)) if part)
    detail = getattr(error, "message", "") or ""
    return (
        f"Userflow at {client.base_url} refused the API key {client.key_fingerprint} ({answer}: {detail}). "
        f"Set {API_KEY_VARIABLE} to a key of this Userflow environment (Settings -> API), or "
        f"{BASE_URL_VARIABLE} to the environment the key belongs to (https://api.eu.userflow.com for EU). "
        "The run stopped and nothing more was sent."
    )


def _raise_if_stopped(client: UserflowClient, kind: Kind[T, V], tally: Tally, stop: _Stop) -> None:
    if stop.reason == "key":
        raise SyncAborted(key_refused_message(client, stop.error))
    if stop.reason:
        raise SyncAborted(
            f"{MAX_CONSECUTIVE_FAILURES} {kind.noun} in a row failed, so Userflow looks unreachable; "
            f"the last error: {stop.error}"
        )
    if tally.unreached and tally.unreached == tally.failed and not tally.ok:
        # Not one request got an answer: the target is down or misconfigured, not the items bad.
        raise SyncAborted(
            f"none of {tally.failed} {kind.noun} reached Userflow at {client.base_url} "
            f"(last error: {tally.failure_examples[-1]}); {kind.kept_for}"
        )
