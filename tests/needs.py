"""What a test needs from the machine: skipped with the reason where it is missing, failed under CI.

CI (`CI=true`) must run every test for real, so there a missing browser or database is a
failure that says what is missing, never a quiet skip.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def need(available: bool, reason: str) -> None:
    """Go on if `available`; else skip with `reason`, or fail with it under CI=true."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing requirement fails instead of skipping)", pytrace=False)
    pytest.skip(reason)
