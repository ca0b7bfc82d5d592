"""A discrete-event simulation of the adaptive limiter against a server model, on a fake clock.

The caller always has work waiting (every request is paced) and each answer arrives a fixed
latency after its request left. Deterministic for a seed, and fast: minutes of traffic
simulate in well under a second.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from userflow_assets.client import AdaptiveRateLimiter
from userflow_assets.client.ratelimit import LearnedLimits, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    """Admits at most `limit` requests per sliding `window_s` (None: no limit), and answers a
    `noise` share of requests 429 at random regardless of rate."""

    limit: int | None = None
    window_s: float = 1.0
    noise: float = 0.0
    seed: int = 0
    admitted: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def answer(self, now: float) -> bool:
        """True for a 2xx, False for a 429."""
        if self.noise and self.rng.random() < self.noise:
            return False
        if self.limit is not None:
            while self.admitted and self.admitted[0] <= now - self.window_s:
                self.admitted.popleft()
            if len(self.admitted) >= self.limit:
                return False
            self.admitted.append(now)
        return True


@dataclass
class SimResult:
    seconds: float
    ok: int
    rate_limited: int
    ok_after: int  # successes after the warm-up
    after_s: float  # length of the measured span after the warm-up
    learned: LearnedLimits | None = None  # what the limiter learned, for the next run

    @property
    def share_429(self) -> float:
        return self.rate_limited / (self.ok + self.rate_limited)

    @property
    def steady_per_s(self) -> float:
        return self.ok_after / self.after_s


def simulate(
    server: Server,
    seconds: float,
    *,
    latency_s: float = 0.05,
    warmup_s: float = 10.0,
    initial_per_minute: float = 500.0,
    resume: LearnedLimits | None = None,
) -> SimResult:
    clock = Clock()
    start = clock.now
    limiter = AdaptiveRateLimiter(initial_per_minute=initial_per_minute, max_concurrency=10_000, clock=clock)
    if resume is not None:
        limiter.resume(resume)
    answers: list[tuple[float, int, Ticket]] = []  # (answer time, sequence, ticket)
    sequence = ok = limited = ok_after = 0
    end = start + seconds
    while clock.now < end:
        delay = limiter.try_grant()
        next_send = clock.now + delay
        if answers and answers[0][0] <= next_send:
            at, _, ticket = heapq.heappop(answers)
            clock.now = max(clock.now, at)
            if server.answer(ticket.sent_at):
                ok += 1
                ok_after += clock.now >= start + warmup_s
                limiter.on_success(ticket)
            else:
                limited += 1
                limiter.on_rate_limited(ticket)
            continue
        if delay > 0:
            clock.now = next_send
            continue
        ticket = Ticket(clock.now, limiter.snapshot().rate_per_minute / 60, paced=True, in_flight=1, concurrency_bound=False)
        sequence += 1
        heapq.heappush(answers, (clock.now + latency_s, sequence, ticket))
    return SimResult(seconds, ok, limited, ok_after, seconds - warmup_s, limiter.learned())
