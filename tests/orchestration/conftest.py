"""Fixtures of the orchestration tests: one emulator on a port per session, a fresh warehouse per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from orchestration_harness import KEY, Emulator, Warehouse

from userflow_assets.emulator import EmulatorConfig, running_emulator


@pytest.fixture(scope="session")
def orchestration_emulator_url() -> Iterator[str]:
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as url:
        yield url


@pytest.fixture
def emulator(orchestration_emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    emulator = Emulator(orchestration_emulator_url)
    emulator.reset()
    return emulator


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path).create()
