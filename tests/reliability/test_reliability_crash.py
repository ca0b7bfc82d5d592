"""Crash recovery: `dg launch` killed by SIGKILL at each failpoint, then rerun, ends exactly where
an uninterrupted run ends, in Userflow (the emulator) and in the sync state; in the events sink,
up to the copies at-least-once delivery allows. No daemon runs and nothing is released by hand:
the rerun recovers the killed run (marks it failed, frees its pool slot) by itself."""

import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from harness import emulator_post, query
from reliability_kit import (
    Launcher,
    LaunchZygote,
    Snapshot,
    StateTarget,
    has_state_table,
    once_per_session,
    sent_event_keys,
    snapshot,
    state_records,
    state_rows,
)

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.failpoints import EVENT_POINTS, POINTS
from userflow_assets.recovery import WORKER_HOST_TAG
from userflow_assets.sample import generate_warehouse

KEY = "uf_reliability_crash_key"
# Checkpoints every 200 records and events (the sinks' batch_size, 500 by default), so 500 users
# still make three batches and mid_batch and between_batches are reached. Seed 7's users stay
# under the blocking 5% checks.
USERS = 500
BATCH = 200
RUN_CONFIG = {"ops": {op: {"config": {"batch_size": BATCH}} for op in ("userflow_users", "userflow_groups", "userflow_events")}}
SIGKILL = -9
# A rerun that waited for the killed run's pool slot would never end; this bounds the wait.
RERUN_TIMEOUT_S = 180
EVENTS_BATCH = BATCH
MAX_CONCURRENCY = 16  # userflow.max_concurrency in defs.yaml
# Copies each events failpoint must cause at least: half a batch confirmed and unrecorded, a
# batch written but not committed; right after a commit only requests in flight can be copied.
BACKENDS = ["duckdb", "postgres"]
MIN_COPIES = {"events_mid_batch": EVENTS_BATCH // 2, "events_state_write": 1, "events_between_batches": 0}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Reference:
    emulator: Snapshot
    records: set[tuple[str, str, str]]
    sent_events: set[str]
    pending_events: set[tuple[str, str]]


def make_warehouse(folder: Path) -> Path:
    path = folder / "warehouse.duckdb"
    generate_warehouse(path, users=USERS, seed=7)
    # The planted duplicate account keeps its first row: with both (rejected as a pair) 2 of
    # about 26 groups would be rejected, over the blocking 5% check. The long name still is.
    query(
        path,
        "DELETE FROM accounts WHERE (account_id, updated_at) IN (SELECT account_id, max(updated_at) FROM accounts "
        "WHERE account_id IN (SELECT row_key FROM sample_dirty_rows WHERE kind = 'duplicate_account_id') GROUP BY 1)",
    )
    # Every other event, the planted ones kept: about 500 events still make three batches,
    # so every events failpoint is reached, and each run sends fewer requests.
    query(
        path,
        "DELETE FROM events WHERE rowid % 2 = 1 AND event_id NOT IN "
        "(SELECT row_key FROM sample_dirty_rows WHERE table_name = 'events')",
    )
    assert query(path, "SELECT count(*) FROM events")[0][0] > 2 * EVENTS_BATCH
    return path


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read only, by every worker's runs."""
    return once_per_session(tmp_path_factory, "crash_warehouse", make_warehouse)


@pytest.fixture(scope="module")
def crash_url() -> Iterator[str]:
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as url:
        yield url


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchZygote]:
    """Every `dg launch` of this module forked from one process that has imported the CLI and
    the project (a process of its own each, killed at its failpoint as any other)."""
    launches = LaunchZygote(tmp_path_factory.mktemp("zygote") / "zygote.log")
    yield launches
    launches.close()


def reset(url: str) -> None:
    emulator_post(url, "reset")


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, warehouse: Path, crash_url: str, zygote: LaunchZygote
) -> Reference:
    """One uninterrupted run on a fresh emulator and state (made by one worker for all)."""

    def uninterrupted(root: Path) -> Reference:
        reset(crash_url)
        launcher = Launcher.create(root, warehouse, crash_url, KEY, zygote, RUN_CONFIG)
        done = launcher.launch(root / "state.duckdb")
        assert done.returncode == 0, done.stderr[-3000:]
        state_db = root / "state.duckdb"
        return Reference(snapshot(crash_url), state_records(state_db), sent_event_keys(state_db), pending_events(state_db))

    return once_per_session(tmp_path_factory, "crash_reference", uninterrupted)


def pending_events(state_db: StateTarget) -> set[tuple[str, str]]:
    """(key, status) of the events the state still owes (here: held for users never synced)."""
    return set(state_rows(state_db, "SELECT key, status FROM sync.pending_events"))


def synced_ids_held_by_userflow(state_db: StateTarget, held: Snapshot) -> list[str]:
    """IDs the state calls synced that Userflow does not hold (must be none: invariant 1)."""
    if not has_state_table(state_db, "records"):  # opening it shows nothing half-written
        return []
    rows = state_rows(state_db, "SELECT object_type, id FROM sync.records")
    return [f"{t}:{i}" for t, i in rows if i not in (held.users if t == "user" else held.groups)]


@pytest.fixture(params=BACKENDS)
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> StateTarget:
    """Where the crashed and the rerun sync keep their state: a DuckDB file, or a Postgres database."""
    return tmp_path / "state.duckdb" if request.param == "duckdb" else request.getfixturevalue("postgres_url")


@pytest.fixture
def launcher(tmp_path: Path, warehouse: Path, crash_url: str, zygote: LaunchZygote) -> Launcher:
    """A reset emulator, and launches against this test's files, forked by the module's zygote."""
    reset(crash_url)
    return Launcher.create(tmp_path, warehouse, crash_url, KEY, zygote, RUN_CONFIG)


@pytest.mark.parametrize("point", POINTS)
def test_killed_run_converges_after_rerun(
    point: str, launcher: Launcher, crash_url: str, reference: Reference, state_db: StateTarget
) -> None:
    killed = launcher.launch(state_db, failpoint=point)
    assert killed.returncode == SIGKILL, f"not killed at {point}: {killed.returncode}\n{killed.stderr[-3000:]}"
    assert synced_ids_held_by_userflow(state_db, snapshot(crash_url)) == []

    (killed_run,) = launcher_runs(launcher)
    assert killed_run.status == dg.DagsterRunStatus.STARTED  # nothing in a killed process can say otherwise
    # No daemon, nothing released by hand: the rerun recovers the killed run by itself.
    after = rerun_recovering(launcher, state_db, killed_run.run_id, crash_url, reference)
    assert after.events == reference.emulator.events  # each event once, as uninterrupted
    assert state_records(state_db) == reference.records
    assert sent_event_keys(state_db) == reference.sent_events


@pytest.mark.parametrize("point", EVENT_POINTS)
def test_killed_events_sink_loses_no_event_and_resends_at_most_one_batch(
    point: str, launcher: Launcher, crash_url: str, reference: Reference, state_db: StateTarget
) -> None:
    """Killed inside the events sink: after a rerun every event is in Userflow, and the only
    copies are events Userflow had confirmed that the state had not recorded yet (at-least-once
    delivery: at most one batch, plus the requests that were in flight)."""
    killed = launcher.launch(state_db, failpoint=point)
    assert killed.returncode == SIGKILL, f"not killed at {point}: {killed.returncode}\n{killed.stderr[-3000:]}"
    at_kill = snapshot(crash_url)
    held_at_kill = sum(at_kill.events.values())
    recorded_at_kill = len(sent_event_keys(state_db))
    assert 0 < held_at_kill < sum(reference.emulator.events.values())  # killed in the middle of the events
    assert recorded_at_kill <= held_at_kill  # nothing recorded as sent that Userflow does not hold
    (killed_run,) = launcher_runs(launcher)

    after = rerun_recovering(launcher, state_db, killed_run.run_id, crash_url, reference)
    assert reference.emulator.events - after.events == Counter(), "events lost"
    copies = sum((after.events - reference.emulator.events).values())
    # Only events Userflow held at the kill but the state had not recorded can be sent again...
    assert copies <= held_at_kill - recorded_at_kill
    # ...which is at most one batch and the requests in flight beside it.
    assert copies <= EVENTS_BATCH + MAX_CONCURRENCY
    assert copies >= MIN_COPIES[point], f"{point} is not where its name says: {copies} copies"
    assert sent_event_keys(state_db) == reference.sent_events
    assert state_records(state_db) == reference.records
    assert pending_events(state_db) == reference.pending_events


def test_killed_run_does_not_block_the_next_run(
    launcher: Launcher, state_db: StateTarget
) -> None:
    killed = launcher.launch(state_db, failpoint="mid_batch")
    assert killed.returncode == SIGKILL
    (killed_run,) = launcher_runs(launcher)
    # The situation the next run meets: a STARTED run that holds the only pool slot (limit 1).
    assert killed_run.status == dg.DagsterRunStatus.STARTED
    assert launcher.held_slots() == [killed_run.run_id]
    with launcher.instance() as instance:
        worker = instance.get_run_by_id(killed_run.run_id).tags  # type: ignore[union-attr]
    assert worker[WORKER_HOST_TAG] == socket.gethostname()

    rerun = launcher.launch(state_db, timeout_s=RERUN_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_recovered(launcher, killed_run.run_id)
    assert f"Recovered run {killed_run.run_id}" in rerun.stderr


def launcher_runs(launcher: Launcher) -> list[dg.DagsterRun]:
    """The runs of the launcher's instance, newest first."""
    with launcher.instance() as instance:
        return list(instance.get_runs())


def rerun_recovering(launcher: Launcher, state_db: StateTarget, killed_run_id: str, url: str, reference: Reference) -> Snapshot:
    """Launch again; it must recover the killed run and leave the objects of an uninterrupted run."""
    rerun = launcher.launch(state_db, timeout_s=RERUN_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_recovered(launcher, killed_run_id)
    after = snapshot(url)
    assert after.users == reference.emulator.users
    assert after.groups == reference.emulator.groups
    assert after.memberships == reference.emulator.memberships
    return after


def assert_recovered(launcher: Launcher, killed_run_id: str) -> None:
    """The newest run succeeded after marking the killed run failed and freeing its pool slots,
    and says so in its warehouse metadata."""
    rerun, killed = launcher_runs(launcher)[:2]
    assert killed.run_id == killed_run_id
    assert rerun.status == dg.DagsterRunStatus.SUCCESS
    assert killed.status == dg.DagsterRunStatus.FAILURE
    assert launcher.held_slots() == []
    with launcher.instance() as instance:
        records = instance.get_records_for_run(rerun.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        failure = instance.get_records_for_run(killed_run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    notes = [
        r.asset_materialization.metadata["recovered_runs"].value  # type: ignore[union-attr]
        for r in records
        if "recovered_runs" in r.asset_materialization.metadata  # type: ignore[union-attr]
    ]
    assert len(notes) == 1 and killed_run_id in notes[0], notes
    assert len(failure) == 1 and f"recovered by run {rerun.run_id}" in str(failure[0].event_log_entry.message)
