"""The shared limiter: a known rate is never exceeded; an unknown one is learned from 429s."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest
from client_testkit import KEY, Target

from userflow_assets.client import AdaptiveRateLimiter, UserflowResource, shared_limiter
from userflow_assets.client.ratelimit import Ticket
from userflow_assets.emulator import EmulatorConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _grant_times(limiter: AdaptiveRateLimiter, clock: FakeClock, count: int) -> list[float]:
    times: list[float] = []
    while len(times) < count:
        delay = limiter.try_grant()
        if delay > 0:
            clock.now += delay
        else:
            times.append(clock.now)
    return times


def _max_in_window(times: list[float], window: float) -> int:
    best = 0
    recent: deque[float] = deque()
    for t in times:
        recent.append(t)
        while recent[0] <= t - window:
            recent.popleft()
        best = max(best, len(recent))
    return best


def test_known_rate_is_never_exceeded_in_any_minute() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(requests_per_minute=120, clock=clock)
    times = _grant_times(limiter, clock, 600)
    assert _max_in_window(times, 60.0) == 120
    assert times[-1] - times[0] == pytest.approx(599 * 0.5)


def test_known_rate_stays_a_ceiling_even_after_successes() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(requests_per_minute=60, clock=clock)
    for _ in range(1000):
        limiter.on_success(Ticket(clock.now, 1.0, paced=True, in_flight=1, concurrency_bound=False))
    assert limiter.snapshot().rate_per_minute == 60.0
    assert _max_in_window(_grant_times(limiter, clock, 200), 60.0) == 60


def test_unknown_rate_starts_at_500_per_minute_and_grows_while_paced() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock=clock)
    assert limiter.snapshot().rate_per_minute == pytest.approx(500.0)
    for _ in range(10):
        limiter.on_success(Ticket(clock.now, 500 / 60, paced=False, in_flight=1, concurrency_bound=False))
    assert limiter.snapshot().rate_per_minute == pytest.approx(500.0)  # an idle caller does not inflate the rate
    limiter.on_success(Ticket(clock.now, 500 / 60, paced=True, in_flight=1, concurrency_bound=False))
    assert limiter.snapshot().rate_per_minute > 500.0


def test_429_cuts_once_per_overload_and_keeps_the_estimate() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(initial_per_minute=6000, clock=clock)  # 100/s
    for _ in range(160):  # the server has been accepting 80 per second
        clock.now += 1 / 80
        limiter.on_success(Ticket(clock.now, 100.0, paced=False, in_flight=1, concurrency_bound=False))
    ticket = Ticket(clock.now, 100.0, paced=True, in_flight=1, concurrency_bound=False)
    clock.now += 0.01
    limiter.on_rate_limited(ticket)
    snap = limiter.snapshot()
    assert snap.ceiling_per_minute == pytest.approx(80 * 60)
    assert snap.rate_per_minute == pytest.approx(80 * 60 * 0.8)
    # Another 429 for a request sent before the cut is the same overload: no second cut.
    limiter.on_rate_limited(ticket)
    assert limiter.snapshot().rate_per_minute == pytest.approx(80 * 60 * 0.8)


def test_retry_after_pauses_every_request() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(initial_per_minute=60_000, clock=clock)
    ticket = Ticket(clock.now, 1000.0, paced=False, in_flight=1, concurrency_bound=False)
    limiter.on_rate_limited(ticket, retry_after=2.0)
    assert limiter.try_grant() == pytest.approx(2.0)


def test_explicit_concurrency_429_lowers_the_cap() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(max_concurrency=16, clock=clock)
    clock.now += 1
    limiter.on_rate_limited(Ticket(clock.now - 0.5, 8.0, False, in_flight=12, concurrency_bound=False), concurrency=True)
    assert limiter.snapshot().concurrency_cap == 9  # 12 in flight * 0.75
    assert limiter.snapshot().rate_per_minute == pytest.approx(500.0)  # the rate was not the problem


def test_same_key_shares_one_limiter_per_process() -> None:
    a = shared_limiter("https://api.userflow.com/", "sha256:aaa")
    assert shared_limiter("https://api.userflow.com", "sha256:aaa") is a
    assert shared_limiter("https://api.userflow.com", "sha256:bbb") is not a
    assert shared_limiter("https://api.eu.userflow.com", "sha256:aaa") is not a
    resource = UserflowResource(api_key=KEY, base_url="http://127.0.0.1:9")
    assert resource.get_client().limiter is resource.get_client().limiter


async def test_concurrency_cap_is_honoured_across_clients(asgi_target: Target) -> None:
    limiter = AdaptiveRateLimiter(initial_per_minute=600_000, max_concurrency=3)
    await asgi_target.inspect("POST", "/hold")  # admitted requests stay in flight until released
    async with asgi_target.client(limiter=limiter) as one, asgi_target.client(limiter=limiter) as two:
        sent = asyncio.gather(*(c.upsert_user(f"u{n}") for n in range(12) for c in (one, two)))
        while (await asgi_target.inspect("GET", "/requests"))["in_flight"] < 3:
            await asyncio.sleep(0.01)
        await asgi_target.inspect("POST", "/release")
        await sent
    requests = await asgi_target.inspect("GET", "/requests")
    assert (requests["peak_in_flight"], requests["by_endpoint"]["POST /users"]) == (3, {"200": 24})


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(max_concurrent=2)])
async def test_concurrency_safeguard_429s_lower_the_cap_and_everything_lands(asgi_target: Target) -> None:
    limiter = AdaptiveRateLimiter(initial_per_minute=6000, max_concurrency=8)
    async with asgi_target.client(limiter=limiter, backoff_base_s=0.02, max_attempts=10) as client:
        await client.upsert_user("warm")  # a success at one in flight: what the server has proven

        async def upsert_all() -> list[Any]:
            return [r async for r in client.bulk(range(40), lambda n: client.upsert_user(f"u{n}"))]

        # Two requests held in flight, so the rest meet the server's cap of 2 for certain.
        await asgi_target.inspect("POST", "/hold")
        sending = asyncio.ensure_future(upsert_all())
        while limiter.snapshot().concurrency_cap >= 8:
            await asyncio.sleep(0.01)
        await asgi_target.inspect("POST", "/release")
        results = await sending
    assert [r.ok for r in results] == [True] * 40
    assert limiter.snapshot().concurrency_cap < 8
    assert (await asgi_target.outcomes("POST /users"))["200"] == 41


@pytest.mark.slow
@pytest.mark.parametrize("emulator_config", [EmulatorConfig(rate_limit_requests=40, rate_limit_window_s=1.0, latency_ms=10)])
async def test_an_unknown_limit_on_a_real_port_loses_nothing(port_target: Target) -> None:
    # How fast the limit is learned is timed on a fake clock (test_client_ratelimit_sim.py);
    # on a real port and a real clock, what holds however busy the machine is: all land once.
    async with port_target.client(limiter=AdaptiveRateLimiter(max_concurrency=16)) as client:
        results = [r async for r in client.bulk(range(240), lambda n: client.upsert_group(f"g{n}"))]
    assert [r.ok for r in results] == [True] * 240
    assert (await port_target.outcomes("POST /groups"))["200"] == 240


async def test_cancelled_waiters_do_not_block_the_line() -> None:
    limiter = AdaptiveRateLimiter(initial_per_minute=600, max_concurrency=4)  # 10/s
    first = await limiter.acquire()
    assert first.paced is False
    waiting = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)  # let them queue: one sleeps at the head, two wait behind it
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    limiter.release()
    ticket = await asyncio.wait_for(limiter.acquire(), timeout=60)  # due in 0.1 s; only a hang waits longer
    assert ticket.in_flight == 1
    assert limiter.snapshot().in_flight == 1
