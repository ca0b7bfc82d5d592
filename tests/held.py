"""Overlap arranged exactly with the emulator's hold gate, instead of hoped for from latency.

`POST /__emulator/hold` keeps admitted requests in flight until `POST /__emulator/release`,
so a test can say "these N are in flight together" on a busy machine as on an idle one.
"""

from __future__ import annotations

import asyncio

import httpx


async def in_flight(emulator: httpx.AsyncClient) -> int:
    return int((await emulator.get("/__emulator/requests", params={"limit": 0})).json()["in_flight"])


async def until_in_flight(emulator: httpx.AsyncClient, expected: int) -> None:
    """Until the emulator holds `expected` requests in flight (a condition, not a delay)."""
    while await in_flight(emulator) < expected:
        await asyncio.sleep(0.01)


async def held_burst(client: httpx.AsyncClient, admitted: int, then: int = 0) -> list[httpx.Response]:
    """`admitted` user upserts held in flight together, then `then` more sent one by one while
    they are held; every answer, the held ones first. `client` carries the API key."""
    await client.post("/__emulator/hold")
    held = [asyncio.ensure_future(client.post("/users", json={"id": f"u{n}"})) for n in range(admitted)]
    await until_in_flight(client, admitted)
    later = [await client.post("/users", json={"id": f"late{n}"}) for n in range(then)]
    await client.post("/__emulator/release")
    return [*(await asyncio.gather(*held)), *later]
