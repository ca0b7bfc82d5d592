"""Fixtures of the mirror tests: one emulator (seeded content) on a port per session, reset per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import emulator_post
from mirror_harness import GROUPS_SQL, KEY, USERS_SQL, MirrorHarness
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig, create_app, serve_app


@pytest.fixture(scope="session")
def mirror_app() -> Starlette:
    return create_app(EmulatorConfig(api_key=KEY))


@pytest.fixture(scope="session")
def mirror_emulator_url(mirror_app: Starlette) -> Iterator[str]:
    with serve_app(mirror_app) as url:
        yield url


@pytest.fixture
def mirror(tmp_path: Path, mirror_app: Starlette, mirror_emulator_url: str) -> MirrorHarness:
    emulator_post(mirror_emulator_url, "reset")
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "users.sql").write_text(USERS_SQL)
    (tmp_path / "sql" / "groups.sql").write_text(GROUPS_SQL)
    return MirrorHarness(tmp_path, mirror_emulator_url, mirror_app.state.emulator)
