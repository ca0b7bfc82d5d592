"""Two machines: two gRPC code servers, each in a folder of its own with its own work database,
one webserver and one daemon, the Dagster instance stored in a real Postgres (dagster-postgres)
and the sync state in the same server's other database.

A sync launched on each at the same moment takes turns through the pool `userflow_api`; the end
state (in Userflow and in the sync state) equals one uninterrupted run's. A deliberate second
writer that bypasses the pool (an in-process materialization) is refused by the state's lock
while a run on one machine is writing.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import httpx
import pytest
import yaml
from harness import failure_message, run_sync
from needs import need
from orchestration_deployment import LOCATION_FILE, Dagster, deployment_env
from orchestration_harness import KEY
from orchestration_location import SENSOR_ENABLED_VARIABLE, spec_from_environment
from orchestration_processes import BIN, GraphQL, ProcessGroup, free_port, wait_for
from postgres_server import fresh_database
from test_orchestration_pool import LAUNCH_RUN, POOL, blocked_runs, events_of, held_in_flight, intervals, pool_steps

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.orchestration.component import SYNC_JOB
from userflow_assets.sample import generate_warehouse
from userflow_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

MACHINES = ("machine_a", "machine_b")
GROUPS_PATH = ["warehouse_groups", "userflow_group_records", "userflow_groups"]  # no pool step before the sink
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }"""


def write_postgres_instance(home: Path, instance_url: str) -> None:
    """The project's dagster.yaml with its storage in Postgres and without the run-tag rule, so
    only the pool keeps the two machines' sinks apart; the tables created once here."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["concurrency"]["runs"].pop("tag_concurrency_limits", None)
    parts = urlsplit(instance_url)
    config["storage"] = {
        "postgres": {
            "postgres_db": {
                "hostname": parts.hostname, "port": parts.port, "username": parts.username,
                "password": "", "db_name": parts.path.lstrip("/"),
                # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres brings psycopg2.
                "scheme": "postgresql+psycopg2",
            }
        }
    }
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"


def write_workspace(path: Path, ports: dict[str, int]) -> None:
    entries = [{"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": name}} for name, port in ports.items()]
    path.write_text(yaml.safe_dump({"load_from": entries}))


def loaded(dagster: Dagster, groups: list[ProcessGroup]) -> bool | None:
    for group in groups:
        group.check_alive()
    entries = dagster.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
    kinds = {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
    return True if all(kinds.get(m) == "RepositoryLocation" for m in MACHINES) else None


def launch(dagster: Dagster, location: str, run_config: dict[str, Any] | None = None, **selector: Any) -> str:
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": SYNC_JOB, **selector},
        "runConfigData": run_config or {},
    }
    launched = dagster.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return str(launched["run"]["runId"])


def emulator_state(url: str) -> tuple[dict[str, Any], dict[str, Any], set[tuple[str, str]]]:
    state = httpx.get(f"{url}/__emulator/state", timeout=60).json()
    return (
        {u["id"]: u["attributes"] for u in state["users"]},
        {g["id"]: g["attributes"] for g in state["groups"]},
        {(m["user_id"], m["group_id"]) for m in state["memberships"]},
    )


def state_records(url: str) -> set[tuple[str, str, str]]:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(url) as con, con.cursor() as cur:
        cur.execute("SELECT object_type, id, payload_hash FROM sync.records")
        return set(cur.fetchall())


def use_location_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.timeout(900)
def test_two_machines_share_one_postgres_instance_and_state(
    tmp_path: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(importable("dagster_postgres"), "this test needs dagster-postgres (pip install -e '.[deploy]')")
    warehouse, home = tmp_path / "warehouse.duckdb", tmp_path / "home"
    generate_warehouse(warehouse, users=300)
    write_postgres_instance(home, fresh_database(postgres, "instance"))
    state_url = fresh_database(postgres, "state")
    ports = {m: free_port() for m in MACHINES}
    web_port = free_port()
    write_workspace(tmp_path / "workspace.yaml", ports)
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as emulator_url, httpx.Client(
        base_url=f"{emulator_url}/__emulator", timeout=30
    ) as emulator:
        shared = deployment_env(home, warehouse, state_url, emulator_url, {SENSOR_ENABLED_VARIABLE: "0"})  # type: ignore[arg-type]
        groups: dict[str, ProcessGroup] = {}
        try:
            for machine, port in ports.items():
                folder = tmp_path / machine
                folder.mkdir()
                env = {**os.environ, **shared, "USERFLOW_WORK_DB_PATH": str(folder / "data" / "work.duckdb")}
                groups[machine] = ProcessGroup(tmp_path / "logs" / machine, env)
                groups[machine].start(
                    "code-server",
                    [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port)]
                    + ["-f", str(LOCATION_FILE), "--location-name", machine],
                    cwd=folder,
                )
            groups["services"] = ProcessGroup(tmp_path / "logs" / "services", {**os.environ, **shared})
            web = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", str(tmp_path / "workspace.yaml")]
            groups["services"].start("webserver", web, cwd=tmp_path)
            groups["services"].start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")], cwd=tmp_path)
            dagster = Dagster(GraphQL(f"http://127.0.0.1:{web_port}/graphql"))
            wait_for("the webserver to load both code locations", lambda: loaded(dagster, list(groups.values())), 120)
            in_pool = pool_steps(dagster)

            # One sync launched on each machine at the same moment; the emulator holds the first
            # pool step's requests until the other run is seen waiting for the pool.
            barrier = threading.Barrier(2)

            def launch_on(machine: str) -> str:
                barrier.wait(timeout=30)
                return launch(dagster, machine)

            emulator.post("/hold")
            with ThreadPoolExecutor(2) as pool:
                run_ids = list(pool.map(launch_on, MACHINES))
            wait_for("a pool step's request held in flight", lambda: held_in_flight(emulator), 180, every_s=0.2)
            wait_for("the other run to wait for the pool", lambda: blocked_runs(dagster, run_ids), 180, every_s=0.5)
            emulator.post("/release")
            for run_id in run_ids:
                run = dagster.finished_run(run_id, 240)
                assert run["status"] == "SUCCESS", dagster.errors(run_id) + "\n" + groups["services"].tail()
            first, second = (intervals(events_of(dagster, r), in_pool) for r in run_ids)
            overlaps = [(a, b) for a, (s1, e1) in first.items() for b, (s2, e2) in second.items() if s1 < e2 and s2 < e1]
            assert not overlaps, f"steps in pool {POOL} of the two machines ran at the same time: {overlaps}"
            assert all((tmp_path / m / "data" / "work.duckdb").is_file() for m in MACHINES), "each machine its own work file"
            after_both = emulator_state(emulator_url), state_records(state_url)

            # A second writer that bypasses the pool, while machine A's groups sink is writing.
            emulator.post("/hold")
            resync = {"ops": {"userflow_groups": {"config": {"full_resync": True}}}}
            writing = launch(dagster, "machine_a", resync, assetSelection=[{"path": ["userflow_groups"]}])
            wait_for("machine A's groups request held in flight", lambda: held_in_flight(emulator), 180, every_s=0.2)
            use_location_env(monkeypatch, {**shared, "USERFLOW_WORK_DB_PATH": str(tmp_path / "intruder" / "work.duckdb")})
            intruder = run_sync(spec_from_environment(), selection=GROUPS_PATH, raise_on_error=False)
            emulator.post("/release")
            assert not intruder.success
            refused = failure_message(intruder)
            assert "another process is writing the groups' sync state" in refused, refused
            assert f"userflow_assets run {writing}" in refused, refused
            assert dagster.finished_run(writing, 240)["status"] == "SUCCESS", dagster.errors(writing)
        finally:
            for group in groups.values():
                group.close()

    # One uninterrupted run of the same spec on a fresh emulator and state ends the same.
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as reference_url:
        reference_state = fresh_database(postgres, "reference")
        use_location_env(
            monkeypatch,
            {"USERFLOW_BASE_URL": reference_url, "USERFLOW_STATE_DB_PATH": reference_state,
             "USERFLOW_WORK_DB_PATH": str(tmp_path / "reference" / "work.duckdb")},
        )
        single = run_sync(spec_from_environment())
        assert single.success, failure_message(single)
        assert after_both == (emulator_state(reference_url), state_records(reference_state))


def importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
