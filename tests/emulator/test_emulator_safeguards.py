"""Contract tests: the two rate-limit safeguards, latency and injected faults (in-process)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from held import held_burst
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig

RATE_LIMITED = {"error": {"code": "rate_limited", "message": "too many requests; back off and retry"}}


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def use_fake_clock(app: Starlette) -> FakeClock:
    clock = FakeClock()
    app.state.emulator.monotonic = clock
    return clock


async def post_user(client: httpx.AsyncClient, user_id: str) -> httpx.Response:
    return await client.post("/users", json={"id": user_id})


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(rate_limit_requests=2, rate_limit_window_s=10)])
async def test_request_rate_window_without_retry_after(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    clock = use_fake_clock(emulator_app)
    assert (await post_user(emulator_client, "u1")).status_code == 200
    clock.now += 4
    assert (await post_user(emulator_client, "u2")).status_code == 200
    rejected = await post_user(emulator_client, "u3")
    assert rejected.status_code == 429
    assert rejected.json() == RATE_LIMITED
    assert "retry-after" not in rejected.headers
    assert not [h for h in rejected.headers if h.startswith("x-ratelimit")]
    assert set(emulator_app.state.emulator.store.users) == {"u1", "u2"}
    # The window slides: the first request's slot frees 10 s after it was admitted.
    clock.now += 6.01
    assert (await post_user(emulator_client, "u3")).status_code == 200
    assert (await post_user(emulator_client, "u4")).status_code == 429


@pytest.mark.parametrize(
    "emulator_config", [EmulatorConfig(rate_limit_requests=2, rate_limit_window_s=10, retry_after=True)]
)
async def test_request_rate_window_with_retry_after(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    clock = use_fake_clock(emulator_app)
    await post_user(emulator_client, "u1")
    await post_user(emulator_client, "u2")
    clock.now += 3.5
    rejected = await post_user(emulator_client, "u3")
    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "7"  # ceil(10 - 3.5)
    assert rejected.json() == RATE_LIMITED
    clock.now += 6.4
    assert (await post_user(emulator_client, "u3")).headers["retry-after"] == "1"  # never below 1


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(rate_limit_requests=2, rate_limit_window_s=10)])
async def test_rejected_requests_do_not_consume_the_window(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    clock = use_fake_clock(emulator_app)
    await post_user(emulator_client, "u1")
    await post_user(emulator_client, "u2")
    for step in range(5):
        clock.now += 1.9
        assert (await post_user(emulator_client, f"r{step}")).status_code == 429
    clock.now += 0.6  # 10.1 s after the two admitted requests, 0.6 s after the last rejection
    assert (await post_user(emulator_client, "u3")).status_code == 200
    assert (await post_user(emulator_client, "u4")).status_code == 200


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(rate_limit_requests=1)])
async def test_inspection_api_is_not_rate_limited(emulator_client: httpx.AsyncClient) -> None:
    await post_user(emulator_client, "u1")
    assert (await post_user(emulator_client, "u2")).status_code == 429
    for _ in range(3):
        assert (await emulator_client.get("/__emulator/state")).status_code == 200


@pytest.mark.parametrize(
    ("emulator_config", "retry_after"),
    [
        (EmulatorConfig(max_concurrent=2), None),
        (EmulatorConfig(max_concurrent=2, retry_after=True), "1"),
    ],
)
async def test_concurrency_safeguard(
    emulator_app: Starlette, emulator_client: httpx.AsyncClient, retry_after: str | None
) -> None:
    responses = await held_burst(emulator_client, admitted=2, then=3)
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
    rejected = [r for r in responses if r.status_code == 429]
    assert all(r.json() == RATE_LIMITED and r.headers.get("retry-after") == retry_after for r in rejected)
    assert len(emulator_app.state.emulator.store.users) == 2
    stats = (await emulator_client.get("/__emulator/requests")).json()
    assert (stats["in_flight"], stats["peak_in_flight"]) == (0, 2)
    # Slots are released once requests finish.
    assert (await post_user(emulator_client, "later")).status_code == 200


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(latency_ms=50, latency_jitter_ms=20, fault_seed=3)])
async def test_latency_is_applied_within_jitter(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    emulator = emulator_app.state.emulator
    delays = [emulator.latency_s() for _ in range(200)]
    assert all(0.030 <= d <= 0.070 for d in delays)
    assert len(set(delays)) > 100
    loop = asyncio.get_running_loop()
    started = loop.time()
    await emulator_client.get("/users")
    assert loop.time() - started >= 0.030


async def test_queued_faults_hit_matching_requests_in_order(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    queued = await emulator_client.post("/__emulator/faults", json={"next": ["500", "503", "429"], "path_prefix": "/users"})
    assert queued.json()["pending"] == [
        {"kind": "500", "path_prefix": "/users", "method": None},
        {"kind": "503", "path_prefix": "/users", "method": None},
        {"kind": "429", "path_prefix": "/users", "method": None},
    ]
    # /groups does not match the prefix and is served normally.
    assert (await emulator_client.post("/groups", json={"id": "g1"})).status_code == 200
    first = await post_user(emulator_client, "u1")
    assert (first.status_code, first.json()["error"]["code"]) == (500, "internal_error")
    second = await post_user(emulator_client, "u1")
    assert (second.status_code, second.json()["error"]["code"]) == (503, "service_unavailable")
    third = await post_user(emulator_client, "u1")
    assert (third.status_code, third.json()) == (429, RATE_LIMITED)
    assert emulator_app.state.emulator.store.users == {}
    assert (await post_user(emulator_client, "u1")).status_code == 200
    assert (await emulator_client.get("/__emulator/faults")).json() == {"pending": []}


async def test_queued_fault_prefix_is_by_whole_segments_and_method(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/__emulator/faults", json={"next": ["500"], "path_prefix": "/users", "method": "GET"})
    assert (await post_user(emulator_client, "u1")).status_code == 200  # POST: not matched
    assert (await emulator_client.get("/users_x")).status_code == 404  # other segment: not matched
    assert (await emulator_client.get("/users/u1")).status_code == 500
    cleared = await emulator_client.post("/__emulator/faults", json={"next": ["503"]})
    assert len(cleared.json()["pending"]) == 1
    assert (await emulator_client.delete("/__emulator/faults")).json() == {"pending": []}
    assert (await emulator_client.get("/users/u1")).status_code == 200


async def test_queued_drop_before_writes_nothing(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/__emulator/faults", json={"next": ["drop_before"]})
    with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response."):
        await post_user(emulator_client, "u1")
    assert emulator_app.state.emulator.store.users == {}


async def test_queued_lost_response_applies_the_write(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/__emulator/faults", json={"next": ["lost_response", "lost_response"]})
    with pytest.raises(httpx.RemoteProtocolError):
        await emulator_client.post("/users", json={"id": "u1", "attributes": {"plan": "pro"}})
    with pytest.raises(httpx.RemoteProtocolError):
        await emulator_client.post("/events", json={"name": "signed_up", "user_id": "u1"})
    user = (await emulator_client.get("/users/u1")).json()
    assert user["attributes"] == {"plan": "pro"}
    assert len(emulator_app.state.emulator.store.events) == 1
    requests = (await emulator_client.get("/__emulator/requests")).json()
    assert requests["by_endpoint"]["POST /users"] == {"lost_response": 1}
    assert requests["log"][0]["status"] == 200 and requests["log"][0]["fault"] == "lost_response"
    assert requests["log"][0]["id"] == "u1"


async def test_faults_come_after_auth(emulator_app: Starlette) -> None:
    emulator_app.state.emulator.queue_faults(["500"], None, None)
    transport = httpx.ASGITransport(app=emulator_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        assert (await client.get("/users")).status_code == 401
    assert len(emulator_app.state.emulator.faults) == 1


@pytest.mark.parametrize(
    ("emulator_config", "status", "code"),
    [
        (EmulatorConfig(fault_500=1.0), 500, "internal_error"),
        (EmulatorConfig(fault_503=1.0), 503, "service_unavailable"),
    ],
)
async def test_random_5xx_at_probability_one_never_writes(
    emulator_app: Starlette, emulator_client: httpx.AsyncClient, status: int, code: str
) -> None:
    for n in range(5):
        response = await post_user(emulator_client, f"u{n}")
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
    assert emulator_app.state.emulator.store.users == {}


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(fault_drop_before=1.0)])
async def test_random_drop_before_never_writes(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await post_user(emulator_client, "u1")
    assert emulator_app.state.emulator.store.users == {}


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(fault_lost_response=1.0)])
async def test_random_lost_response_writes(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await post_user(emulator_client, "u1")
    assert set(emulator_app.state.emulator.store.users) == {"u1"}


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(fault_429=1.0)])
async def test_random_429_is_rate_limited_and_never_writes(emulator_app: Starlette, emulator_client: httpx.AsyncClient) -> None:
    response = await post_user(emulator_client, "u1")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert emulator_app.state.emulator.store.users == {}


async def outcomes(client: httpx.AsyncClient, count: int) -> list[str]:
    seen = []
    for n in range(count):
        try:
            seen.append(str((await post_user(client, f"u{n}")).status_code))
        except httpx.RemoteProtocolError:
            seen.append("dropped")
    return seen


async def test_seeded_random_faults_are_reproducible(emulator_app: Starlette) -> None:
    config = {"fault_500": 0.2, "fault_503": 0.2, "fault_drop_before": 0.1, "fault_lost_response": 0.1, "fault_429": 0.1, "fault_seed": 42}
    runs = []
    for _ in range(2):
        transport = httpx.ASGITransport(app=emulator_app)
        headers = {"Authorization": "Bearer uf_emulator_key"}
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator", headers=headers) as client:
            assert (await client.post("/__emulator/config", json=config)).status_code == 200
            await client.post("/__emulator/reset")
            runs.append(await outcomes(client, 60))
    assert runs[0] == runs[1]
    assert {"200", "500", "503", "429", "dropped"} <= set(runs[0])
    # About 40 % 5xx and 20 % drops over 60 draws; the seed makes this exact, not flaky.
    assert 10 <= runs[0].count("500") + runs[0].count("503") <= 38
    requests = emulator_app.state.emulator.log.to_json(0)
    assert requests["total"] == 60
    assert sum(requests["by_endpoint"]["POST /users"].values()) == 60
