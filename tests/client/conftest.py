"""Fixtures for the client tests: the emulator in-process or on a port, behind one interface."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from client_testkit import Target

from userflow_assets.client import forget_shared_limiters
from userflow_assets.emulator import EmulatorConfig, create_app, running_emulator


@pytest.fixture(autouse=True)
def _fresh_shared_limiters() -> Iterator[None]:
    forget_shared_limiters()
    yield
    forget_shared_limiters()


@pytest.fixture(params=["asgi", "port"])
def target(request: pytest.FixtureRequest, emulator_config: EmulatorConfig) -> Iterator[Target]:
    """The emulator in-process and on a loopback port (every test using it runs on both)."""
    if request.param == "asgi":
        app = create_app(emulator_config)
        yield Target("asgi", "http://emulator", httpx.ASGITransport(app=app))
    else:
        with running_emulator(emulator_config) as url:
            yield Target("port", url, None)


@pytest.fixture
def asgi_target(emulator_config: EmulatorConfig) -> Target:
    return Target("asgi", "http://emulator", httpx.ASGITransport(app=create_app(emulator_config)))


@pytest.fixture
def port_target(emulator_config: EmulatorConfig) -> Iterator[Target]:
    with running_emulator(emulator_config) as url:
        yield Target("port", url, None)
