"""Contract tests: the inspection API under /__emulator/ and config validation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from held import until_in_flight
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig


@pytest.fixture
async def anonymous(emulator_app: Starlette) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url="http://emulator") as client:
        yield client


async def test_state_shows_everything_written(emulator_client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    await emulator_client.post("/users", json={"id": "u1", "attributes": {"n": 1}, "groups": [{"id": "g1"}]})
    await emulator_client.post("/events", json={"name": "opened", "user_id": "u1"})
    state = (await anonymous.get("/__emulator/state")).json()
    assert [u["id"] for u in state["users"]] == ["u1"]
    assert state["users"][0]["attributes"] == {"n": 1}
    assert [g["id"] for g in state["groups"]] == ["g1"]
    assert [(m["user_id"], m["group_id"]) for m in state["memberships"]] == [("u1", "g1")]
    assert [e["name"] for e in state["events"]] == ["opened"]
    assert [d["name"] for d in state["attribute_definitions"]] == ["n"]
    assert [d["name"] for d in state["event_definitions"]] == ["opened"]
    assert state["counts"] == {
        "users": 1, "groups": 1, "memberships": 1, "events": 1, "attribute_definitions": 1,
        "event_definitions": 1, "content": 5, "content_versions": 10, "content_sessions": 24,
    }
    assert (await anonymous.get("/__emulator/state", params={"counts_only": "true"})).json() == {"counts": state["counts"]}


async def test_requests_counts_by_template_and_status(emulator_client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    await emulator_client.post("/users", json={"id": "a/b"})
    await emulator_client.get("/users/a%2Fb")
    await emulator_client.get("/users/missing")
    await anonymous.get("/users")
    await emulator_client.get("/nowhere")
    stats = (await anonymous.get("/__emulator/requests", params={"limit": 2})).json()
    assert stats["total"] == 5
    assert stats["by_endpoint"] == {
        "GET /users": {"401": 1},
        "GET /users/{id}": {"200": 1, "404": 1},
        "GET <unknown>": {"404": 1},
        "POST /users": {"200": 1},
    }
    assert [(e["method"], e["path"], e["id"], e["status"]) for e in stats["log"]] == [
        ("GET", "/users", None, 401),
        ("GET", "<unknown>", None, 404),
    ]
    assert (await anonymous.get("/__emulator/requests", params={"limit": "x"})).status_code == 400


async def test_reset_clears_data_and_log_but_keeps_config(emulator_client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    await anonymous.post("/__emulator/config", json={"delete_status": 204})
    await emulator_client.post("/users", json={"id": "u1"})
    await anonymous.post("/__emulator/faults", json={"next": ["500"]})
    reset = (await anonymous.post("/__emulator/reset")).json()
    assert reset["reset"] is True
    assert reset["counts"]["users"] == 0 and reset["counts"]["content_sessions"] == 24
    assert (await anonymous.get("/__emulator/requests")).json()["total"] == 0
    assert (await anonymous.get("/__emulator/faults")).json() == {"pending": []}
    assert (await anonymous.get("/__emulator/config")).json()["delete_status"] == 204


async def test_config_is_shown_with_the_key_redacted(anonymous: httpx.AsyncClient) -> None:
    config = (await anonymous.get("/__emulator/config")).json()
    assert config == {
        "api_key": "***",
        "rate_limit_requests": None,
        "rate_limit_window_s": 60.0,
        "max_concurrent": None,
        "retry_after": False,
        "latency_ms": 0.0,
        "latency_jitter_ms": 0.0,
        "fault_500": 0.0,
        "fault_503": 0.0,
        "fault_drop_before": 0.0,
        "fault_lost_response": 0.0,
        "fault_429": 0.0,
        "fault_seed": None,
        "delete_status": 200,
        "seed_content": True,
    }


async def test_config_update_applies_at_run_time(emulator_client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    updated = await anonymous.post("/__emulator/config", json={"api_key": "rotated", "rate_limit_requests": 1, "retry_after": True})
    assert updated.status_code == 200
    assert (updated.json()["api_key"], updated.json()["rate_limit_requests"]) == ("***", 1)
    assert "rotated" not in updated.text
    assert (await emulator_client.get("/users")).status_code == 401  # old key no longer works
    headers = {"Authorization": "Bearer rotated"}
    assert (await emulator_client.get("/users", headers=headers)).status_code == 200
    limited = await emulator_client.get("/users", headers=headers)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "60")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fault_500": 1.5}, "fault_500 must be a probability between 0 and 1"),
        ({"fault_500": 0.6, "fault_503": 0.6}, "fault probabilities must add up to at most 1"),
        ({"rate_limit_requests": 0}, "rate_limit_requests must be null or an integer >= 1"),
        ({"max_concurrent": "2"}, "max_concurrent must be null or an integer >= 1"),
        ({"rate_limit_window_s": 0}, "rate_limit_window_s must be a number > 0"),
        ({"delete_status": 202}, "delete_status must be 200 or 204"),
        ({"api_key": ""}, "api_key must be a non-empty string"),
        ({"retry_after": "yes"}, "retry_after must be a boolean"),
        ({"latency_ms": -1}, "latency_ms must be a number >= 0"),
        ({"colour": "red"}, "unknown config field(s): colour"),
    ],
)
async def test_config_update_is_validated(anonymous: httpx.AsyncClient, changes: dict[str, Any], message: str) -> None:
    response = await anonymous.post("/__emulator/config", json=changes)
    assert response.json() == {"error": {"code": "invalid_params", "message": message}}
    assert (await anonymous.get("/__emulator/config")).json()["fault_500"] == 0.0


@pytest.mark.parametrize(
    "body",
    [{"next": []}, {"next": ["timeout"]}, {"next": "500"}, {"next": ["500"], "path_prefix": "users"}, {"next": ["500"], "when": 1}],
)
async def test_fault_queue_is_validated(anonymous: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await anonymous.post("/__emulator/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_params"
    assert (await anonymous.get("/__emulator/faults")).json() == {"pending": []}


def test_config_repr_hides_the_key() -> None:
    config = EmulatorConfig(api_key="very-secret")
    assert "very-secret" not in repr(config)
    with pytest.raises(ValueError, match="fault_503"):
        EmulatorConfig(fault_503=-0.1)


async def test_inspection_routes_answer_errors_in_userflow_shape(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/__emulator/reset")
    assert response.status_code == 405
    assert response.json() == {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}
    assert (await anonymous.post("/__emulator/config", content=b"[1]")).json()["error"]["code"] == "invalid_params"


async def test_hold_keeps_requests_in_flight_until_released_or_reset(
    emulator_client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    assert (await anonymous.post("/__emulator/hold")).json() == {"held": True, "in_flight": 0}
    held = asyncio.ensure_future(emulator_client.post("/users", json={"id": "u1"}))
    await until_in_flight(anonymous, 1)
    assert not held.done()
    assert (await anonymous.get("/__emulator/state", params={"counts_only": "true"})).json()["counts"]["users"] == 0
    assert (await anonymous.post("/__emulator/release")).json() == {"held": False, "in_flight": 1}
    assert (await held).status_code == 200
    await anonymous.post("/__emulator/hold")
    await anonymous.post("/__emulator/reset")
    assert (await emulator_client.post("/users", json={"id": "u2"})).status_code == 200


async def test_a_wait_for_requests_in_flight_names_a_bad_count(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/__emulator/requests", params={"in_flight_at_least": "two"})
    assert response.status_code == 400
    assert "in_flight_at_least" in response.json()["error"]["message"]
