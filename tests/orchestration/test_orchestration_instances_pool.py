"""Three named syncs in one code location, launched at the same moment through a real
webserver, daemon (queued run coordinator, the project's run-queue rule) and gRPC code server.

`alpha` and `beta` share an API key (in two variables), `gamma` has its own and its own
emulator. The run queue lets all three out together (one run per sync). Then:
- the two keys' sink steps overlap: both emulators hold a request in flight at once, held by
  the emulators' gate until the test has seen both, so the overlap is arranged, not hoped for;
- the shared key's runs take turns: one of them waits for the key's pool while the other's
  request is held, and their leases of the pool (taken to given back, from the event logs:
  client/lease.py) never overlap.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from orchestration_deployment import (
    LAUNCH_RUN,
    Dagster,
    deployment_env,
    events_of,
    held_in_flight,
    lease_windows,
    overlapping,
    run_window,
    start_deployment,
    waited_for_pool,
    write_instance,
    write_workspace,
)
from orchestration_harness import KEY
from orchestration_instances_location import INSTANCES, STATE_DIR_VARIABLE
from orchestration_location import SENSOR_ENABLED_VARIABLE
from orchestration_processes import GraphQL, ProcessGroup, free_port, wait_for

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.orchestration.pools import api_pool
from userflow_assets.sample import generate_warehouse

pytestmark = pytest.mark.slow

SHARED_KEY, OTHER_KEY = "uf_instances_shared_key", "uf_instances_other_key"
KEYS = {"UF_ALPHA_KEY": SHARED_KEY, "UF_BETA_KEY": SHARED_KEY, "UF_GAMMA_KEY": OTHER_KEY}
ASSET_POOLS = """
{ assetNodes { assetKey { path } opNames pools } }"""


def pool_steps(dagster: Dagster) -> dict[str, tuple[str, set[str]]]:
    """Sync name -> (its pool, its steps in that pool)."""
    found: dict[str, tuple[str, set[str]]] = {}
    for node in dagster.graphql(ASSET_POOLS)["assetNodes"]:
        if node["pools"]:
            (pool,) = node["pools"]
            name = node["assetKey"]["path"][0]
            found.setdefault(name, (pool, set()))[1].update(node["opNames"])
    return found


def blocked_on(dagster: Dagster, run_ids: list[str], pool: str) -> list[str] | None:
    found = [r for r in run_ids if waited_for_pool(events_of(dagster, r), pool)]
    return found or None


@pytest.mark.timeout(600)
def test_two_keys_sync_side_by_side_while_one_keys_runs_take_turns(tmp_path: Path) -> None:
    warehouse, home = tmp_path / "warehouse.duckdb", tmp_path / "home"
    generate_warehouse(warehouse, users=300)
    write_instance(home)  # the project's run-queue rule: one run per sync at a time
    grpc_port, web_port = free_port(), free_port()
    write_workspace(tmp_path / "workspace.yaml", grpc_port)
    one, two = EmulatorConfig(api_key=SHARED_KEY, seed_content=False), EmulatorConfig(api_key=OTHER_KEY, seed_content=False)
    with running_emulator(one) as one_url, running_emulator(two) as two_url, httpx.Client(
        base_url=f"{one_url}/__emulator", timeout=30
    ) as gate_one, httpx.Client(base_url=f"{two_url}/__emulator", timeout=30) as gate_two:
        more = {SENSOR_ENABLED_VARIABLE: "0", STATE_DIR_VARIABLE: str(tmp_path), "UF_ONE_URL": one_url, "UF_TWO_URL": two_url}
        env = {**os.environ, **deployment_env(home, warehouse, tmp_path / "unused.duckdb", one_url, {**more, **KEYS})}
        env["USERFLOW_API_KEY"] = KEY  # a third key, used by none of the three syncs
        group = ProcessGroup(tmp_path / "logs", env)
        try:
            start_deployment(
                group, tmp_path / "workspace.yaml", grpc_port, web_port, Path(__file__).with_name("orchestration_instances_location.py")
            )
            dagster = Dagster(GraphQL(f"http://127.0.0.1:{web_port}/graphql"))
            dagster.wait_for_location(group, "the webserver to load the code location", 90)

            steps = pool_steps(dagster)
            shared_pool = api_pool("K", {"K": SHARED_KEY})
            assert {name: pool for name, (pool, _) in steps.items()} == {
                "alpha": shared_pool, "beta": shared_pool, "gamma": api_pool("K", {"K": OTHER_KEY}),
            }
            assert SHARED_KEY not in shared_pool and shared_pool != steps["gamma"][0]

            barrier = threading.Barrier(len(INSTANCES))

            def launch(name: str) -> str:
                params = {"selector": {**dagster.selector, "jobName": f"{name}_userflow_sync"}, "runConfigData": {}}
                barrier.wait(timeout=30)
                launched = dagster.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
                assert launched["__typename"] == "LaunchRunSuccess", launched
                return str(launched["run"]["runId"])

            gate_one.post("/hold")
            gate_two.post("/hold")
            with ThreadPoolExecutor(len(INSTANCES)) as pool:
                runs = dict(zip(INSTANCES, pool.map(launch, INSTANCES)))
            # Both keys' sink steps are in flight at once: each emulator holds one of their requests.
            wait_for("a request of the shared key held", lambda: held_in_flight(gate_one), 180, every_s=0.2)
            wait_for("a request of the other key held", lambda: held_in_flight(gate_two), 180, every_s=0.2)
            # And the shared key's other run waits for its pool meanwhile.
            shared_runs = [runs["alpha"], runs["beta"]]
            wait_for("the shared key's other run to wait", lambda: blocked_on(dagster, shared_runs, shared_pool), 180, every_s=0.5)
            assert not blocked_on(dagster, [runs["gamma"]], steps["gamma"][0])
            gate_one.post("/release")
            gate_two.post("/release")

            for run_id in runs.values():
                group.check_alive()
                run = dagster.finished_run(run_id, 200)
                assert run["status"] == "SUCCESS", dagster.errors(run_id) + "\n" + group.tail()

            logs = {name: events_of(dagster, run_id) for name, run_id in runs.items()}
            windows = {name: run_window(events) for name, events in logs.items()}
            # The queue let the three out together: it is not what kept alpha and beta apart.
            (a0, a1), (b0, b1) = windows["alpha"], windows["beta"]
            assert a0 < b1 and b0 < a1, windows
            leases = {name: lease_windows(events, steps[name][0]) for name, events in logs.items()}
            assert all(leases[name] for name in runs), leases
            assert not overlapping(leases["alpha"], leases["beta"]), leases
            # The other key's leases overlapped the shared key's (the held requests above).
            assert overlapping(leases["gamma"], leases["alpha"] + leases["beta"]), leases
        finally:
            group.close()
        assert all(p.poll() is not None for p in group.processes.values())
