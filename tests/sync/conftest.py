"""Fixtures of the sync tests: one emulator on a port per session, a fresh warehouse per test."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from sync_harness import GROUPS_SQL, KEY, USERS_SQL, WAREHOUSE_DDL, Harness, user_rows

from userflow_assets.emulator import EmulatorConfig, running_emulator


@pytest.fixture(scope="session")
def sync_emulator_url() -> Iterator[str]:
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as url:
        yield url


@pytest.fixture
def harness(tmp_path: Path, sync_emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    httpx.post(f"{sync_emulator_url}/__emulator/reset", timeout=30).raise_for_status()
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "users.sql").write_text(USERS_SQL)
    (tmp_path / "sql" / "groups.sql").write_text(GROUPS_SQL)
    h = Harness(tmp_path, sync_emulator_url)
    h.sql(WAREHOUSE_DDL)
    with duckdb.connect(str(h.warehouse)) as con:
        con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)", user_rows(100))
        con.executemany(
            "INSERT INTO accounts VALUES (?, ?, '2026-01-01')", [(f"a{i}", f"Account {i}") for i in range(5)]
        )
    return h
