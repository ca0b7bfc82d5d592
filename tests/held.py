"""Overlap arranged exactly with the emulator's hold gate, instead of hoped for from latency.

`POST /__emulator/hold` keeps admitted requests in flight until `POST /__emulator/release`,
so a test can say "these N are in flight together" on a busy machine as on an idle one.
"""

from __future__ import annotations

import asyncio

import httpx


async def until_in_flight(emulator: httpx.AsyncClient, expected: int) -> None:
    """Until the emulator holds `expected` requests in flight (it answers once they are)."""
    params = {"limit": 0, "in_flight_at_least": expected}
    response = await emulator.get("/__emulator/requests", params=params)
    assert response.json()["in_flight"] >= expected, f"{expected} requests never came in flight together"


async def held_burst(client: httpx.AsyncClient, admitted: int, then: int = 0) -> list[httpx.Response]:
    """`admitted` user upserts held in flight together, then `then` more sent one by one while
    they are held; every answer, the held ones first. `client` carries the API key."""
    await client.post("/__emulator/hold")
    held = [asyncio.ensure_future(client.post("/users", json={"id": f"u{n}"})) for n in range(admitted)]
    await until_in_flight(client, admitted)
    later = [await client.post("/users", json={"id": f"late{n}"}) for n in range(then)]
    await client.post("/__emulator/release")
    return [*(await asyncio.gather(*held)), *later]
