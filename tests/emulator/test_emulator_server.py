"""The emulator on a real port: dropped connections, parallel requests, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from held import held_burst

from userflow_assets.emulator import EmulatorConfig, running_emulator

AUTH = {"Authorization": "Bearer uf_emulator_key"}


def counts(client: httpx.Client) -> dict[str, int]:
    return client.get("/__emulator/state", params={"counts_only": "true"}).json()["counts"]


def test_drop_before_and_lost_response_are_transport_errors(emulator_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    with httpx.Client(base_url=emulator_url, headers=AUTH, timeout=10) as client:
        client.post("/__emulator/faults", json={"next": ["drop_before"], "path_prefix": "/users"})
        with pytest.raises(httpx.TransportError):
            client.post("/users", json={"id": "dropped"})
        assert counts(client)["users"] == 0
        client.post("/__emulator/faults", json={"next": ["lost_response"], "path_prefix": "/users"})
        with pytest.raises(httpx.TransportError):
            client.post("/users", json={"id": "applied", "attributes": {"plan": "pro"}})
        assert client.get("/users/applied").json()["attributes"] == {"plan": "pro"}
        stats = client.get("/__emulator/requests").json()
        assert stats["by_endpoint"]["POST /users"] == {"drop_before": 1, "lost_response": 1}
    # The server aborted the sockets on purpose: nothing reported as an application error.
    assert "ASGI callable" not in capfd.readouterr().err


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(max_concurrent=3, retry_after=True)])
async def test_concurrency_limit_with_parallel_connections(emulator_url: str) -> None:
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=emulator_url, headers=AUTH, limits=limits, timeout=60) as client:
        responses = await held_burst(client, admitted=3, then=5)
        assert [r.status_code for r in responses] == [200] * 3 + [429] * 5
        assert {r.headers.get("retry-after") for r in responses if r.status_code == 429} == {"1"}
        stats = (await client.get("/__emulator/requests")).json()
        assert (stats["peak_in_flight"], stats["in_flight"]) == (3, 0)
        assert stats["by_endpoint"]["POST /users"] == {"200": 3, "429": 5}


def test_hundreds_of_concurrent_requests(emulator_url: str) -> None:
    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=210)  # the held 200, plus room to inspect and release
        async with httpx.AsyncClient(base_url=emulator_url, headers=AUTH, limits=limits, timeout=60) as client:
            return [r.status_code for r in await held_burst(client, admitted=200)]

    assert asyncio.run(burst()) == [200] * 200
    with httpx.Client(base_url=emulator_url) as client:
        assert counts(client)["users"] == 200
        # All 200 connections were open and in flight at once.
        assert client.get("/__emulator/requests").json()["peak_in_flight"] == 200


def _wait_for_file(path: Path, process: subprocess.Popen[str], timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, "emulator exited before listening"
        assert time.monotonic() < deadline, "emulator did not write its port file"
        time.sleep(0.05)
    return path.read_text().strip()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_on_a_free_port_and_stops_on_signal(tmp_path: Path, stop: signal.Signals) -> None:
    port_file = tmp_path / "emulator.port"
    env = {**os.environ, "USERFLOW_EMULATOR_API_KEY": "cli-secret-key"}
    command = [sys.executable, "-m", "userflow_assets.emulator", "--port", "0", "--port-file", str(port_file), "--rate-limit", "100", "--no-seed-content"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(_wait_for_file(port_file, process))
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/users", headers={"Authorization": "Bearer cli-secret-key"}).status_code == 200
            assert client.get("/users", headers=AUTH).status_code == 401
            config = client.get("/__emulator/config").json()
            assert (config["rate_limit_requests"], config["seed_content"], config["api_key"]) == (100, False, "***")
        process.send_signal(stop)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert out.splitlines()[0] == f"Userflow emulator listening on {url}"
    assert "cli-secret-key" not in out + err
    assert not port_file.exists()


def test_running_emulator_stops_serving_on_exit() -> None:
    with running_emulator(EmulatorConfig(seed_content=False)) as url:
        with httpx.Client(base_url=url, headers=AUTH) as client:
            assert client.get("/content").json()["data"] == []
    with httpx.Client(base_url=url) as client, pytest.raises(httpx.ConnectError):
        client.get("/__emulator/state")
