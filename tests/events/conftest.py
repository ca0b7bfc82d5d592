"""Fixtures of the events tests: one emulator (behind a key revoker) per session, a fresh warehouse per test."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from events_harness import (
    EVENTS_SQL,
    GROUPS_SQL,
    KEY,
    USERS_SQL,
    WAREHOUSE_DDL,
    EventsHarness,
    KeyRevoker,
)

from userflow_assets.emulator import EmulatorConfig, create_app, serve_app


@pytest.fixture(scope="session")
def events_revoker() -> KeyRevoker:
    app = create_app(EmulatorConfig(api_key=KEY, seed_content=False))
    return KeyRevoker(app, app.state.emulator)


@pytest.fixture(scope="session")
def events_emulator_url(events_revoker: KeyRevoker) -> Iterator[str]:
    with serve_app(events_revoker) as url:
        yield url


@pytest.fixture
def events_harness(
    tmp_path: Path, events_emulator_url: str, events_revoker: KeyRevoker, monkeypatch: pytest.MonkeyPatch
) -> EventsHarness:
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    events_revoker.reset()
    httpx.post(f"{events_emulator_url}/__emulator/reset", timeout=30).raise_for_status()
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "users.sql").write_text(USERS_SQL)
    (sql / "groups.sql").write_text(GROUPS_SQL)
    (sql / "events.sql").write_text(EVENTS_SQL)
    h = EventsHarness(tmp_path, events_emulator_url, events_revoker)
    h.sql(WAREHOUSE_DDL)
    with duckdb.connect(str(h.warehouse)) as con:
        con.executemany(
            "INSERT INTO users VALUES (?, ?, ?, '2026-01-01')",
            [(f"u{i:03d}", f"user{i}@example.com", f"User {i}") for i in range(10)],
        )
        con.executemany("INSERT INTO accounts VALUES (?, ?, '2026-01-01')", [(f"a{i}", f"Account {i}") for i in range(3)])
    return h
