"""Shared fixtures: the Userflow emulator in-process and on a loopback port.

Override `emulator_config` in a module, or parametrize it directly
(`@pytest.mark.parametrize("emulator_config", [EmulatorConfig(...)])`), to change behaviour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig, create_app, running_emulator

if TYPE_CHECKING:
    from postgres_server import PostgresServer

EMULATOR_BASE_URL = "http://emulator"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first (a stable sort: each module's tests stay together), so
    the workers start the long ones early and end on short ones instead of one worker finishing
    a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Default emulator behaviour: no limits, no faults, seeded content."""
    return EmulatorConfig()


@pytest.fixture
def emulator_app(emulator_config: EmulatorConfig) -> Starlette:
    """A fresh in-process emulator; its state is `emulator_app.state.emulator`."""
    return create_app(emulator_config)


@pytest.fixture
def emulator_transport(emulator_app: Starlette) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=emulator_app)


@pytest.fixture
async def emulator_client(
    emulator_transport: httpx.ASGITransport, emulator_config: EmulatorConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client already carrying the emulator's key and the Userflow-Version header."""
    headers = {"Authorization": f"Bearer {emulator_config.api_key}", "Userflow-Version": "2020-01-03"}
    async with httpx.AsyncClient(transport=emulator_transport, base_url=EMULATOR_BASE_URL, headers=headers) as client:
        yield client


@pytest.fixture
def emulator_url(emulator_config: EmulatorConfig) -> Iterator[str]:
    """Base URL of a fresh emulator served by uvicorn on a free loopback port."""
    with running_emulator(emulator_config) as url:
        yield url


@pytest.fixture(scope="session")
def postgres() -> Iterator["PostgresServer"]:
    """A real PostgreSQL server for this worker (tests/postgres_server.py); started on first use."""
    from postgres_server import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres) -> str:
    """The URL of a new, empty database on the worker's PostgreSQL server."""
    from postgres_server import fresh_database

    return fresh_database(postgres)
