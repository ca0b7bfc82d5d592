"""End to end: a gRPC code server, the webserver and the daemon on loopback, the emulator, and a
sample warehouse. Through Dagster's GraphQL API (and `dagster job backfill`): backfills succeed, a sensor
tick and a schedule tick each start a sync run that succeeds, a warehouse change starts one
more, and the emulator ends up holding exactly the users the sync state says it sent.

The schedule is deterministic without waiting for a 5-minute boundary: the code location reads
its start minute from the environment, the test picks the first minute at least SCHEDULE_LEAD_S
ahead, and turns the schedule on (it ships off) through GraphQL as soon as the location is
loaded, so the daemon counts ticks from before that minute.
"""

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from orchestration_deployment import Dagster, deployment_env, start_deployment, write_instance, write_workspace
from orchestration_harness import KEY, Emulator
from orchestration_location import SCHEDULE_MINUTE_VARIABLE
from orchestration_processes import BIN, GraphQL, ProcessGroup, free_port, wait_for

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.orchestration.backfill import BACKFILL_ASSET, BACKFILL_JOB
from userflow_assets.orchestration.schedules import SCHEDULE_NAME, SYNC_RUN_TAG
from userflow_assets.sample import generate_warehouse

pytestmark = pytest.mark.slow

SLICES = ["2024-05-01", "2024-06-01", "2024-07-01"]  # from GraphQL, as the UI launches a backfill
CLI_SLICES = ["2024-08-01", "2024-09-01"]  # with `dagster job backfill`: one run per slice
SCHEDULE_LEAD_S = 60
CHANGED_PLAN = "e2e-changed"

BACKFILL_RUNS = """
query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { runId status } } } }"""
START_SCHEDULE = """
mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { __typename
  ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status } ... on PythonError { message } } }"""
SLICE_RECORDS = """
query($key: AssetKeyInput!, $partitions: [String!]) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(partitions: $partitions) { partition runId
    metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""

TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def next_schedule_tick(now: datetime) -> datetime:
    """The first whole minute at least SCHEDULE_LEAD_S from now."""
    ahead = now + timedelta(seconds=SCHEDULE_LEAD_S)
    return ahead.replace(second=0, microsecond=0) + timedelta(minutes=1)


@pytest.fixture
def emulator_url() -> Iterator[str]:
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as url:
        yield url


def change_user(warehouse: Path) -> str:
    """Give one synced user a new plan, as the product would (new updated_at); retried while a
    run has the warehouse open for reading."""

    def attempt() -> str | None:
        try:
            with duckdb.connect(str(warehouse)) as con:
                user_id = con.execute(
                    "SELECT user_id FROM users WHERE user_id LIKE 'usr_%' AND role <> 'billing' "
                    "AND email IS NOT NULL ORDER BY user_id LIMIT 1"
                ).fetchone()[0]
                con.execute(
                    "UPDATE users SET plan = ?, updated_at = now()::TIMESTAMP WHERE user_id = ?",
                    [CHANGED_PLAN, user_id],
                )
                return str(user_id)
        except duckdb.IOException:
            return None

    return wait_for("the warehouse to accept a write", attempt, 60, every_s=0.5)


def assert_slices_synced(dagster: Dagster, held: dict[str, dict[str, Any]], every_slice: list[str]) -> None:
    """Every slice is materialized, and the runs' record counts (a run may cover several slices)
    add up to the users of those months the emulator holds."""
    slices = dagster.graphql(SLICE_RECORDS, {"key": {"path": [BACKFILL_ASSET]}, "partitions": every_slice})
    records_by_run: dict[str, int] = {}
    materialized: set[str] = set()
    for event in slices["assetOrError"]["assetMaterializations"]:
        entries = {e["label"]: e.get("intValue") for e in event["metadataEntries"]}
        records_by_run[event["runId"]] = entries["records"]
        materialized.add(event["partition"])
    assert sorted(materialized) == every_slice
    months = tuple(key[:7] for key in every_slice)
    in_slices = [u for u in held.values() if str(u["attributes"].get("signed_up_at", "")).startswith(months)]
    assert len(in_slices) == sum(records_by_run.values()) > 0


@pytest.mark.timeout(1200)
def test_backfill_schedule_and_sensor_through_a_real_deployment(tmp_path: Path, emulator_url: str) -> None:
    warehouse, state_db, home = tmp_path / "warehouse.duckdb", tmp_path / "state" / "state.duckdb", tmp_path / "home"
    generate_warehouse(warehouse, users=300)
    write_instance(home)
    grpc_port, web_port = free_port(), free_port()
    write_workspace(tmp_path / "workspace.yaml", grpc_port)
    tick_at = next_schedule_tick(datetime.now(UTC))
    schedule_minute = {SCHEDULE_MINUTE_VARIABLE: str(tick_at.hour * 60 + tick_at.minute)}
    env = {**os.environ, **deployment_env(home, warehouse, state_db, emulator_url, schedule_minute)}
    group = ProcessGroup(tmp_path / "logs", env)
    emulator = Emulator(emulator_url)
    try:
        start_deployment(group, tmp_path / "workspace.yaml", grpc_port, web_port)
        dagster = Dagster(GraphQL(f"http://127.0.0.1:{web_port}/graphql"))

        dagster.wait_for_location(group, "the webserver to load the code location from the code server", 120)
        selector = {**dagster.selector, "scheduleName": SCHEDULE_NAME}
        started = dagster.graphql(START_SCHEDULE, {"selector": selector})["startSchedule"]
        assert started["__typename"] == "ScheduleStateResult", started
        assert started["scheduleState"]["status"] == "RUNNING"
        # The schedule fires every 5 minutes from the chosen minute: the first tick after it was
        # started is the one to wait for (a slow start costs a later tick, never the test).
        while tick_at < datetime.now(UTC) + timedelta(seconds=15):
            tick_at += timedelta(minutes=5)

        # A backfill of three slices, as the UI launches it (an asset backfill the daemon runs).
        launched = dagster.graphql(
            LAUNCH_BACKFILL,
            {"params": {"assetSelection": [{"path": [BACKFILL_ASSET]}], "partitionNames": SLICES}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        # The same from the command line: runs the daemon's run queue lets through one pool slot at a time.
        cli = subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "backfill",
                "-j",
                BACKFILL_JOB,
                "--partitions",
                ",".join(CLI_SLICES),
                "--noprompt",
                "-w",
                str(tmp_path / "workspace.yaml"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr[-3000:]
        cli_backfill = re.search(r"Launched backfill job `([^`]+)`", cli.stdout)
        assert cli_backfill is not None, cli.stdout

        # The sensor's first tick (no cursor yet) starts a sync run.
        first_sensor_run = wait_for("a sensor tick with a run", lambda: (dagster.sensor_run_ids() or [None])[0], 90)
        run = dagster.finished_run(first_sensor_run, 180)
        assert (run["status"], run["jobName"]) == ("SUCCESS", "userflow_sync"), dagster.errors(first_sensor_run)
        assert {"key": SYNC_RUN_TAG, "value": "sensor"} in run["tags"]

        # A warehouse change: the next probe differs, and exactly one more sensor run follows.
        user_id = change_user(warehouse)
        second_sensor_run = wait_for(
            "a sensor tick with a run after the change",
            lambda: next((r for r in dagster.sensor_run_ids() if r != first_sensor_run), None),
            90,
        )
        assert dagster.finished_run(second_sensor_run, 180)["status"] == "SUCCESS", dagster.errors(second_sensor_run)
        assert emulator.users()[user_id]["attributes"]["plan"] == CHANGED_PLAN

        def backfill_done() -> str | None:
            status = dagster.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]["status"]
            return status if status in TERMINAL_BACKFILL else None

        assert wait_for("the backfill to finish", backfill_done, 240) == "COMPLETED_SUCCESS", group.tail()

        def cli_runs_done() -> list[str] | None:
            runs = dagster.graphql(BACKFILL_RUNS, {"id": cli_backfill.group(1)})["runsOrError"]["results"]
            statuses = [r["status"] for r in runs]
            return (
                statuses
                if len(runs) == len(CLI_SLICES)
                and "SUCCESS" in statuses
                and set(statuses) <= {"SUCCESS", "FAILURE", "CANCELED"}
                else None
            )

        assert wait_for("the command-line backfill's runs", cli_runs_done, 240) == ["SUCCESS"] * len(CLI_SLICES)

        # The schedule's tick at the minute chosen above starts a sync run.
        def schedule_run() -> str | None:
            group.check_alive()
            ticks = [t for t in dagster.schedule_ticks() if t["runIds"]]
            return ticks[0]["runIds"][0] if ticks else None

        wait_seconds = (tick_at - datetime.now(UTC)).total_seconds() + 90
        scheduled = wait_for(f"the schedule's tick at {tick_at:%H:%M} UTC", schedule_run, max(wait_seconds, 30))
        run = dagster.finished_run(scheduled, 180)
        assert (run["status"], run["jobName"]) == ("SUCCESS", "userflow_sync"), dagster.errors(scheduled)
        assert {"key": SYNC_RUN_TAG, "value": "schedule"} in run["tags"]
        assert {"key": "dagster/schedule_name", "value": SCHEDULE_NAME} in run["tags"]

        wait_for("every run to finish", lambda: True if not dagster.active_runs() else None, 120)
        # No change since the second sensor run: no third sensor run.
        assert len(dagster.sensor_run_ids()) == 2

        held = emulator.users()
        assert_slices_synced(dagster, held, SLICES + CLI_SLICES)

        with duckdb.connect(str(state_db), read_only=True) as con:
            synced = {r[0] for r in con.execute("SELECT id FROM sync.records WHERE object_type = 'user'").fetchall()}
        # Users Userflow holds attributes for are exactly those the state records as synced; the
        # others are users events named that the filter keeps out (billing), which an event creates empty.
        assert {user_id for user_id, user in held.items() if user["attributes"]} == synced
        assert len(synced) > 250
    finally:
        group.close()
    assert all(p.poll() is not None for p in group.processes.values())
