"""A local server that behaves like the Userflow REST API, for tests and sync rehearsals.

    from userflow_assets.emulator import EmulatorConfig, create_app, running_emulator

    app = create_app(EmulatorConfig(rate_limit_requests=500))   # in-process (httpx.ASGITransport)
    with running_emulator(EmulatorConfig()) as base_url:         # on a loopback port
        ...

The emulated endpoints and shapes follow userflow-api.md; see `api.py` (endpoints),
`attributes.py` (change operations), `content.py` (seeded content shapes),
`inspection.py` (the `/__emulator/` API) and `server.py` (the CLI).
"""

from userflow_assets.emulator.app import create_app
from userflow_assets.emulator.config import EmulatorConfig
from userflow_assets.emulator.runtime import Emulator
from userflow_assets.emulator.server import running_emulator, serve_app

__all__ = ["Emulator", "EmulatorConfig", "create_app", "running_emulator", "serve_app"]
