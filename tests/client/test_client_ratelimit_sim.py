"""The adaptive limiter against server models it is not told about, simulated on a fake clock:
short windows, a per-minute quota, a share of 429s answered at random, and both together."""

import pytest
from limiter_sim import Server, simulate


@pytest.mark.parametrize("limit", [10, 100, 300])
def test_a_short_window_limit_is_held_just_under(limit: int) -> None:
    result = simulate(Server(limit=limit, window_s=1.0), seconds=120)
    assert 0.93 <= result.steady_per_s / limit <= 1.0
    assert result.share_429 <= 0.02


def test_a_per_minute_quota_is_learned_and_kept() -> None:
    quota = 500  # the limit one Userflow customer reported
    result = simulate(Server(limit=quota, window_s=60.0), seconds=600, warmup_s=60)
    # The first minute spends the quota in a burst; from then on it is paced, not hammered.
    assert result.ok / 600 >= 0.95 * quota / 60
    assert result.steady_per_s >= 0.9 * quota / 60
    assert result.share_429 <= 0.05
    after_first_minute = simulate(Server(limit=quota, window_s=60.0), seconds=60, warmup_s=0)
    assert result.rate_limited - after_first_minute.rate_limited <= 10


def test_random_429s_do_not_stall_the_rate() -> None:
    # Before noise was learned, a steady 5% of 429s drove the rate down to about 4 per second.
    result = simulate(Server(noise=0.05), seconds=120)
    assert result.steady_per_s >= 100
    assert result.share_429 == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize(("limit", "noise"), [(100, 0.05), (300, 0.02)])
def test_random_429s_on_top_of_a_limit(limit: int, noise: float) -> None:
    result = simulate(Server(limit=limit, window_s=1.0, noise=noise), seconds=300, warmup_s=60)
    assert result.steady_per_s >= 0.9 * limit
    # The limit still holds: few 429s beyond the random ones.
    assert result.share_429 <= noise + 0.03


def test_random_429s_on_top_of_a_per_minute_quota() -> None:
    quota = 500
    result = simulate(Server(limit=quota, window_s=60.0, noise=0.05), seconds=600, warmup_s=60)
    assert result.steady_per_s >= 0.9 * quota / 60
    assert result.share_429 <= 0.12


def test_a_run_resumed_from_learned_limits_skips_the_opening_burst() -> None:
    quota = Server(limit=500, window_s=60.0)
    first = simulate(quota, seconds=120, warmup_s=0)
    assert first.learned is not None and first.learned.quota_per_window == 500
    assert first.rate_limited > 10  # it had to find the quota: a burst, then 429s
    # The next run (a new process, the server's window long since empty) starts at the quota.
    second = simulate(Server(limit=500, window_s=60.0), seconds=120, warmup_s=0, resume=first.learned)
    assert second.rate_limited <= 2
    assert second.ok >= 0.95 * 500 * 2


def test_a_resumed_short_window_limit_is_held_from_the_start() -> None:
    first = simulate(Server(limit=100, window_s=1.0), seconds=60)
    assert first.learned is not None and first.learned.ceiling_per_minute
    second = simulate(Server(limit=100, window_s=1.0), seconds=5, warmup_s=0, resume=first.learned)
    assert second.ok >= 0.9 * 100 * 5  # no climb from 500/min first
    assert second.rate_limited == 0


def test_an_unknown_short_window_limit_is_learned_within_a_few_hundred_requests() -> None:
    # What the port test used to time on the real clock: 40/s, not told, learned in ~6 s of traffic.
    result = simulate(Server(limit=40, window_s=1.0), seconds=6.5, latency_s=0.01, warmup_s=0.0)
    assert result.rate_limited <= 0.1 * (result.ok + result.rate_limited)
    assert result.learned is not None and result.learned.ceiling_per_minute is not None
    assert 30 * 60 <= result.learned.ceiling_per_minute <= 44 * 60
