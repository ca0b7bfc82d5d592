"""A real deployment on loopback for the slow orchestration tests: the instance and workspace
files, the code server, webserver and daemon started together, and the GraphQL questions the
tests ask the webserver."""

from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import yaml
from orchestration_harness import KEY
from orchestration_processes import BIN, GraphQL, ProcessGroup, wait_for

from userflow_assets.orchestration.schedules import SCHEDULE_NAME
from userflow_assets.orchestration.sensors import SENSOR_NAME
from userflow_assets.settings import INSTANCE_TAG, PROJECT_ROOT

LOCATION = "userflow_e2e"
LOCATION_FILE = Path(__file__).with_name("orchestration_location.py")
# The run queue's rule of the project's dagster.yaml: one run at a time per sync (its tag's value).
SYNC_RUNS_ONE_AT_A_TIME = [{"key": INSTANCE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]

SENSOR_TICKS = """
query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename
  ... on Sensor { sensorState { status ticks(limit: 50, statuses: [SUCCESS]) { status runIds skipReason } } } } }"""
SCHEDULE_TICKS = """
query($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) { __typename
  ... on Schedule { scheduleState { status ticks(limit: 10) { status runIds timestamp } } } } }"""
RUN = """
query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status jobName tags { key value } } } }"""
ACTIVE_RUNS = """
{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) { ... on Runs { results { runId } } } }"""
RUN_ERRORS = """
query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events { __typename
  ... on MessageEvent { message } ... on ErrorEvent { error { message } } } } } }"""
LAUNCH_RUN = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_EVENTS = """
query($runId: ID!) { logsForRun(runId: $runId, limit: 10000) { __typename
  ... on EventConnection { events { __typename
    ... on MessageEvent { timestamp stepKey eventType message } } } } }"""

STEP_END = {"STEP_SUCCESS", "STEP_FAILURE"}
RUN_END = {"RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED"}
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename
  ... on PythonError { message } } } } } }"""


def write_instance(home: Path, run_tag_limits: list[dict[str, Any]] | None = SYNC_RUNS_ONE_AT_A_TIME) -> dict[str, Any]:
    """The project's dagster.yaml in `home`, its run queue's tag rules `run_tag_limits` (None: no
    rule); returns the config written."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    if run_tag_limits is None:
        config["concurrency"]["runs"].pop("tag_concurrency_limits", None)
    else:
        config["concurrency"]["runs"]["tag_concurrency_limits"] = run_tag_limits
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    # Create the SQLite storage once here: the webserver and the daemon racing to create it
    # can both stamp its schema version.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return config


def write_workspace(path: Path, grpc_port: int) -> None:
    """deploy/workspace.grpc.yaml, pointed at this test's code server."""
    workspace = yaml.safe_load((PROJECT_ROOT / "deploy" / "workspace.grpc.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    server.update(host="127.0.0.1", port=grpc_port, location_name=LOCATION)
    path.write_text(yaml.safe_dump(workspace))


def deployment_env(
    home: Path, warehouse: Path, state_db: Path, emulator_url: str, more: dict[str, str]
) -> dict[str, str]:
    """What the deployment's processes read: the instance, the project's files, the emulator and
    its key, and `more`."""
    return {
        "DAGSTER_HOME": str(home),
        "USERFLOW_WAREHOUSE_PATH": str(warehouse),
        "USERFLOW_STATE_DB_PATH": str(state_db),
        "USERFLOW_BASE_URL": emulator_url,
        "USERFLOW_API_KEY": KEY,
        **more,
    }


def start_deployment(
    group: ProcessGroup, workspace: Path, grpc_port: int, web_port: int, location_file: Path = LOCATION_FILE
) -> None:
    """The scaled-out shape on loopback: one code server (serving `location_file`), and a
    webserver and a daemon loading it."""
    cwd = workspace.parent
    group.start(
        "code-server",
        [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port)]
        # Its folder resolves the location file's own imports (the test helpers beside it).
        + ["-f", str(location_file), "-d", str(location_file.parent), "--location-name", LOCATION],
        cwd=cwd,
    )
    web = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", str(workspace)]
    group.start("webserver", web, cwd=cwd)
    group.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=cwd)


class Dagster:
    """The GraphQL questions the tests ask, on top of one webserver."""

    def __init__(self, graphql: GraphQL) -> None:
        self.graphql = graphql
        self.selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}

    def sensor_run_ids(self) -> list[str]:
        data = self.graphql(SENSOR_TICKS, {"selector": {**self.selector, "sensorName": SENSOR_NAME}})
        ticks = data["sensorOrError"]["sensorState"]["ticks"]
        return [run_id for tick in reversed(ticks) for run_id in tick["runIds"]]

    def schedule_ticks(self) -> list[dict[str, Any]]:
        data = self.graphql(SCHEDULE_TICKS, {"selector": {**self.selector, "scheduleName": SCHEDULE_NAME}})
        return data["scheduleOrError"]["scheduleState"]["ticks"]

    def wait_for_location(self, group: ProcessGroup, what: str, timeout_s: float) -> None:
        """Until the webserver has loaded the code location (the deployment's processes alive)."""

        def loaded() -> bool | None:
            group.check_alive()
            entries = self.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
            kinds = {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
            return True if kinds.get(LOCATION) == "RepositoryLocation" else None

        wait_for(what, loaded, timeout_s)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.graphql(RUN, {"runId": run_id})["runOrError"]

    def finished_run(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

        return wait_for(f"run {run_id} to finish", done, timeout_s)

    def errors(self, run_id: str) -> str:
        """What went wrong in a run, for a failing assertion's message."""
        events = self.graphql(RUN_ERRORS, {"runId": run_id})["logsForRun"]["events"]
        return "\n".join(
            f"{e['__typename']}: {e.get('message')} {(e.get('error') or {}).get('message', '')}"
            for e in events
            if "Failure" in e["__typename"] or e.get("error")
        )

    def active_runs(self) -> list[str]:
        return [r["runId"] for r in self.graphql(ACTIVE_RUNS)["runsOrError"]["results"]]


def events_of(dagster: Dagster, run_id: str) -> list[dict[str, Any]]:
    logs = dagster.graphql(RUN_EVENTS, {"runId": run_id})["logsForRun"]
    assert logs["__typename"] == "EventConnection", logs
    return [e for e in logs["events"] if e.get("eventType") or e.get("message")]  # log lines have no type


def intervals(events: list[dict[str, Any]], steps: set[str]) -> dict[str, tuple[float, float]]:
    """Step key -> (start, end) in epoch seconds, for the steps in `steps` that started."""
    starts = {e["stepKey"]: float(e["timestamp"]) / 1000 for e in events if e["eventType"] == "STEP_START"}
    ends = {e["stepKey"]: float(e["timestamp"]) / 1000 for e in events if e["eventType"] in STEP_END}
    assert set(starts) == set(ends), f"steps started but never ended: {set(starts) ^ set(ends)}"
    return {step: (starts[step], ends[step]) for step in starts if step in steps}


def run_window(events: list[dict[str, Any]]) -> tuple[float, float]:
    start = next(float(e["timestamp"]) / 1000 for e in events if e["eventType"] == "RUN_START")
    end = next(float(e["timestamp"]) / 1000 for e in events if e["eventType"] in RUN_END)
    return start, end


def held_in_flight(emulator: httpx.Client) -> bool | None:
    return True if emulator.get("/requests", params={"limit": 0}).json()["in_flight"] else None


def _at(event: dict[str, Any]) -> float:
    return float(event["timestamp"]) / 1000


def lease_windows(events: list[dict[str, Any]], pool: str) -> list[tuple[float, float]]:
    """(taken, given back) of each lease of `pool` a run held (client/lease.py): the windows in
    which its clients could spend the pool's key."""
    taken = [_at(e) for e in events if (e["message"] or "").startswith(f"Lease of pool {pool} taken")]
    given = [_at(e) for e in events if (e["message"] or "").startswith(f"Lease of pool {pool} given back")]
    assert len(taken) == len(given), f"leases of {pool} taken {taken} but given back {given}"
    return list(zip(taken, given))


def waited_for_pool(events: list[dict[str, Any]], pool: str) -> bool:
    """A step of the run waited for `pool`: in Dagster's claim, or for the key's lease."""
    marks = (f"blocked by limit for pool {pool}", f"Waiting for a lease of pool {pool}")
    return any(mark in (e["message"] or "") for e in events for mark in marks)


def overlapping(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[tuple[float, float], ...]]:
    return [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]
