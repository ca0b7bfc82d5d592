"""Recovery of dead runs (userflow_assets.recovery) on a real SQLite instance: only runs whose
recorded run worker is provably gone are marked failed and lose their `userflow_api` slots;
a live run, a run recorded on another host and a run that recorded nothing keep theirs."""

import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob

from userflow_assets.recovery import RunWorker, recover_dead_runs
from userflow_assets.settings import API_POOL as POOL
from userflow_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")

LOG = logging.getLogger("test_reliability_recovery")
PROBE_JOBS = Path(__file__).with_name("recovery_probe_jobs.py")


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 10)
        yield instance


def started_run(instance: dg.DagsterInstance, worker: RunWorker | None, holds_slot: bool = True) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(
            job_name="userflow_sync",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags=worker.tags() if worker else {},
        )
    )
    if holds_slot:
        claim = instance.event_log_storage.claim_concurrency_slot(POOL, run_id, "userflow_groups")
        assert claim.is_claimed
    return run_id


def reaped_worker() -> RunWorker:
    """The worker record of a process that ran on this machine and has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    here = RunWorker.current()
    started = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    child.communicate(b"")  # it exits; communicate() reaps it
    assert child.returncode == 0
    return replace(here, pid=child.pid, started=started)


def holders(instance: dg.DagsterInstance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_only_runs_whose_worker_is_gone_are_recovered(instance: dg.DagsterInstance) -> None:
    here = RunWorker.current()
    assert here.started is not None and here.boot_id and here.pid_namespace

    live = started_run(instance, here)  # this very process: alive
    dead = started_run(instance, reaped_worker())
    reused = started_run(instance, replace(here, started=here.started - 1))  # our pid, another process before us
    elsewhere = started_run(instance, replace(reaped_worker(), host=f"not-{here.host}"))
    other_boot = started_run(instance, replace(reaped_worker(), boot_id="00000000-0000-0000-0000-000000000000"))
    unrecorded = started_run(instance, None)
    dead_without_slot = started_run(instance, reaped_worker(), holds_slot=False)
    assert holders(instance) == {live, dead, reused, elsewhere, other_boot, unrecorded}

    recovered = recover_dead_runs(instance, own_run_id=str(uuid.uuid4()), log=LOG)

    assert {r.run_id for r in recovered} == {dead, reused, dead_without_slot}
    assert {r.run_id: r.slots for r in recovered} == {dead: 1, reused: 1, dead_without_slot: 0}
    assert holders(instance) == {live, elsewhere, other_boot, unrecorded}
    for run_id in (dead, reused, dead_without_slot):
        assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    for run_id in (live, elsewhere, other_boot, unrecorded):
        assert status(instance, run_id) == dg.DagsterRunStatus.STARTED
    failure = instance.get_records_for_run(dead, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert len(failure) == 1 and "Run worker gone" in failure[0].event_log_entry.dagster_event.message

    # Nothing more to do: a second pass recovers nothing and frees nothing.
    assert recover_dead_runs(instance, own_run_id=str(uuid.uuid4()), log=LOG) == []
    assert holders(instance) == {live, elsewhere, other_boot, unrecorded}


def test_a_run_never_recovers_itself(instance: dg.DagsterInstance) -> None:
    own = started_run(instance, reaped_worker())  # even with a worker record that looks dead
    assert recover_dead_runs(instance, own_run_id=own, log=LOG) == []
    assert holders(instance) == {own}
    assert status(instance, own) == dg.DagsterRunStatus.STARTED


def test_an_exited_unreaped_worker_is_gone(instance: dg.DagsterInstance) -> None:
    """A killed run worker whose parent has not reaped it yet (a zombie) still has its pid."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        worker = replace(
            RunWorker.current(),
            pid=child.pid,
            started=int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]),
        )
        alive = started_run(instance, worker)
        assert recover_dead_runs(instance, own_run_id="self", log=LOG) == []
        assert holders(instance) == {alive}

        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
        os.kill(child.pid, 0)  # the pid still answers
        assert [r.run_id for r in recover_dead_runs(instance, own_run_id="self", log=LOG)] == [alive]
        assert holders(instance) == set()
        assert status(instance, alive) == dg.DagsterRunStatus.FAILURE
    finally:
        child.kill()
        child.wait()


def test_worker_tags_round_trip() -> None:
    here = RunWorker.current()
    assert RunWorker.from_tags(here.tags()) == here
    assert RunWorker.from_tags({}) is None
    assert RunWorker.from_tags({**here.tags(), "userflow/worker": "not json"}) is None


@pytest.mark.parametrize(("job", "recorded"), [("in_process_probe", True), ("multiprocess_probe", False)])
def test_the_run_worker_is_recorded_only_when_steps_run_in_it(job: str, recorded: bool, tmp_path: Path) -> None:
    """Under the in-process executor the step's process is the run's (here: this process, as
    `execute_job` runs the run worker in it); under the multiprocess executor each step has a
    process of its own that ends with the step, so recording it would make a live run look dead."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(ReconstructableJob.for_file(str(PROBE_JOBS), job), instance=instance)
        assert result.success
        tags = dict(instance.get_run_by_id(result.run_id).tags)  # type: ignore[union-attr]
    assert RunWorker.from_tags(tags) == (RunWorker.current() if recorded else None)
