"""Shared fixtures: the Userflow emulator in-process and on a loopback port.

Override `emulator_config` in a module, or parametrize it directly
(`@pytest.mark.parametrize("emulator_config", [EmulatorConfig(...)])`), to change behaviour.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig, create_app, running_emulator

if TYPE_CHECKING:
    from postgres_server import PostgresServer

EMULATOR_BASE_URL = "http://emulator"
# Where temporary files go when the machine has a tmpfs with this much room (see pytest_configure).
TMPFS = Path("/dev/shm")
TMPFS_MIN_FREE_BYTES = 2 * 1024**3


def roomy_tmpfs(path: Path) -> bool:
    """Whether `path` is a writable tmpfs mount with TMPFS_MIN_FREE_BYTES free (a container's
    default /dev/shm is 64 MB: too small, so the tests keep to the disk there)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
        stat = os.statvfs(path)
    except OSError:
        return False
    tmpfs = any(line.split()[1:3] == [str(path), "tmpfs"] for line in mounts)
    return tmpfs and os.access(path, os.W_OK) and stat.f_bavail * stat.f_frsize >= TMPFS_MIN_FREE_BYTES


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files (tmp_path, Dagster's test instances, the Postgres cluster) on tmpfs, unless
    TMPDIR says otherwise. The code under test commits to SQLite and DuckDB files hundreds of
    times a run, and on a disk each commit waits for an fsync (9 ms on this machine against
    0.06 ms); the only crash these tests cause is a process kill, which keeps written data
    either way. xdist's workers inherit the controller's TMPDIR."""
    if hasattr(config, "workerinput") or os.environ.get("TMPDIR") or not roomy_tmpfs(TMPFS):
        return
    os.environ["TMPDIR"] = str(TMPFS)
    tempfile.tempdir = None  # gettempdir() keeps its first answer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first (a stable sort: each module's tests stay together), so
    the long ones start early and the workers end on short ones instead of one worker finishing
    a long test alone (the workers share the queue out by worksteal: pyproject's addopts)."""
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
