"""Two `userflow_sync` runs launched at the same moment for the same API key, through a real
webserver, daemon (queued run coordinator) and gRPC code server: the pool `userflow_api`
(limit 1) makes their Userflow-calling steps take turns.

The instance is the project's dagster.yaml without the `userflow/instance` run-tag rule, so both
runs are let out of the queue together and only the pool can keep them apart. Dagster's own
claim lets two steps in when their claims meet, so the key's lease (client/lease.py) is what
the proof reads, from the runs' event logs: the two runs were in flight at the same time, yet
no lease of one run (taken to given back: the windows in which its clients can call Userflow)
overlapped one of the other, one of them waited for the pool, and both runs succeeded.
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
    intervals,
    lease_windows,
    overlapping,
    run_window,
    start_deployment,
    waited_for_pool,
    write_instance,
    write_workspace,
)
from orchestration_harness import KEY
from orchestration_location import SENSOR_ENABLED_VARIABLE
from orchestration_processes import GraphQL, ProcessGroup, free_port, wait_for

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.orchestration.component import SYNC_JOB
from userflow_assets.sample import generate_warehouse

pytestmark = pytest.mark.slow

POOL = "userflow_api"
ASSET_POOLS = """
{ assetNodes { opNames pools jobNames } }"""


def write_pool_instance(home: Path) -> None:
    """The project's dagster.yaml, its pool limit untouched, without the run-tag rule."""
    config = write_instance(home, run_tag_limits=None)
    assert config["concurrency"]["pools"]["default_limit"] == 1


def pool_steps(dagster: Dagster) -> set[str]:
    """The sync job's steps (its in-process executor runs one op per asset) that are in the pool."""
    nodes = dagster.graphql(ASSET_POOLS)["assetNodes"]
    return {op for node in nodes if POOL in node["pools"] and SYNC_JOB in node["jobNames"] for op in node["opNames"]}


def blocked_runs(dagster: Dagster, run_ids: list[str]) -> list[str] | None:
    """The runs that logged a step waiting for the pool, or None while none has."""
    found = [r for r in run_ids if waited_for_pool(events_of(dagster, r), POOL)]
    return found or None


@pytest.mark.timeout(600)
def test_two_syncs_launched_at_once_take_turns_in_the_api_pool(tmp_path: Path) -> None:
    warehouse, state_db, home = tmp_path / "warehouse.duckdb", tmp_path / "state" / "state.duckdb", tmp_path / "home"
    generate_warehouse(warehouse, users=300)
    write_pool_instance(home)
    grpc_port, web_port = free_port(), free_port()
    write_workspace(tmp_path / "workspace.yaml", grpc_port)
    # The emulator holds the first pool step's requests until the other run is seen waiting
    # for the pool, so the two runs meet there however slowly this machine starts them.
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as emulator_url, httpx.Client(
        base_url=f"{emulator_url}/__emulator", timeout=30
    ) as emulator:
        sensor_off = {SENSOR_ENABLED_VARIABLE: "0"}  # only the two runs this test launches
        env = {**os.environ, **deployment_env(home, warehouse, state_db, emulator_url, sensor_off)}
        group = ProcessGroup(tmp_path / "logs", env)
        try:
            start_deployment(group, tmp_path / "workspace.yaml", grpc_port, web_port)
            dagster = Dagster(GraphQL(f"http://127.0.0.1:{web_port}/graphql"))

            dagster.wait_for_location(group, "the webserver to load the code location", 90)
            in_pool = pool_steps(dagster)
            assert {"userflow_groups", "userflow_users"} <= in_pool, in_pool

            params = {"selector": {**dagster.selector, "jobName": SYNC_JOB}, "runConfigData": {}}
            barrier = threading.Barrier(2)

            def launch(_: int) -> str:
                barrier.wait(timeout=30)
                launched = dagster.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
                assert launched["__typename"] == "LaunchRunSuccess", launched
                return str(launched["run"]["runId"])

            emulator.post("/hold")
            with ThreadPoolExecutor(2) as pool:
                run_ids = list(pool.map(launch, range(2)))
            assert len(set(run_ids)) == 2
            wait_for("a pool step's request held in flight", lambda: held_in_flight(emulator), 180, every_s=0.2)
            wait_for("the other run to wait for the pool", lambda: blocked_runs(dagster, run_ids), 180, every_s=0.5)
            emulator.post("/release")

            for run_id in run_ids:
                group.check_alive()
                run = dagster.finished_run(run_id, 150)
                assert run["status"] == "SUCCESS", dagster.errors(run_id) + "\n" + group.tail()

            first, second = (events_of(dagster, run_id) for run_id in run_ids)
            # Both runs were in flight together: the run queue let both through, so it is not what kept them apart.
            (start_1, end_1), (start_2, end_2) = run_window(first), run_window(second)
            overlapped = start_1 < end_2 and start_2 < end_1
            assert overlapped, f"the runs did not overlap: {run_window(first)} {run_window(second)}"

            steps_1, steps_2 = intervals(first, in_pool), intervals(second, in_pool)
            assert set(steps_1) == set(steps_2) == in_pool, (steps_1, steps_2, in_pool)
            leases_1, leases_2 = lease_windows(first, POOL), lease_windows(second, POOL)
            assert leases_1 and leases_2, (leases_1, leases_2)
            overlaps = overlapping(leases_1, leases_2)
            assert not overlaps, f"leases of pool {POOL} held at the same time: {overlaps}\n{leases_1}\n{leases_2}"
            # And the pool did hold one back (the runs did not just happen to miss each other).
            assert waited_for_pool(first + second, POOL), f"nothing waited for pool {POOL}: {steps_1} {steps_2}"
        finally:
            group.close()
        assert all(p.poll() is not None for p in group.processes.values())
