"""Fault soak (small; benchmarks/reliability.py runs 10,000 users): the sync under 500/503s,
429s, dropped connections, lost responses and latency jitter ends with exactly what a
fault-free run leaves in Userflow; no event is lost, and events are duplicated only by lost
responses under at_least_once, each counted in the run's metadata."""

from pathlib import Path

import pytest
from reliability_kit import soak

# A long soak: `make bench` runs it (and benchmarks/reliability.py's 10,000-user soak); `make test` does not.
pytestmark = [pytest.mark.slow, pytest.mark.soak]

USERS = 300
EVENTS = 600
# 429s both at random (the soak's 5%) and from the emulator's rate safeguard, a limit the
# client is not told and adapts to.
RATE_LIMIT_PER_S = 60


def test_fault_soak_converges_to_the_fault_free_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERFLOW_API_KEY", "unused")  # soak() sets its own key
    result = soak(tmp_path, USERS, EVENTS, seed=5, rate_limit_per_s=RATE_LIMIT_PER_S)
    # Every fault kind actually happened.
    assert all(result.injected[kind] > 0 for kind in ("500", "503", "429", "drop_before", "lost_response")), result.injected
    # Converged within the runs allowed (how many a busy machine needs varies; the state below is what must hold).
    assert result.successes[-1]
    assert result.faulty.objects() == result.reference.objects()
    # No event lost; copies only from lost responses, each one counted.
    assert set(result.faulty.event_refs) == set(result.reference.event_refs)
    assert result.duplicated_events() == result.lost_event_posts
    # The metadata counts the resends after no answer: at least every real copy, at most every
    # resend (a drop before the write looks the same to the client as a lost response).
    resent = result.lost_event_posts + result.dropped_event_posts
    assert result.lost_event_posts <= result.possible_duplicates_reported <= resent
