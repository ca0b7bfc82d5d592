"""No log line, exception or repr of a run shows the API key (invariant 6)."""

from __future__ import annotations

import logging
import traceback

import pytest
from client_testkit import Target

from userflow_assets.client import (
    UserflowAuthError,
    UserflowRateLimitError,
    UserflowResource,
    UserflowServerError,
    UserflowTransportError,
    redact,
)
from userflow_assets.emulator import EmulatorConfig

SECRET = "uf_live_5ecretKey_0123456789abcdef"
WRONG = "uf_live_wrongKey_fedcba9876543210"
FAST_RETRY = {"backoff_base_s": 0.01, "backoff_max_s": 0.02}


def _texts_of(error: BaseException) -> list[str]:
    logging.getLogger("userflow_assets.client").exception("request failed: %s", error)
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(api_key=SECRET)])
async def test_key_appears_in_no_log_exception_or_repr(port_target: Target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything, httpx and httpcore included
    texts: list[str] = []

    async with port_target.client(WRONG, **FAST_RETRY) as client:
        with pytest.raises(UserflowAuthError) as unauthorized:
            await client.upsert_user("u1")
        texts += _texts_of(unauthorized.value) + [repr(client)]

    async with port_target.client(SECRET, max_attempts=3, **FAST_RETRY) as client:
        await port_target.queue_faults("429", "500", path_prefix="/users")
        await client.upsert_user("u1", {"plan": "pro"})  # retried through a 429 and a 500
        await port_target.queue_faults("429", "429", "429", path_prefix="/groups")
        with pytest.raises(UserflowRateLimitError) as limited:
            await client.upsert_group("g1")
        await port_target.queue_faults("500", "500", "500", path_prefix="/groups")
        with pytest.raises(UserflowServerError) as server_error:
            await client.upsert_group("g1")
        texts += _texts_of(limited.value) + _texts_of(server_error.value)
        texts += [repr(client), str(client.metadata())]

    await port_target.inspect("POST", "/config", {"latency_ms": 1000})
    async with port_target.client(SECRET, read_timeout_s=0.2, max_attempts=1) as client:
        with pytest.raises(UserflowTransportError) as timed_out:
            await client.get_user("u1")
        texts += _texts_of(timed_out.value)

    resource = UserflowResource(api_key=SECRET, base_url=port_target.base_url)
    texts += [repr(resource), str(resource), repr(resource.get_client())]
    texts += [caplog.text] + [record.getMessage() for record in caplog.records]

    everything = "\n".join(texts)
    assert SECRET not in everything
    assert WRONG not in everything
    # The run did produce what was searched: the failures and the retry log lines.
    assert "401 unauthorized" in everything
    assert "429 rate_limited" in everything
    assert "500 internal_error" in everything
    assert "ReadTimeout" in everything
    assert "retrying after POST /users" in caplog.text


def test_redact_hides_registered_keys_and_bearer_tokens() -> None:
    from userflow_assets.redaction import register_secret

    register_secret("uf_live_registered_1234")
    assert redact("key uf_live_registered_1234 here") == "key [redacted] here"
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer [redacted]"
