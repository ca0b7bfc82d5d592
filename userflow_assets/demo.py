"""`make demo`: the whole sync, end to end, against the bundled emulator.

Generates the sample warehouse if it is missing, starts the emulator on a free loopback
port inside this process (so nothing outlives the demo), runs the `userflow_sync` job twice
through `dg launch` exactly as a user would, and prints what each run did and what the
emulator holds. The second run finds nothing changed and sends no request. The demo keeps
its own sync state, reset each time, because its emulator starts empty each time.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.mirror import MIRROR_JOB
from userflow_assets.orchestration.component import SYNC_JOB
from userflow_assets.sample import generate_warehouse
from userflow_assets.settings import PROJECT_ROOT

DEMO_DIR = PROJECT_ROOT / "data" / "demo"
WAREHOUSE = PROJECT_ROOT / "data" / "warehouse.duckdb"
# A request budget the emulator enforces (and does not tell the client), so the run shows
# the client finding the limit from 429s and settling under it.
DEMO_RATE_LIMIT_PER_SECOND = 300
SINK_FIELDS = (
    "created",
    "updated",
    "unchanged",
    "skipped",
    "rejected",
    "failed",
    "userflow_requests",
    "userflow_rate_limited",
)


def ensure_warehouse(path: Path) -> None:
    if path.is_file():
        print(f"Sample warehouse: {path.relative_to(PROJECT_ROOT)} (exists; `make sample` regenerates it)")
        return
    started = time.monotonic()
    summary = generate_warehouse(path)
    print(f"Sample warehouse: {path.relative_to(PROJECT_ROOT)} written in {time.monotonic() - started:.1f}s")
    print(f"  tables: {summary['tables']}")


def launch(job: str, env: dict[str, str]) -> None:
    dg_cli = str(Path(sys.executable).with_name("dg"))
    subprocess.run(
        [dg_cli, "launch", "--job", job],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def sink_summary(instance: dg.DagsterInstance, asset: str) -> str:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return f"  {asset:16} not materialized"
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    shown = ", ".join(f"{field} {metadata[field]}" for field in SINK_FIELDS if field in metadata)
    return f"  {asset:16} {shown}"


def events_summary(instance: dg.DagsterInstance) -> str:
    event = instance.get_latest_materialization_event(dg.AssetKey("userflow_events"))
    if event is None or event.asset_materialization is None:
        return "  userflow_events  not materialized"
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    fields = ("sent", "already_sent", "waiting", "rejected", "failed", "possible_duplicates", "requests")
    return "  userflow_events  " + ", ".join(f"{f} {metadata[f]}" for f in fields if f in metadata)


def emulator_summary(base_url: str) -> tuple[str, int]:
    counts = httpx.get(f"{base_url}/__emulator/state", params={"counts_only": "true"}, timeout=30).json()["counts"]
    requests = httpx.get(f"{base_url}/__emulator/requests", params={"limit": 0}, timeout=30).json()
    held = ", ".join(
        f"{n} {name}" for name, n in counts.items() if name in ("users", "groups", "memberships", "events")
    )
    return held, int(requests["total"])


def run_job(label: str, job: str, env: dict[str, str]) -> None:
    try:
        launch(job, env)
    except subprocess.CalledProcessError as error:
        sys.stderr.write(error.stderr.decode(errors="replace")[-4000:])
        raise SystemExit(f"{label} failed; the Dagster UI (`make dev`) shows the run's events") from None


def run_once(label: str, env: dict[str, str], base_url: str, requests_before: int) -> int:
    started = time.monotonic()
    run_job(label, SYNC_JOB, env)
    held, total = emulator_summary(base_url)
    print(f"{label}: {time.monotonic() - started:.1f}s, {total - requests_before} requests")
    with dg.DagsterInstance.get() as instance:
        for asset in ("userflow_groups", "userflow_users"):
            print(sink_summary(instance, asset))
        print(events_summary(instance))
    print(f"  emulator holds {held}")
    return total


def print_read_side() -> None:
    """What the userflow_mirror job brought back: checklist drop-off and drift."""
    with dg.DagsterInstance.get() as instance:
        for asset, field in (("checklist_dropoff", "dropoff"), ("userflow_drift", None)):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            if event is None or event.asset_materialization is None:
                print(f"Read side: {asset} not materialized")
                continue
            metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
            if field:
                print(f"Read side: checklist drop-off (where users stopped)\n{metadata[field]}")
            else:
                counts = {k: v for k, v in metadata.items() if isinstance(v, int)}
                print(f"Read side: drift report {counts}")


def main() -> int:
    ensure_warehouse(WAREHOUSE)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    config = EmulatorConfig(rate_limit_requests=DEMO_RATE_LIMIT_PER_SECOND, rate_limit_window_s=1.0)
    with running_emulator(config) as base_url:
        print(f"Emulator: {base_url}, enforcing {DEMO_RATE_LIMIT_PER_SECOND} requests/second (the client is not told)")
        env = {
            **os.environ,
            "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")),
            "USERFLOW_WAREHOUSE_PATH": str(WAREHOUSE),
            "USERFLOW_STATE_DB_PATH": str(DEMO_DIR / "state.duckdb"),
            "USERFLOW_BASE_URL": base_url,
            "USERFLOW_API_KEY": config.api_key,
        }
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        total = run_once("First sync", env, base_url, 0)
        second = run_once("Second sync (warehouse unchanged)", env, base_url, total)
        run_job("Read side", MIRROR_JOB, env)
        print_read_side()
    print("Emulator stopped.")
    if second != total:
        print(f"Unexpected: the second sync sent {second - total} requests")
        return 1
    print("The second sync sent no request: nothing had changed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
