"""`userflow.allow_insecure_http` in the spec: a plain-http base URL off loopback is refused by
the component's own resource unless the spec allows it, and then the sync really runs over it."""

import socket
from pathlib import Path

import dagster as dg
import pytest
from harness import emulator_get, serve_emulator
from security_kit import make_spec, make_warehouse, run_sync

from userflow_assets.spec import SyncSpec

KEY = "uf_security_spec_http_key"
REFUSAL = "base_url must use https (plain http is allowed only for loopback)"


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def spec_with(root: Path, url: str, **userflow: object) -> SyncSpec:
    spec = make_spec(root, url)
    return SyncSpec.model_validate(
        spec.model_dump() | {"userflow": spec.userflow.model_dump() | {"base_url": url, **userflow}}
    )


def sync_with_own_resources(spec: SyncSpec) -> dg.ExecuteInProcessResult:
    """The sync through the resources the component built (not a test's own client)."""
    return run_sync(spec, own_resources=True)


def test_spec_field_defaults_to_refusing() -> None:
    assert (
        SyncSpec.model_validate(
            {"users": {"query": "users.sql", "id_column": "user_id", "mapping": {"name": "name"}}}
        ).userflow.allow_insecure_http
        is False
    )


def test_plain_http_from_the_spec_is_refused_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    make_warehouse(tmp_path, ["u1"])
    result = sync_with_own_resources(spec_with(tmp_path, "http://userflow.internal.example:8080"))
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    assert REFUSAL in "\n".join(repr(e) for e in result.all_events)


def test_plain_http_from_the_spec_syncs_when_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve the emulator on")
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    make_warehouse(tmp_path, ["u1", "u2"])
    with serve_emulator(KEY, host=address) as emulator:
        url = emulator.url
        assert url.startswith(f"http://{address}:")
        refused = sync_with_own_resources(spec_with(tmp_path, url))
        assert not refused.success
        assert REFUSAL in "\n".join(repr(e) for e in refused.all_events)

        allowed = spec_with(tmp_path, url, allow_insecure_http=True)
        assert allowed.userflow.allow_insecure_http is True
        result = sync_with_own_resources(allowed)
        assert result.success
        state = emulator_get(url, "state")
    assert {u["id"] for u in state["users"]} == {"u1", "u2"}
    assert {g["id"] for g in state["groups"]} == {"a1"}
