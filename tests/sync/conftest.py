"""Fixtures of the sync tests: one emulator on a port per session, a fresh warehouse per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Emulator, serve_emulator, write_project
from sync_harness import (
    KEY,
    QUERIES,
    WAREHOUSE_DDL,
    SyncHarness,
    account_rows,
    user_rows,
)


@pytest.fixture(scope="session")
def sync_emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as emulator:
        yield emulator


@pytest.fixture
def harness(tmp_path: Path, sync_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> SyncHarness:
    sync_emulator.fresh(monkeypatch)
    write_project(tmp_path, WAREHOUSE_DDL, {"users": user_rows(100), "accounts": account_rows()}, **QUERIES)
    return SyncHarness(tmp_path, sync_emulator.url)
