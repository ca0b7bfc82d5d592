"""The plain values that cross the state boundary: no database, no other stage imported.

The client imports `LearnedLimits` from here; every later stage imports what it records.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

# Statuses of an event still owed (`SyncState.event_counts`).
PENDING_STATUSES = ("failed", "ambiguous", "waiting", "waiting_unknown")


def utcnow() -> datetime:
    """Naive UTC, the convention of every timestamp in the state."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Record:
    """A record as the transform produced it: what is sent and what is remembered."""

    id: str
    payload_hash: str
    attributes: str
    memberships: str | None
    primary_id: str | None
    fallback_id: str | None


@dataclass(frozen=True)
class Failure:
    record: Record
    status: int | None
    code: str | None
    message: str


@dataclass(frozen=True)
class Link:
    """A fallback-ID record now known under its primary ID, and what was done about it."""

    fallback_id: str
    primary_id: str
    decision: str  # the spec's on_primary_id: migrate | keep


@dataclass(frozen=True)
class Event:
    """One event as the transform produced it (what is sent, and what is remembered)."""

    key: str
    name: str
    user_id: str | None
    group_id: str | None
    time: str | None
    attributes: str
    payload_hash: str


@dataclass(frozen=True)
class Sent:
    event: Event
    status: str  # sent | possibly_lost
    userflow_id: str | None


@dataclass(frozen=True)
class Pending:
    event: Event
    status: str  # failed | ambiguous | waiting | waiting_unknown
    http_status: int | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class LearnedLimits:
    """What a limiter learned of the server's limits, to start the next run from."""

    ceiling_per_minute: float | None
    quota_per_window: int | None  # requests per the limiter's quota window
    noise_share: float


@dataclass(frozen=True)
class LogEntry:
    """One request's outcome, as the sync log keeps it."""

    run_id: str
    object_type: str  # user | group | event
    record_id: str  # the record's ID, or the event's key
    action: str  # create | update | retry | migrate | delete | send | retry | resend
    outcome: str  # confirmed | failed | ambiguous | possibly_lost
    http_status: int | None  # the error's status; None when confirmed (some 2xx) or never answered
    error_code: str | None
    error_message: str | None
    attempts: int | None  # of a request that failed; None when confirmed
    logged_at: datetime
