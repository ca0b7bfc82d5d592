"""The Dagster resource that hands out Userflow clients.

Wire it with the key from the environment, so the key never appears in run config or the UI::

    UserflowResource(api_key=dg.EnvVar("USERFLOW_API_KEY"))

In an asset::

    async with userflow.get_client() as client:
        async for result in client.bulk(records, upsert):
            ...
        return dg.MaterializeResult(metadata=client.metadata())

Every client of a run shares the run's counters, and every client in the process with the same
key and base URL shares one rate and concurrency budget.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from userflow_assets.client.client import (
    DEFAULT_BASE_URL,
    UserflowClient,
    check_base_url,
)
from userflow_assets.client.lease import lease
from userflow_assets.client.ratelimit import AdaptiveRateLimiter
from userflow_assets.client.stats import ClientStats
from userflow_assets.redaction import (
    REDACTED,
    install_redacting_filter,
    register_secret,
)


class UserflowResource(dg.ConfigurableResource):
    """Access to the Userflow REST API (or the bundled emulator) for one environment's key."""

    api_key: str = Field(
        description="Userflow API key. Pass dg.EnvVar('USERFLOW_API_KEY'); never a literal."
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="API root: https://api.userflow.com, https://api.eu.userflow.com, or the emulator.",
    )
    requests_per_minute: int | None = Field(
        default=None,
        description="The key's request budget if known (never exceeded); unset adapts to 429s.",
    )
    max_concurrency: int = Field(default=16, description="Most requests in flight at once.")
    connect_timeout_s: float = Field(default=10.0, description="Seconds to open a connection.")
    read_timeout_s: float = Field(default=30.0, description="Seconds to wait for an answer.")
    max_attempts: int = Field(default=6, description="Attempts per request, the first included.")
    max_retry_time_s: float = Field(
        default=120.0, description="No retry starts after this many seconds of trying."
    )
    allow_insecure_http: bool = Field(
        default=False, description="Allow a plain-http base_url on a non-loopback host."
    )
    pool: str | None = Field(
        default=None,
        description="The Dagster pool of this key's steps. While open, a client holds one of the pool's "
        "slots as a lease on the instance, so steps whose pool claims met still take turns.",
    )

    _stats: ClientStats = PrivateAttr(default_factory=ClientStats)
    _limiter: AdaptiveRateLimiter | None = PrivateAttr(default=None)
    _lease: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._stats = ClientStats()  # one set of counters per run
        install_redacting_filter()
        if self.api_key:
            register_secret(self.api_key)
        check_base_url(self.base_url, allow_insecure_http=self.allow_insecure_http)
        if self.pool and context.instance is not None:
            run_id = context.run.run_id if context.run else None
            report = context.log.info if context.log is not None else None
            self._lease = partial(lease, context.instance, self.pool, run_id, *([report] if report else []))

    def get_client(self, **overrides: Any) -> UserflowClient:
        """A client for this run; use it as `async with resource.get_client() as client:`.

        `overrides` (e.g. `transport=` for tests) go to `UserflowClient`.
        """
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "requests_per_minute": self.requests_per_minute,
            "max_concurrency": self.max_concurrency,
            "connect_timeout_s": self.connect_timeout_s,
            "read_timeout_s": self.read_timeout_s,
            "max_attempts": self.max_attempts,
            "max_retry_time_s": self.max_retry_time_s,
            "allow_insecure_http": self.allow_insecure_http,
            "stats": self._stats,
            "lease": self._lease,
        }
        options.update(overrides)
        client = UserflowClient(self.api_key, **options)
        self._limiter = client.limiter  # shared by the key's clients: its rate is the run's
        return client

    def metadata(self) -> dict[str, int | float]:
        """This run's counters so far (all clients of the run) and the rate its limiter holds,
        for asset metadata."""
        return self._stats.metadata(self._limiter)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (REDACTED if name == "api_key" and value else value)

    def __str__(self) -> str:
        return self.__repr__()
