"""Fixtures of the sync tests: one emulator on a port per session, a fresh copy of the warehouse per test."""

import shutil
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


@pytest.fixture(scope="session")
def sync_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder's project, written once: writing it takes ~100 ms, a copy ~1 ms."""
    root = tmp_path_factory.mktemp("sync_project")
    write_project(root, WAREHOUSE_DDL, {"users": user_rows(100), "accounts": account_rows()}, **QUERIES)
    return root


@pytest.fixture
def harness(
    tmp_path: Path, sync_project: Path, sync_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> SyncHarness:
    sync_emulator.fresh(monkeypatch)
    shutil.copytree(sync_project, tmp_path, dirs_exist_ok=True)
    return SyncHarness(tmp_path, sync_emulator.url)
