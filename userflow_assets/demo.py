"""`make demo`: the whole code location, end to end, against the bundled emulator.

Generates the sample warehouse if it is missing, starts the emulator on a free loopback
port inside this process (so nothing outlives the demo), materializes every asset through
`dg launch` exactly as a user would, then prints what Dagster recorded and what the
emulator holds. The demo keeps its own sync database, reset each time, because its
emulator starts empty each time.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx

from userflow_assets.definitions import load_definitions
from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.sample import generate_warehouse
from userflow_assets.settings import PROJECT_ROOT, Settings

DEMO_DIR = PROJECT_ROOT / "data" / "demo"


def ensure_warehouse(path: Path) -> None:
    if path.is_file():
        print(f"Sample warehouse: {path.relative_to(PROJECT_ROOT)} (exists; `make sample` regenerates it)")
        return
    started = time.monotonic()
    summary = generate_warehouse(path)
    print(f"Sample warehouse: {path.relative_to(PROJECT_ROOT)} written in {time.monotonic() - started:.1f}s: {summary}")


def materialize_everything(env: dict[str, str]) -> None:
    dg_cli = str(Path(sys.executable).with_name("dg"))
    subprocess.run([dg_cli, "launch", "--assets", "*"], cwd=PROJECT_ROOT, env=env, check=True)


def print_materializations() -> None:
    with dg.DagsterInstance.get() as instance:
        for key in load_definitions().resolve_all_asset_keys():
            event = instance.get_latest_materialization_event(key)
            if event is None or event.asset_materialization is None:
                print(f"  {key.to_user_string():32} not materialized")
                continue
            metadata = event.asset_materialization.metadata
            shown = {k: v.value for k, v in metadata.items() if isinstance(v.value, int | float)}
            print(f"  {key.to_user_string():32} {shown}")


def print_emulator_summary(base_url: str) -> None:
    state = httpx.get(f"{base_url}/__emulator/state", timeout=30).json()
    requests = httpx.get(f"{base_url}/__emulator/requests", timeout=30).json()
    counts = state.get("counts", {})
    print("Emulator holds: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    print(f"Emulator served {requests.get('total', 0)} API requests: {requests.get('by_endpoint', {})}")


def main() -> int:
    settings = Settings.from_env()
    ensure_warehouse(settings.warehouse_path)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    config = EmulatorConfig()
    with running_emulator(config) as base_url:
        print(f"Emulator: {base_url}")
        env = {
            **os.environ,
            "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")),
            "USERFLOW_WAREHOUSE_PATH": str(settings.warehouse_path),
            "USERFLOW_STATE_DB_PATH": str(DEMO_DIR / "state.duckdb"),
            "USERFLOW_BASE_URL": base_url,
            "USERFLOW_API_KEY": config.api_key,
        }
        os.environ.update(env)
        materialize_everything(env)
        print("Materialized (numeric metadata of the latest materialization):")
        print_materializations()
        print_emulator_summary(base_url)
    print("Emulator stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
