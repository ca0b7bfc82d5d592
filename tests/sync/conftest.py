"""Fixtures of the sync tests: one emulator on a port per session, a fresh warehouse per test."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from sync_harness import GROUPS_SQL, KEY, USERS_SQL, WAREHOUSE_DDL, Harness, user_rows

from userflow_assets.client.ratelimit import forget_shared_limiters
from userflow_assets.emulator import EmulatorConfig, running_emulator

EMULATOR_CONFIG = EmulatorConfig(api_key=KEY, seed_content=False)


@pytest.fixture(scope="session")
def sync_emulator_url() -> Iterator[str]:
    with running_emulator(EMULATOR_CONFIG) as url:
        yield url


@pytest.fixture
def harness(tmp_path: Path, sync_emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    # Each test starts as a fresh process would, against an emulator as configured above:
    # a reset keeps the config, so an earlier test's limits are set back explicitly.
    forget_shared_limiters()
    defaults = {k: v for k, v in EMULATOR_CONFIG.public_dict().items() if k != "api_key"}
    httpx.post(f"{sync_emulator_url}/__emulator/config", json=defaults, timeout=30).raise_for_status()
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
