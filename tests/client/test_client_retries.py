"""Which outcomes are retried, which are not, and which are ambiguous."""

from __future__ import annotations

import time

import pytest
from client_testkit import KEY, Target, fast_limiter
from ports import refused_port

from userflow_assets.client import (
    EventDelivery,
    UserflowAmbiguousError,
    UserflowAuthError,
    UserflowBadRequestError,
    UserflowClient,
    UserflowForbiddenError,
    UserflowNotFoundError,
    UserflowRateLimitError,
    UserflowServerError,
    UserflowTransportError,
)
from userflow_assets.emulator import EmulatorConfig

FAST_RETRY = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


async def _state_counts(target: Target) -> dict[str, int]:
    return (await target.inspect("GET", "/state?counts_only=true"))["counts"]


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "504", "drop_before", "lost_response"])
async def test_upsert_is_retried_until_it_succeeds(target: Target, fault: str) -> None:
    await target.queue_faults(fault, fault, path_prefix="/users")
    async with target.client(**FAST_RETRY) as client:
        user = await client.upsert_user("u1", {"n": 1})
        meta = client.metadata()
    assert user["attributes"] == {"n": 1}
    assert await target.outcomes("POST /users") == {fault: 2, "200": 1}
    assert (await _state_counts(target))["users"] == 1
    assert meta["userflow_requests"] == 3
    assert meta["userflow_retries"] == 2
    assert meta["userflow_rate_limited"] == (2 if fault == "429" else 0)
    assert meta["userflow_failures"] == 0


@pytest.mark.parametrize(
    ("fault", "error_type", "status", "code"),
    [
        ("503", UserflowServerError, 503, "service_unavailable"),
        ("500", UserflowServerError, 500, "internal_error"),
        ("429", UserflowRateLimitError, 429, "rate_limited"),
        ("drop_before", UserflowTransportError, None, None),
    ],
)
async def test_retries_are_bounded_and_end_in_a_typed_error(
    target: Target, fault: str, error_type: type[Exception], status: int | None, code: str | None
) -> None:
    await target.queue_faults(fault, fault, fault, path_prefix="/groups")
    async with target.client(max_attempts=3, **FAST_RETRY) as client:
        with pytest.raises(error_type) as caught:
            await client.upsert_group("g/1", {"name": "Acme"})
    error = caught.value
    assert isinstance(error, (UserflowServerError, UserflowRateLimitError, UserflowTransportError))
    assert (error.status, error.code, error.record_id, error.attempts) == (status, code, "g/1", 3)
    assert error.method == "POST" and error.path == "/groups"
    assert sum((await target.outcomes("POST /groups")).values()) == 3


async def test_retry_time_is_bounded(target: Target) -> None:
    await target.queue_faults(*["503"] * 10, path_prefix="/users")
    async with target.client(max_attempts=10, max_retry_time_s=0.3, backoff_base_s=0.1, backoff_max_s=0.1) as client:
        with pytest.raises(UserflowServerError) as caught:
            await client.upsert_user("u1")
    # Each wait is at least half the 0.1 s backoff, so 0.3 s of retrying allows at most 6
    # waits: 7 attempts (fewer on a busy machine), never the 10 that max_attempts would.
    assert 2 <= caught.value.attempts <= 7
    assert sum((await target.outcomes("POST /users")).values()) == caught.value.attempts


async def test_bad_request_is_not_retried(target: Target) -> None:
    async with target.client(**FAST_RETRY) as client:
        with pytest.raises(UserflowBadRequestError) as caught:
            await client.upsert_user("u1", {"nested": {"not": "allowed"}})
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (400, "invalid_params", 1)
    assert caught.value.record_id == "u1"
    assert await target.outcomes("POST /users") == {"400": 1}


async def test_wrong_key_is_not_retried(target: Target) -> None:
    async with target.client("uf_not_the_key", **FAST_RETRY) as client:
        with pytest.raises(UserflowAuthError) as caught:
            await client.upsert_group("g1")
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (401, "unauthorized", 1)
    assert await target.outcomes("POST /groups") == {"401": 1}


async def test_forbidden_is_not_retried(target: Target) -> None:
    await target.queue_faults("403", path_prefix="/users")
    async with target.client(**FAST_RETRY) as client:
        with pytest.raises(UserflowForbiddenError) as caught:
            await client.upsert_user("u1", {"n": 1})
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (403, "forbidden", 1)
    assert await target.outcomes("POST /users") == {"403": 1}


@pytest.mark.parametrize("fault", ["502", "504"])
async def test_gateway_error_on_an_event_is_ambiguous(target: Target, fault: str) -> None:
    # A gateway may have passed the event on before failing: it may have been recorded.
    await target.queue_faults(fault, path_prefix="/events")
    async with target.client(**FAST_RETRY) as client:
        with pytest.raises(UserflowAmbiguousError) as caught:
            await client.track_event("signed up", user_id="u1")
    assert (caught.value.status, caught.value.attempts) == (int(fault), 1)
    assert await target.outcomes("POST /events") == {fault: 1}


async def test_not_found_is_not_retried(target: Target) -> None:
    async with target.client(**FAST_RETRY) as client:
        with pytest.raises(UserflowNotFoundError) as caught:
            await client.get_content_version("missing")
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (404, "not_found", 1)
    assert await target.outcomes("GET /content_versions/{id}") == {"404": 1}


@pytest.mark.parametrize("fault", ["429", "500", "503"])
async def test_event_refused_by_the_server_is_retried_once_recorded(target: Target, fault: str) -> None:
    await target.queue_faults(fault, path_prefix="/events")
    async with target.client(**FAST_RETRY) as client:
        event = await client.track_event("signed up", user_id="u1")
    assert event["name"] == "signed up"
    assert await target.outcomes("POST /events") == {fault: 1, "200": 1}
    assert (await _state_counts(target))["events"] == 1


@pytest.mark.parametrize(("fault", "applied"), [("drop_before", 0), ("lost_response", 1)])
async def test_event_without_answer_is_ambiguous_and_not_retried(target: Target, fault: str, applied: int) -> None:
    await target.queue_faults(fault, path_prefix="/events")
    async with target.client(**FAST_RETRY) as client:
        with pytest.raises(UserflowAmbiguousError) as caught:
            await client.track_event("signed up", user_id="u/1")
        meta = client.metadata()
    assert (caught.value.attempts, caught.value.record_id, caught.value.status) == (1, "u/1", None)
    assert await target.outcomes("POST /events") == {fault: 1}
    assert (await _state_counts(target))["events"] == applied  # the client cannot tell which
    assert (meta["userflow_ambiguous"], meta["userflow_retries"]) == (1, 0)


async def test_event_at_least_once_retries_and_may_duplicate(target: Target) -> None:
    await target.queue_faults("lost_response", path_prefix="/events")
    async with target.client(**FAST_RETRY) as client:
        event = await client.track_event("signed up", user_id="u1", delivery=EventDelivery.AT_LEAST_ONCE)
        meta = client.metadata()
    assert event["name"] == "signed up"
    assert await target.outcomes("POST /events") == {"lost_response": 1, "200": 1}
    assert (await _state_counts(target))["events"] == 2
    assert meta["userflow_possible_duplicates"] == 1


async def test_each_unanswered_attempt_counts_as_a_possible_duplicate(target: Target) -> None:
    await target.queue_faults("lost_response", "lost_response", path_prefix="/events")
    async with target.client(max_attempts=3, **FAST_RETRY) as client:
        await client.track_event("signed up", user_id="u1", delivery=EventDelivery.AT_LEAST_ONCE)
        meta = client.metadata()
    assert (await _state_counts(target))["events"] == 3
    assert meta["userflow_possible_duplicates"] == 2


async def test_event_at_least_once_failing_after_an_ambiguous_attempt_stays_ambiguous(target: Target) -> None:
    await target.queue_faults("lost_response", "503", "503", path_prefix="/events")
    async with target.client(max_attempts=3, **FAST_RETRY) as client:
        with pytest.raises(UserflowAmbiguousError) as caught:
            await client.track_event("x", user_id="u1", delivery=EventDelivery.AT_LEAST_ONCE)
    assert (caught.value.attempts, caught.value.status) == (3, 503)
    assert (await _state_counts(target))["events"] == 1



@pytest.mark.parametrize("call", ["upsert", "event"])
async def test_connection_refused_is_a_clean_failure_after_retries(call: str) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        async with UserflowClient(KEY, base_url=url, limiter=fast_limiter(), max_attempts=3, **FAST_RETRY) as client:
            with pytest.raises(UserflowTransportError) as caught:
                if call == "upsert":
                    await client.upsert_user("u1")
                else:
                    await client.track_event("x", user_id="u1")
            meta = client.metadata()
    assert not isinstance(caught.value, UserflowAmbiguousError)  # nothing reached the server
    assert caught.value.attempts == 3
    assert "ConnectError" in str(caught.value)
    assert (meta["userflow_transport_errors"], meta["userflow_ambiguous"]) == (3, 0)


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(latency_ms=1500)])
async def test_read_timeout_retries_upserts_and_makes_events_ambiguous(port_target: Target) -> None:
    options = {"read_timeout_s": 0.2, "max_attempts": 2, **FAST_RETRY}
    async with port_target.client(**options) as client:
        with pytest.raises(UserflowTransportError) as upsert_error:
            await client.upsert_user("u1")
        with pytest.raises(UserflowAmbiguousError) as event_error:
            await client.track_event("x", user_id="u1")
    assert upsert_error.value.attempts == 2
    assert "ReadTimeout" in str(upsert_error.value)
    assert event_error.value.attempts == 1
    assert "ReadTimeout" in str(event_error.value)
    # Whether the server applied what it was sent is exactly what the client cannot know, so
    # nothing is asserted about the emulator's side here.


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(retry_after=True)])
async def test_retry_after_is_honoured(target: Target) -> None:
    async with target.client(**FAST_RETRY) as client:
        await client.upsert_group("g0")
        await target.queue_faults("429", path_prefix="/groups", method="POST")
        started = time.monotonic()
        await client.upsert_group("g1")
        elapsed = time.monotonic() - started
        await client.upsert_group("g2")
    # The second request drew a 429 with Retry-After: 1 and waited it out instead of hammering
    # (a wait is a lower bound: a busy machine only makes it longer).
    assert await target.outcomes("POST /groups") == {"200": 3, "429": 1}
    assert elapsed >= 1.0
