"""One adaptive rate and concurrency budget per API key and process.

Userflow enforces two undocumented safeguards per key: a request rate and a number of
concurrent requests. The limiter paces requests evenly at an adapted rate and caps the number in
flight:

* rate known (``requests_per_minute``): never exceeded; a strict sliding 60 s log guarantees it,
  and 429s still lower the rate below that ceiling until they stop.
* rate unknown: start at 500/min (the one reported limit), grow exponentially until the first
  429, then remember the rate that drew it (``ceiling``), back off multiplicatively, return quickly
  to just under the ceiling and probe upward additively, a little faster the longer no 429
  comes. The rate settles just under whatever the server enforces.
* a 429 from the concurrency safeguard lowers the cap on requests in flight instead; the cap
  creeps back up additively.
* 429s that keep coming at the same share however far the rate is cut (a server answering some
  429s at random) are noise: once requests sent well under the estimated limit draw them, their
  share is learned and only a share of 429s clearly above it cuts the rate.
* an overload that no cut ends (every answer a 429 for seconds: a quota counted over a long
  window, such as a minute) is answered by learning that quota: the successes of the last
  minute become a per-minute budget enforced like a known rate, tried 10% higher after each
  minute without a 429 (the next 429 learns it again).

Only requests sent after the last cut can trigger another cut, so the burst of 429s answering
requests already in flight counts as one signal. Growth happens only while the limiter is what
holds requests back, so an idle or slow caller does not inflate the rate.

The state is guarded by a thread lock and waiting uses per-loop futures, so one limiter serves
every event loop in the process (Dagster runs each step in its own loop).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from userflow_assets.state.types import LearnedLimits

DEFAULT_INITIAL_PER_MINUTE = 500.0
MIN_RATE_PER_S = 0.2
MAX_RATE_PER_S = 5000.0
DOUBLING_TIME_S = 0.3  # growth speed below the known ceiling
BACKOFF = 0.8  # multiplicative cut on a 429
TARGET_FRACTION = 0.97  # where growth stops being fast, relative to the estimated limit
PROBE_PER_S = 0.01  # additive probe above that, as a share of the ceiling per second
PROBE_SPEEDUP_S = 5.0  # the probe doubles its slope every this long without a 429
PROBE_MAX_DOUBLINGS = 5  # at most 32 times the first slope
PLATEAU_S = 5.0  # after a cut, hold just under the limit this long before probing above it
CONCURRENCY_BACKOFF = 0.75
WINDOW_S = 60.0
SAMPLE_S = 1.0  # successes counted over this long estimate what the server accepts
SUSTAINED_S = 3.0  # an overload no cut has ended after this long is a quota over a long window
QUOTA_PROBE = 1.1  # a learned quota grows by this factor after a window without a 429
RECENT_ANSWERS = 100  # answers since the last cut that decide whether a 429 is noise
NOISE_EVIDENCE = 400  # answers sent under the limit that measure the noise share (from 1/8 of it)
NOISE_BELOW = TARGET_FRACTION + 0.01  # "under the limit": not probing above it
NOISE_MIN = 0.01  # a smaller share of 429s under the limit is not noise worth learning
NOISE_MIN_429S = 3  # nor are fewer 429s than this
NOISE_FORGET = 4 * NOISE_EVIDENCE  # answers under the limit without a 429 that end the noise
NOISE_MAX = 0.5
NOISE_FLOOR_N = 20
NOISE_Z = 2.5  # how many standard deviations above the noise share a 429 count must be to cut


@dataclass(frozen=True)
class Ticket:
    """What the limiter knew when it let one request go."""

    sent_at: float
    rate: float
    paced: bool  # the rate, not the caller, decided when this request left
    in_flight: int  # requests in flight including this one
    concurrency_bound: bool  # the concurrency cap was reached when admitted


@dataclass(frozen=True)
class LimiterSnapshot:
    rate_per_minute: float
    ceiling_per_minute: float | None
    concurrency_cap: int
    in_flight: int
    fixed_per_minute: float | None
    learned_per_minute: float | None = None  # a quota learned from a sustained overload
    noise_share: float = 0.0  # share of 429s learned to come regardless of the rate


class AdaptiveRateLimiter:
    """Paces and caps requests; learns the server's limits from 429s."""

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        max_concurrency: int = 16,
        initial_per_minute: float = DEFAULT_INITIAL_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive")
        self._clock = clock
        self._lock = threading.Lock()
        self._fixed: float | None = None
        self._window: deque[float] = deque()
        self._rate = initial_per_minute / 60.0
        self._initial = self._rate
        self._ceiling: float | None = None  # estimated server limit, per second
        self._successes: deque[float] = deque()  # times of recent successes
        self._first_success: float | None = None
        self._last_cut = -math.inf
        self._overloaded = False
        self._overload_since = -math.inf
        self._long_successes: deque[float] = deque()  # successes of the last WINDOW_S
        self._learned: int | None = None  # per-WINDOW_S quota learned from a sustained overload
        self._quota_since = -math.inf  # when the quota was last learned or raised
        self._quota_base = 0  # the quota as last learned, before any raise
        self._last_signal = -math.inf  # the last 429 that noise did not explain
        self._recent: deque[bool] = deque(maxlen=RECENT_ANSWERS)  # 429 or not, since the last cut
        self._evidence: deque[bool] = deque(maxlen=NOISE_EVIDENCE)  # the same, well under the limit
        self._evidence_429 = 0
        self._evidence_quiet = 0  # answers under the limit since the last 429 among them
        self._noise = 0.0
        self._last_grant = -math.inf
        self._head_taken = False
        self._pace_waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = deque()
        self._paused_until = -math.inf
        self._max_concurrency = max_concurrency
        self._cap = float(max_concurrency)
        self._last_cap_cut = -math.inf
        self._in_flight = 0
        self._ok_in_flight: deque[int] = deque(maxlen=64)  # in-flight counts that succeeded
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = deque()
        if requests_per_minute is not None:
            self.tighten(requests_per_minute=requests_per_minute)

    # -- configuration --------------------------------------------------------------------

    def tighten(
        self, *, requests_per_minute: float | None = None, max_concurrency: int | None = None
    ) -> None:
        """Apply a stricter fixed rate or concurrency maximum (a looser one is ignored)."""
        with self._lock:
            fixed = None if requests_per_minute is None else requests_per_minute / 60.0
            if fixed is not None and (self._fixed is None or fixed < self._fixed):
                self._fixed = fixed
                # Known from the start: go at it. Learned already: only ever lower.
                self._rate = min(self._rate, fixed) if self._ceiling else fixed
            if max_concurrency is not None and max_concurrency < self._max_concurrency:
                self._max_concurrency = max(1, max_concurrency)
                self._cap = min(self._cap, float(self._max_concurrency))

    def snapshot(self) -> LimiterSnapshot:
        with self._lock:
            return LimiterSnapshot(
                rate_per_minute=self._rate * 60.0,
                ceiling_per_minute=None if self._ceiling is None else self._ceiling * 60.0,
                concurrency_cap=int(self._cap),
                in_flight=self._in_flight,
                fixed_per_minute=None if self._fixed is None else self._fixed * 60.0,
                learned_per_minute=None if self._learned is None else self._learned * 60.0 / WINDOW_S,
                noise_share=self._noise,
            )

    def learned(self) -> LearnedLimits | None:
        """The limits learned so far, or None when nothing was learned."""
        with self._lock:
            if self._ceiling is None and self._learned is None and not self._noise:
                return None
            ceiling = None if self._ceiling is None else self._ceiling * 60.0
            return LearnedLimits(ceiling, self._quota_base or None, self._noise)

    def resume(self, limits: LearnedLimits) -> bool:
        """Start from limits an earlier run learned, instead of from 500/min. Ignored (False)
        once this limiter has seen an answer: what it learns itself is fresher."""
        with self._lock:
            if self._first_success is not None or self._last_cut > -math.inf:
                return False
            now = self._clock()
            self._noise = min(NOISE_MAX, max(0.0, limits.noise_share))
            if limits.ceiling_per_minute:
                self._ceiling = limits.ceiling_per_minute / 60.0
                self._rate = self._ceiling * TARGET_FRACTION
            if limits.quota_per_window:
                self._learned = self._quota_base = limits.quota_per_window
                self._quota_since = now
                self._ceiling = self._rate = limits.quota_per_window / WINDOW_S
            self._rate = max(MIN_RATE_PER_S, min(self._rate, self._max_rate_locked()))
            self._last_cut = now  # hold at the remembered limit before probing above it
            return True

    # -- admission ------------------------------------------------------------------------

    async def acquire(self) -> Ticket:
        """Wait for the next rate slot, then for a concurrency slot."""
        paced, rate = await self._pace()
        in_flight, bound = await self._acquire_slot()
        return Ticket(
            sent_at=self._clock(),
            rate=rate,
            paced=paced,
            in_flight=in_flight,
            concurrency_bound=bound,
        )

    def release(self) -> None:
        """Give back a concurrency slot; hand it to the next waiter if the cap allows."""
        with self._lock:
            self._in_flight -= 1
            self._wake_waiters_locked()

    def try_grant(self) -> float:
        """Take a rate slot now if one is free (returns 0.0), else the seconds until one is.

        Bypasses the waiting line; `acquire` is the normal way in.
        """
        with self._lock:
            return self._try_grant_locked()[0]

    async def _pace(self) -> tuple[bool, float]:
        """Take a rate slot: at once if one is free and nobody waits, else in line.

        Only the head of the line sleeps, and it re-reads the rate after every sleep, so a
        changed rate applies at once rather than after slots reserved at the old one. On its
        way out the head grants every slot already due to those behind it in one go, so a busy
        event loop is not limited to one grant per iteration.
        Returns (whether the rate held this request back, the rate).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._head_taken:
                delay, rate = self._try_grant_locked()
                if delay <= 0:
                    return False, rate
                self._head_taken = True
                waiter = None
            else:
                waiter = loop.create_future()
                self._pace_waiters.append((loop, waiter))
        if waiter is not None:
            granted = await self._wait_in_line(loop, waiter)
            if granted is not None:
                return granted
        slept = False
        try:
            while True:
                with self._lock:
                    delay, rate = self._try_grant_locked()
                if delay <= 0:
                    return slept, rate
                slept = True
                await asyncio.sleep(delay)
        finally:
            self._pass_head(slept)

    def _try_grant_locked(self) -> tuple[float, float]:
        """(0, rate) and the slot is taken, or (seconds to wait, rate)."""
        now = self._clock()
        interval = 1.0 / self._rate
        # Virtual schedule: a late wake-up keeps its slot time (up to one interval late), so
        # sleep overshoot does not erode the rate; an idle limiter gives no burst credit.
        start = self._last_grant + interval
        if start < now - interval:
            start = now
        start = max(start, self._paused_until)
        limit = self._window_limit_locked()
        if limit is not None:
            while self._window and self._window[0] <= now - WINDOW_S:
                self._window.popleft()
            if len(self._window) >= limit:
                start = max(start, self._window[-limit] + WINDOW_S)
        if start > now:
            return start - now, self._rate
        self._last_grant = start
        if limit is not None:
            self._window.append(now)
        return 0.0, self._rate

    def _window_limit_locked(self) -> int | None:
        """Requests allowed per WINDOW_S by a known rate or a learned quota, if any."""
        limits = [] if self._learned is None else [self._learned]
        if self._fixed is not None:
            limits.append(max(1, math.floor(self._fixed * WINDOW_S)))
        return min(limits) if limits else None

    async def _wait_in_line(
        self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[tuple[bool, float] | None]
    ) -> tuple[bool, float] | None:
        """A granted slot, or None when made head of the line."""
        try:
            return await waiter
        except asyncio.CancelledError:
            with self._lock:
                if (loop, waiter) in self._pace_waiters:
                    self._pace_waiters.remove((loop, waiter))
                    raise
            if waiter.done() and not waiter.cancelled() and waiter.result() is None:
                self._pass_head(False)  # made head just as we were cancelled: pass it on
            raise

    def _pass_head(self, slept: bool) -> None:
        """Grant the slots already due to the waiters in front, then hand the head on."""
        with self._lock:
            while self._pace_waiters:
                loop, waiter = self._pace_waiters.popleft()
                delay, rate = self._try_grant_locked()
                result = (slept, rate) if delay <= 0 else None
                try:
                    loop.call_soon_threadsafe(self._resolve_waiter, waiter, result)
                except RuntimeError:  # that loop is closed
                    continue
                if result is None:
                    return
            self._head_taken = False

    def _resolve_waiter(
        self, waiter: asyncio.Future[tuple[bool, float] | None], result: tuple[bool, float] | None
    ) -> None:
        if not waiter.cancelled():
            waiter.set_result(result)
        elif result is None:
            self._pass_head(False)  # it was to be the head: the next one is

    async def _acquire_slot(self) -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters and self._in_flight < self._cap_int():
                self._in_flight += 1
                return self._in_flight, self._in_flight >= self._cap_int()
            waiter: asyncio.Future[int] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            in_flight = await waiter
        except asyncio.CancelledError:
            with self._lock:
                if (loop, waiter) in self._waiters:
                    self._waiters.remove((loop, waiter))
                    raise
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed over just as we were cancelled
            raise
        return in_flight, True

    def _cap_int(self) -> int:
        return max(1, int(self._cap))

    def _wake_waiters_locked(self) -> None:
        while self._waiters and self._in_flight < self._cap_int():
            loop, waiter = self._waiters.popleft()
            self._in_flight += 1
            try:
                loop.call_soon_threadsafe(self._hand_over, waiter, self._in_flight)
            except RuntimeError:  # that loop is closed: nobody will take the slot
                self._in_flight -= 1

    def _hand_over(self, waiter: asyncio.Future[int], in_flight: int) -> None:
        if waiter.cancelled():
            self.release()
        else:
            waiter.set_result(in_flight)

    # -- feedback -------------------------------------------------------------------------

    def on_success(self, ticket: Ticket) -> None:
        """A request was answered without a 429: grow the rate (and cap) if they were binding."""
        with self._lock:
            now = self._clock()
            self._ok_in_flight.append(ticket.in_flight)
            self._record_success_locked(now)
            self._note_answer_locked(ticket, limited=False)
            if self._learned is not None and now - max(self._last_signal, self._quota_since) >= WINDOW_S:
                self._raise_quota_locked(now)
            if ticket.sent_at > self._last_cut:
                self._overloaded = False  # sent after the last cut and accepted: overload over
            if ticket.paced:
                self._rate = min(self._max_rate_locked(), self._rate + self._growth_locked(now))
            if ticket.concurrency_bound and self._cap < self._max_concurrency:
                self._cap = min(float(self._max_concurrency), self._cap + 1.0 / self._cap)
                self._wake_waiters_locked()

    def on_rate_limited(
        self, ticket: Ticket, *, retry_after: float | None = None, concurrency: bool | None = None
    ) -> None:
        """A request drew a 429. Cut the rate (or the concurrency cap) once per signal.

        `concurrency` True/False when the answer said which safeguard fired; None when it did
        not (Userflow's 429 names neither): then it is a rate signal, and if it came at more
        requests in flight than any recent success had, the cap also drops to that proven level.
        """
        with self._lock:
            now = self._clock()
            if retry_after is not None and retry_after > 0:
                self._paused_until = max(self._paused_until, now + retry_after)
            if concurrency is not False and ticket.sent_at > self._last_cap_cut:
                proven = max(self._ok_in_flight, default=0)
                if concurrency:
                    self._last_cap_cut = now
                    reduced = min(self._cap, float(ticket.in_flight)) * CONCURRENCY_BACKOFF
                    self._cap = max(1.0, math.floor(reduced))
                    return
                if proven and ticket.in_flight > proven and proven < self._cap:
                    self._last_cap_cut = now
                    self._cap = float(proven)
                    return  # answered by the cap; the next 429, if any, speaks for the rate
            self._note_answer_locked(ticket, limited=True)
            if ticket.sent_at <= self._last_cut:
                return  # sent before the last cut: the same overload, already answered
            if self._noise_explains_locked():
                return
            self._last_signal = now
            sustained = self._overloaded and now - self._overload_since >= SUSTAINED_S
            if (sustained or self._learned is not None) and self._learn_quota_locked(now):
                return
            if not self._overloaded:
                # First cut of an overload: estimate the limit. What the server accepted over
                # the last second measures a short window exactly and tracks the send rate
                # under a long one. Later cuts of the same overload are answered by a window
                # still full from before the first cut, so they keep the estimate.
                accepted = self._accepted_rate_locked(now)
                # Noise 429s were not the limit: what they turned away counts as accepted.
                self._ceiling = accepted / (1.0 - self._noise) if accepted else ticket.rate
                self._overloaded = True
                self._overload_since = now
            self._last_cut = now
            self._recent.clear()
            # Cut below the estimate too: after a fast ramp the rate may be far above it.
            self._rate = max(MIN_RATE_PER_S, min(self._rate, ticket.rate, self._ceiling) * BACKOFF)

    def _record_success_locked(self, now: float) -> None:
        if self._first_success is None:
            self._first_success = now
        self._successes.append(now)
        while self._successes and self._successes[0] <= now - SAMPLE_S:
            self._successes.popleft()
        self._long_successes.append(now)
        while self._long_successes[0] <= now - WINDOW_S:
            self._long_successes.popleft()

    def _note_answer_locked(self, ticket: Ticket, *, limited: bool) -> None:
        """Count an answer towards the recent share of 429s and, when its request left well
        under the estimated limit after the last overload settled, towards the noise share."""
        if ticket.sent_at > self._last_cut:
            self._recent.append(limited)
        if not self._under_limit_locked(ticket):
            return
        if len(self._evidence) == NOISE_EVIDENCE:
            self._evidence_429 -= self._evidence[0]
        self._evidence.append(limited)
        self._evidence_429 += limited
        self._evidence_quiet = 0 if limited else self._evidence_quiet + 1
        if len(self._evidence) < NOISE_EVIDENCE // 8:
            return
        share = min(NOISE_MAX, self._evidence_429 / len(self._evidence))
        if not self._noise:
            if share >= NOISE_MIN and self._evidence_429 >= NOISE_MIN_429S:
                self._noise = share
                self._ceiling = None  # the estimates 429s at this share made are void: start afresh
        elif self._evidence_quiet >= NOISE_FORGET:
            self._noise = 0.0
        else:
            self._noise = max(share, NOISE_MIN / 4)

    def _under_limit_locked(self, ticket: Ticket) -> bool:
        """Whether a 429 answering this request cannot have been the limit's."""
        if self._learned is not None:
            # Under a quota the rate sits at it: only a minute that used clearly less of the
            # quota last learned (not the larger one being tried) says a 429 was not the quota.
            while self._long_successes and self._long_successes[0] <= self._clock() - WINDOW_S:
                self._long_successes.popleft()
            return len(self._long_successes) < NOISE_BELOW * self._quota_base
        under = self._ceiling is not None and ticket.rate <= NOISE_BELOW * self._ceiling
        return under and ticket.sent_at >= self._last_cut + SAMPLE_S and not self._overloaded

    def _noise_explains_locked(self) -> bool:
        """Whether the 429s since the last cut are within what the learned noise share gives."""
        if not self._noise:
            return False
        # Judged over at least NOISE_FLOOR_N answers: right after a cut a pair of noise 429s
        # must not read as a share of 100%.
        expected = self._noise * max(len(self._recent), NOISE_FLOOR_N)
        return sum(self._recent) <= expected + NOISE_Z * math.sqrt(expected) + 1

    def _learn_quota_locked(self, now: float) -> bool:
        """Take the last minute's successes as the quota; False if that explains nothing new."""
        while self._long_successes and self._long_successes[0] <= now - WINDOW_S:
            self._long_successes.popleft()
        # What the server accepted (noise 429s make it an underestimate; the next raise finds it).
        quota = len(self._long_successes)
        if not quota or (self._learned is not None and quota >= self._learned):
            return False
        self._learned = self._quota_base = quota
        self._quota_since = now
        if self._fixed is None:
            self._window = deque(self._long_successes)  # what the server has counted
        self._ceiling = quota / WINDOW_S
        self._rate = self._ceiling
        self._last_cut = now
        self._recent.clear()
        return True

    def _raise_quota_locked(self, now: float) -> None:
        """A minute without a 429: probe a larger quota (the next 429 learns it again)."""
        assert self._learned is not None
        self._learned = math.ceil(self._learned * QUOTA_PROBE)
        self._ceiling = self._learned / WINDOW_S
        self._quota_since = now

    def _accepted_rate_locked(self, now: float) -> float | None:
        while self._successes and self._successes[0] <= now - SAMPLE_S:
            self._successes.popleft()
        span = 0.0 if self._first_success is None else min(SAMPLE_S, now - self._first_success)
        if span < SAMPLE_S / 2 or len(self._successes) < 3:
            return None  # too little to measure
        return len(self._successes) / span

    def _max_rate_locked(self) -> float:
        limits = [MAX_RATE_PER_S]
        if self._fixed is not None:
            limits.append(self._fixed)
        if self._learned is not None:
            limits.append(self._learned / WINDOW_S)
        return min(limits)

    def _growth_locked(self, now: float) -> float:
        """Rate increase for one paced success; paced successes arrive about `rate` per second."""
        fast = math.log(2) / DOUBLING_TIME_S  # exponential growth, per success
        if self._ceiling is None:
            return fast
        target = self._ceiling * TARGET_FRACTION
        if self._rate < target:
            return min(fast, target - self._rate)
        probing = now - self._last_cut - PLATEAU_S
        if probing <= 0:
            return 0.0
        # Scaled by at least the starting rate, so a low estimate (a 429 while the key's budget
        # was shared) does not make recovery crawl.
        scale = max(self._ceiling, self._initial)
        slope = PROBE_PER_S * scale * 2.0 ** min(probing / PROBE_SPEEDUP_S, PROBE_MAX_DOUBLINGS)
        return slope / self._rate


_registry: dict[tuple[str, str], AdaptiveRateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(
    base_url: str,
    key_fingerprint: str,
    *,
    requests_per_minute: float | None = None,
    max_concurrency: int = 16,
) -> AdaptiveRateLimiter:
    """The process-wide limiter for one API key at one base URL."""
    registry_key = (base_url.rstrip("/"), key_fingerprint)
    with _registry_lock:
        limiter = _registry.get(registry_key)
        if limiter is None:
            limiter = AdaptiveRateLimiter(
                requests_per_minute=requests_per_minute, max_concurrency=max_concurrency
            )
            _registry[registry_key] = limiter
            return limiter
    limiter.tighten(requests_per_minute=requests_per_minute, max_concurrency=max_concurrency)
    return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter (tests and benchmarks start from a clean slate)."""
    with _registry_lock:
        _registry.clear()
