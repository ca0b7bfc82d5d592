"""Fixtures of the events tests: one emulator (behind a key revoker) per session, a fresh warehouse per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from events_harness import EVENTS_SQL, KEY, USERS_SQL, WAREHOUSE_DDL, EventsHarness, KeyRevoker
from harness import GROUPS_SQL, Emulator, serve_emulator, write_project


@pytest.fixture(scope="session")
def events_emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY, wrap=lambda app: KeyRevoker(app, app.state.emulator)) as emulator:
        yield emulator


@pytest.fixture
def events_harness(tmp_path: Path, events_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> EventsHarness:
    revoker: KeyRevoker = events_emulator.app
    revoker.reset()
    events_emulator.fresh(monkeypatch)
    rows = {
        "users": [(f"u{i:03d}", f"user{i}@example.com", f"User {i}", "2026-01-01") for i in range(10)],
        "accounts": [(f"a{i}", f"Account {i}", "2026-01-01") for i in range(3)],
    }
    write_project(tmp_path, WAREHOUSE_DDL, rows, users=USERS_SQL, groups=GROUPS_SQL, events=EVENTS_SQL)
    return EventsHarness(tmp_path, events_emulator.url, revoker)
