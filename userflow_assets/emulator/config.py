"""Emulator configuration: which safeguards, latency and faults the emulator simulates."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "***"

_PROBABILITY_FIELDS = ("fault_500", "fault_503", "fault_drop_before", "fault_lost_response", "fault_429")


@dataclass
class EmulatorConfig:
    """Behaviour knobs of the emulator. Every field can be changed at run time through
    `POST /__emulator/config` (partial update, validated)."""

    api_key: str = "uf_emulator_key"  # Bearer key required on every API request
    rate_limit_requests: int | None = None  # max admitted requests per sliding window (None = off)
    rate_limit_window_s: float = 60.0  # sliding window length in seconds
    max_concurrent: int | None = None  # max requests in flight at once (None = off)
    retry_after: bool = False  # 429s carry Retry-After (the real API documents no such header)
    latency_ms: float = 0.0  # added to every admitted API request
    latency_jitter_ms: float = 0.0  # uniform +- jitter around latency_ms
    fault_500: float = 0.0  # probability of 500 internal_error (nothing written)
    fault_503: float = 0.0  # probability of 503 service_unavailable (nothing written)
    fault_drop_before: float = 0.0  # probability the connection drops before the write
    fault_lost_response: float = 0.0  # probability the write is applied, then the connection drops
    fault_429: float = 0.0  # probability of a 429 rate_limited whatever the rate (nothing written)
    fault_seed: int | None = None  # makes random faults and jitter reproducible
    delete_status: int = 200  # 200 with {"object": "deleted", "id"} or 204 without a body
    seed_content: bool = True  # seed flows, checklists, a launcher, versions and sessions

    def __post_init__(self) -> None:
        validate_config(self)

    def public_dict(self) -> dict[str, Any]:
        """The configuration as JSON, with the API key redacted."""
        data = dataclasses.asdict(self)
        data["api_key"] = REDACTED
        return data

    def updated(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with `changes` applied; raises ValueError naming the first bad field."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **dict(changes))

    def __repr__(self) -> str:
        # Keeps the key out of logs and tracebacks.
        fields = ", ".join(f"{k}={v!r}" for k, v in self.public_dict().items())
        return f"EmulatorConfig({fields})"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_config(config: EmulatorConfig) -> None:
    """Raise ValueError naming the first field whose value is out of range or mistyped."""
    if not isinstance(config.api_key, str) or not config.api_key:
        raise ValueError("api_key must be a non-empty string")
    for name in ("rate_limit_requests", "max_concurrent"):
        value = getattr(config, name)
        if value is not None and (not _is_int(value) or value < 1):
            raise ValueError(f"{name} must be null or an integer >= 1")
    if not _is_number(config.rate_limit_window_s) or config.rate_limit_window_s <= 0:
        raise ValueError("rate_limit_window_s must be a number > 0")
    for name in ("latency_ms", "latency_jitter_ms"):
        value = getattr(config, name)
        if not _is_number(value) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
    for name in _PROBABILITY_FIELDS:
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1")
    if sum(getattr(config, name) for name in _PROBABILITY_FIELDS) > 1.0:
        raise ValueError("fault probabilities must add up to at most 1")
    if config.fault_seed is not None and not _is_int(config.fault_seed):
        raise ValueError("fault_seed must be null or an integer")
    if config.delete_status not in (200, 204) or isinstance(config.delete_status, bool):
        raise ValueError("delete_status must be 200 or 204")
    for name in ("retry_after", "seed_content"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be a boolean")
