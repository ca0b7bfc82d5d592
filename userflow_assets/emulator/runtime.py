"""Run-time state around the data: config, safeguards, injected faults and the request log."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from userflow_assets.emulator.config import EmulatorConfig
from userflow_assets.emulator.content import seed_content
from userflow_assets.emulator.store import Store, format_time

# 403, 502 and 504 are queueable only: the real API's own answers a client must handle
# (a key without the feature, a gateway in front of Userflow) without random injection.
FAULT_KINDS = ("500", "503", "429", "403", "502", "504", "drop_before", "lost_response")
REQUEST_LOG_SIZE = 1000


@dataclass
class QueuedFault:
    kind: str
    path_prefix: tuple[str, ...] | None
    method: str | None

    def matches(self, method: str, segments: tuple[str, ...]) -> bool:
        if self.method is not None and self.method != method:
            return False
        prefix = self.path_prefix or ()
        return segments[: len(prefix)] == prefix

    def to_json(self) -> dict[str, Any]:
        prefix = "/" + "/".join(self.path_prefix) if self.path_prefix is not None else None
        return {"kind": self.kind, "path_prefix": prefix, "method": self.method}


class Safeguards:
    """The two rate-limit safeguards: a sliding request window and a concurrency cap.

    A request is admitted only if both allow it; a rejected request takes neither a
    window slot nor a concurrency slot.
    """

    def __init__(self) -> None:
        self._stamps: deque[float] = deque()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: list[asyncio.Future[None]] = []  # `until_in_flight` calls, woken at each admission

    def reset(self) -> None:
        self._stamps.clear()
        self.peak_in_flight = self.in_flight

    def admit(self, config: EmulatorConfig, now: float) -> float | None:
        """None if admitted (caller must `release()`), else seconds until a slot frees."""
        window = config.rate_limit_window_s
        while self._stamps and self._stamps[0] <= now - window:
            self._stamps.popleft()
        limit = config.rate_limit_requests
        if limit is not None and len(self._stamps) >= limit:
            return self._stamps[len(self._stamps) - limit] + window - now
        if config.max_concurrent is not None and self.in_flight >= config.max_concurrent:
            return 1.0  # no way to know when an in-flight request ends
        if limit is not None:
            self._stamps.append(now)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        return None

    async def until_in_flight(self, at_least: int) -> None:
        """Until `at_least` requests are in flight together (the hold gate keeps them there)."""
        while self.in_flight < at_least:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self) -> None:
        self.in_flight -= 1


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class RequestLog:
    """Counts per endpoint template and status, plus the most recent entries."""

    def __init__(self) -> None:
        self.total = 0
        self.by_endpoint: dict[str, Counter[str]] = {}
        self.entries: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def record(self, method: str, template: str, record_id: str | None, status: int | None, fault: str | None) -> None:
        # Outcome key: the status the client saw, or what happened to the connection.
        outcome = fault if fault in ("drop_before", "lost_response") else str(status)
        self.total += 1
        self.by_endpoint.setdefault(f"{method} {template}", Counter())[outcome] += 1
        self.entries.append(
            {
                "method": method,
                "path": template,
                "id": record_id,
                "status": status,
                "fault": fault,
                "time": format_time_now(),
            }
        )

    def to_json(self, limit: int) -> dict[str, Any]:
        entries = list(self.entries)[-limit:] if limit else []
        return {
            "total": self.total,
            "by_endpoint": {key: dict(counter) for key, counter in sorted(self.by_endpoint.items())},
            "log": entries,
        }


def format_time_now() -> str:
    return format_time(datetime.now(UTC))


class Emulator:
    """Everything the app serves from; exposed as `app.state.emulator`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        # Seconds for the rate window; replaceable so tests can move time deterministically.
        self.monotonic: Callable[[], float] = time.monotonic
        self.safeguards = Safeguards()
        self.store = Store()
        self.log = RequestLog()
        self.faults: list[QueuedFault] = []
        # Open unless held: `POST /__emulator/hold` keeps admitted requests waiting (in flight)
        # until `POST /__emulator/release`, so overlap is arranged, not hoped for.
        self.gate = asyncio.Event()
        self.gate.set()
        self._reseed_random()
        self._reseed_store()

    def _reseed_random(self) -> None:
        seed = self.config.fault_seed
        self.fault_rng = random.Random(seed)
        # A separate stream, so changing latency settings does not shift the fault sequence.
        self.latency_rng = random.Random(None if seed is None else seed + 1)

    def _reseed_store(self) -> None:
        self.store = Store()
        if self.config.seed_content:
            seed_content(self.store)

    def reset(self) -> None:
        """Clear data, request log, queued faults and the rate window; reseed content."""
        self._reseed_store()
        self.log = RequestLog()
        self.faults.clear()
        self.safeguards.reset()
        self.gate.set()
        self._reseed_random()

    def update_config(self, changes: dict[str, Any]) -> None:
        """Apply a validated partial update; raises ValueError on a bad field."""
        old_seed = self.config.fault_seed
        self.config = self.config.updated(changes)
        if "fault_seed" in changes and changes["fault_seed"] != old_seed:
            self._reseed_random()

    def queue_faults(self, kinds: list[str], path_prefix: tuple[str, ...] | None, method: str | None) -> None:
        self.faults.extend(QueuedFault(kind, path_prefix, method) for kind in kinds)

    def next_fault(self, method: str, segments: tuple[str, ...]) -> str | None:
        """A queued fault matching this request if any, else a random draw (or None)."""
        for index, fault in enumerate(self.faults):
            if fault.matches(method, segments):
                del self.faults[index]
                return fault.kind
        return self._random_fault()

    def _random_fault(self) -> str | None:
        config = self.config
        odds = (
            ("500", config.fault_500),
            ("503", config.fault_503),
            ("drop_before", config.fault_drop_before),
            ("lost_response", config.fault_lost_response),
            ("429", config.fault_429),
        )
        if not any(p for _, p in odds):
            return None
        draw = self.fault_rng.random()
        for kind, probability in odds:
            if draw < probability:
                return kind
            draw -= probability
        return None

    def latency_s(self) -> float:
        config = self.config
        jitter = config.latency_jitter_ms
        delay = config.latency_ms + (self.latency_rng.uniform(-jitter, jitter) if jitter else 0.0)
        return max(0.0, delay) / 1000.0
