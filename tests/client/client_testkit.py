"""Shared test helpers for the client tests: reach an emulator in-process or on a port."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from userflow_assets.client import AdaptiveRateLimiter, UserflowClient
from userflow_assets.emulator import EmulatorConfig

KEY = EmulatorConfig().api_key


def fast_limiter(max_concurrency: int = 16) -> AdaptiveRateLimiter:
    """A private limiter that starts fast, so functional tests do not wait on pacing."""
    return AdaptiveRateLimiter(initial_per_minute=600_000, max_concurrency=max_concurrency)


@dataclass
class Target:
    """One running emulator and how to reach it."""

    kind: str  # "asgi" (in-process) or "port" (uvicorn on loopback)
    base_url: str
    transport: httpx.AsyncBaseTransport | None

    def client(self, api_key: str = KEY, **options: Any) -> UserflowClient:
        options.setdefault("limiter", fast_limiter(options.get("max_concurrency", 16)))
        options.setdefault("allow_insecure_http", True)
        return UserflowClient(api_key, base_url=self.base_url, transport=self.transport, **options)

    async def inspect(self, method: str, path: str, body: Any = None) -> Any:
        """Call the emulator's unauthenticated /__emulator/ API."""
        async with httpx.AsyncClient(base_url=self.base_url, transport=self.transport) as http:
            response = await http.request(method, f"/__emulator{path}", json=body)
            response.raise_for_status()
            return response.json()

    async def queue_faults(self, *kinds: str, path_prefix: str | None = None, method: str | None = None) -> None:
        body: dict[str, Any] = {"next": list(kinds)}
        if path_prefix is not None:
            body["path_prefix"] = path_prefix
        if method is not None:
            body["method"] = method
        await self.inspect("POST", "/faults", body)

    async def outcomes(self, endpoint: str) -> dict[str, int]:
        """Counts per outcome the emulator recorded for e.g. `POST /users`."""
        data = await self.inspect("GET", "/requests")
        return dict(data["by_endpoint"].get(endpoint, {}))

    async def wait_for_outcomes(self, endpoint: str, total: int, timeout_s: float = 120.0) -> dict[str, int]:
        """Outcomes once the emulator has logged `total` requests to `endpoint`.

        Needed on a port: a request the client gave up on is still finished by the server.
        The timeout only bounds a broken run; a busy machine just takes longer to get there.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            outcomes = await self.outcomes(endpoint)
            if sum(outcomes.values()) >= total or time.monotonic() > deadline:
                return outcomes
            await asyncio.sleep(0.02)
