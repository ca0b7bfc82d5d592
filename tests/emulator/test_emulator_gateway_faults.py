"""Queued 403, 502 and 504: answers a client meets from a key without a feature or a gateway."""

import httpx
import pytest


@pytest.mark.parametrize(
    ("fault", "code"),
    [("403", "forbidden"), ("502", "bad_gateway"), ("504", "gateway_timeout")],
)
async def test_queued_status_faults(emulator_client: httpx.AsyncClient, fault: str, code: str) -> None:
    queued = await emulator_client.post("/__emulator/faults", json={"next": [fault], "path_prefix": "/users"})
    assert queued.status_code == 200
    response = await emulator_client.post("/users", json={"id": "u1", "attributes": {"a": 1}})
    assert response.status_code == int(fault)
    assert response.json()["error"]["code"] == code
    # Nothing was written, and the next request is answered normally.
    assert (await emulator_client.get("/users/u1")).status_code == 404
    assert (await emulator_client.post("/users", json={"id": "u1"})).status_code == 200
    log = (await emulator_client.get("/__emulator/requests")).json()
    assert log["by_endpoint"]["POST /users"] == {fault: 1, "200": 1}
