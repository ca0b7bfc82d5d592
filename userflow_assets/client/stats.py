"""Per-run counters and the progress log line for long batches."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from userflow_assets.client.ratelimit import AdaptiveRateLimiter

# Answers every run shows, 0 or not.
STEADY_STATUSES = ("200", "429")


class ClientStats:
    """Counters shared by every client of one run; safe across threads and loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0  # HTTP attempts that went out (or tried to)
        self.by_status: Counter[str] = Counter()  # status code, or "transport_error"
        self.retries = 0
        self.rate_limited = 0  # 429 answers
        self.ambiguous = 0  # outcomes reported as possibly applied
        self.possible_duplicates = 0  # at-least-once events retried after an ambiguous attempt
        self.transport_errors = 0
        self.failures = 0  # calls that ended in a raised error

    def count(self, field: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + amount)

    def count_outcome(self, outcome: str) -> None:
        with self._lock:
            self.by_status[outcome] += 1

    def metadata(self, limiter: AdaptiveRateLimiter | None = None) -> dict[str, int | float]:
        """Plain numbers, ready for ``MaterializeResult(metadata=...)``."""
        with self._lock:
            data: dict[str, int | float] = {
                "userflow_requests": self.requests,
                "userflow_retries": self.retries,
                "userflow_rate_limited": self.rate_limited,
                "userflow_ambiguous": self.ambiguous,
                "userflow_possible_duplicates": self.possible_duplicates,
                "userflow_transport_errors": self.transport_errors,
                "userflow_failures": self.failures,
            }
            # The common answers always, so their plots have no gaps; any other as it comes.
            for outcome, n in sorted({**dict.fromkeys(STEADY_STATUSES, 0), **self.by_status}.items()):
                data[f"userflow_status_{outcome}"] = n
        if limiter is not None:
            snap = limiter.snapshot()
            data["userflow_rate_per_minute"] = round(snap.rate_per_minute, 1)
            data["userflow_concurrency_cap"] = snap.concurrency_cap
            if snap.learned_per_minute is not None:
                data["userflow_learned_quota_per_minute"] = round(snap.learned_per_minute, 1)
            if snap.noise_share:
                data["userflow_random_429_share"] = round(snap.noise_share, 4)
        return data


# What the limiter holds now, not counts: a step shows them as they are, never as a difference.
GAUGES = frozenset(
    {
        "userflow_rate_per_minute",
        "userflow_concurrency_cap",
        "userflow_learned_quota_per_minute",
        "userflow_random_429_share",
    }
)


def counters_since(before: dict[str, int | float], after: dict[str, int | float]) -> dict[str, int | float]:
    """One step's share of a run's client metadata: counters less what they were at `before`,
    gauges as they are at `after`."""
    return {k: v if k in GAUGES else v - before.get(k, 0) for k, v in after.items()}


class ProgressLog:
    """Logs `done/total, rate, ETA` at most once per interval while a batch runs."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        interval_s: float = 5.0,
        limiter: AdaptiveRateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.failed = 0
        self.ambiguous = 0
        self._logger = logger
        self._interval = interval_s
        self._limiter = limiter
        self._clock = clock
        self._start = clock()
        self._last_log = self._start

    def update(self, outcome: str) -> None:
        self.done += 1
        if outcome == "failed":
            self.failed += 1
        elif outcome == "ambiguous":
            self.ambiguous += 1
        now = self._clock()
        if now - self._last_log >= self._interval:
            self._last_log = now
            self._logger.info("%s", self.line(now))

    def finish(self) -> None:
        self._logger.info("%s (finished)", self.line(self._clock()))

    def line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        per_s = self.done / elapsed
        if self.total:
            head = f"{self.label}: {self.done}/{self.total} ({100.0 * self.done / self.total:.1f}%)"
        else:
            head = f"{self.label}: {self.done} done"
        parts = [head, f"{per_s:.1f}/s"]
        if self.total and per_s > 0 and self.done < self.total:
            parts.append(f"ETA {format_duration((self.total - self.done) / per_s)}")
        if self.failed or self.ambiguous:
            parts.append(f"{self.failed} failed, {self.ambiguous} ambiguous")
        if self._limiter is not None:
            parts.append(f"limit {self._limiter.snapshot().rate_per_minute:.0f}/min")
        return ", ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
