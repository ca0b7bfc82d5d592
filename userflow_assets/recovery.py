"""Recovering runs whose run worker died, so a killed run does not block the next one.

A run killed outright (SIGKILL, the OOM killer) stays STARTED and keeps its `userflow_api`
pool slot: nothing in the dead process can give it back. With the daemon running, Dagster's
run monitoring frees it eventually; without one (`dg launch`, `dagster job execute`) the next
run would wait for that slot forever.

So every sync run records its run worker (host, pid, the process's start time, boot and pid
namespace) as run tags in its first step, and before its first pool step (the warehouse steps
come first) it looks at the runs that hold or wait for a `userflow_api` slot and the STARTED
runs recorded on this host. A run is recovered (marked failed, its slots freed) only when its
recorded process is *provably* gone: same host, same boot, same pid namespace, and either no
process with that pid, a different process under the reused pid (another start time), or a
zombie. Anything else (another machine or container, a run that recorded no worker, a
platform without /proc) is left alone for the daemon's run monitoring, so the slot of a live
run is never freed.
"""

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason

WORKER_HOST_TAG = "userflow/worker_host"
WORKER_TAG = "userflow/worker"
_RECOVERABLE = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
_PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(_PROC / "self" / "ns" / "pid")  # "pid:[4026531836]"
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks after boot) of `pid` from /proc, or None."""
    text = _read(_PROC / str(pid) / "stat")
    if text is None:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields follow the last ")".
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])  # field 3 (state) and field 22 (starttime)
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class RunWorker:
    """The process a run executes in, as recorded in the run's tags."""

    host: str
    pid: int
    started: int | None = None  # /proc/<pid>/stat starttime: tells a reused pid apart
    boot_id: str | None = None
    pid_namespace: str | None = None

    @staticmethod
    def current() -> "RunWorker":
        pid = os.getpid()
        stat = _proc_stat(pid)
        return RunWorker(
            host=socket.gethostname(),
            pid=pid,
            started=stat[1] if stat else None,
            boot_id=_read(_PROC / "sys" / "kernel" / "random" / "boot_id"),
            pid_namespace=_pid_namespace(),
        )

    def tags(self) -> dict[str, str]:
        process = {
            "pid": self.pid,
            "started": self.started,
            "boot_id": self.boot_id,
            "pid_namespace": self.pid_namespace,
        }
        return {WORKER_HOST_TAG: self.host, WORKER_TAG: json.dumps(process, sort_keys=True)}

    @staticmethod
    def from_tags(tags: dict[str, str]) -> "RunWorker | None":
        host, process = tags.get(WORKER_HOST_TAG), tags.get(WORKER_TAG)
        if not host or not process:
            return None
        try:
            fields: dict[str, Any] = json.loads(process)
            return RunWorker(
                host=host,
                pid=int(fields["pid"]),
                started=None if fields.get("started") is None else int(fields["started"]),
                boot_id=fields.get("boot_id"),
                pid_namespace=fields.get("pid_namespace"),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def gone_because(self, here: "RunWorker") -> str | None:
        """Why this worker's process has provably ended, seen from `here`; None if it may be alive."""
        if os.name != "posix":
            return None  # os.kill(pid, 0) would terminate the process on Windows
        if (self.host, self.boot_id, self.pid_namespace) != (here.host, here.boot_id, here.pid_namespace):
            return None  # another machine, boot or container: its pids mean nothing here
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return f"no process {self.pid} on {self.host}"
        except PermissionError:
            pass  # exists, owned by another user
        stat = _proc_stat(self.pid)
        if stat is None:
            return None  # it exists and nothing more can be known (no /proc)
        state, started = stat
        if self.started is not None and started != self.started:
            return (
                f"pid {self.pid} on {self.host} is another process now (started at tick {started}, not {self.started})"
            )
        if state in ("Z", "X"):
            return f"process {self.pid} on {self.host} has exited (state {state})"
        return None


@dataclass(frozen=True)
class Recovered:
    run_id: str
    status: str  # the run's status before recovery
    slots: int  # pool slots it held
    reason: str

    def describe(self) -> str:
        return f"{self.run_id} ({self.status}, {self.slots} pool slot(s)): {self.reason}"


# Executors that run every step inside the run worker (`execute_in_process_executor` is the one
# `materialize` and `execute_in_process` use). Under any other, a step's pid is not the run's.
_IN_PROCESS_EXECUTORS = ("in_process", "execute_in_process_executor")


def _in_process(context: dg.AssetExecutionContext) -> bool:
    """Whether the step runs in the run worker itself (only then is the step's pid the run's)."""
    name = context.job_def.executor_def.name
    if name == "multi_or_in_process_executor":  # Dagster's default: the run config picks
        execution = context.run_config.get("execution") or {}
        return "in_process" in (execution.get("config") or {})
    return name in _IN_PROCESS_EXECUTORS


def record_run_worker(context: dg.AssetExecutionContext) -> RunWorker | None:
    """Tag the run with its run worker, unless the step runs in a process of its own."""
    if not _in_process(context):
        return None
    worker = RunWorker.current()
    tags = worker.tags()
    if any(context.run.tags.get(k) != v for k, v in tags.items()):
        context.instance.add_run_tags(context.run.run_id, tags)
    return worker


def recover_dead_runs(instance: dg.DagsterInstance, own_run_id: str, log: Any) -> list[Recovered]:
    """Mark failed, and free the pool slots of, every run whose recorded run worker is gone."""
    here = RunWorker.current()
    slots: dict[str, int] = {}
    waiting: set[str] = set()
    if instance.event_log_storage.supports_global_concurrency_limits:
        # Every pool: each API key has its own, and a run proven gone frees all of its slots.
        for pool in sorted(instance.event_log_storage.get_concurrency_keys()):
            info = instance.event_log_storage.get_concurrency_info(pool)
            for slot in info.claimed_slots:
                slots[slot.run_id] = slots.get(slot.run_id, 0) + 1
            waiting |= {step.run_id for step in info.pending_steps}
    started = instance.get_runs(dg.RunsFilter(statuses=list(_RECOVERABLE), tags={WORKER_HOST_TAG: here.host}))
    candidates = dict.fromkeys([*slots, *sorted(waiting - set(slots)), *(r.run_id for r in started)])
    recovered: list[Recovered] = []
    for run_id in candidates:
        if run_id == own_run_id:
            continue
        run = instance.get_run_by_id(run_id)
        worker = RunWorker.from_tags(dict(run.tags)) if run else None
        reason = worker.gone_because(here) if worker else None
        if run is None or worker is None or reason is None:
            if run_id in slots:
                why = "no run worker recorded" if worker is None else f"run worker {worker.pid} on {worker.host}"
                log.info(f"Run {run_id} holds a pool slot; left alone ({why}, not provably gone)")
            continue
        status = run.status
        message = f"Run worker gone ({reason}); recovered by run {own_run_id}, which freed its pool slots."
        if status == dg.DagsterRunStatus.STARTED:
            failure = JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
            instance.report_run_failed(run, message, failure)
        elif status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        done = Recovered(run_id, status.value, slots.get(run_id, 0), reason)
        marked = {"STARTED": "marked failed", "CANCELING": "marked canceled"}.get(status.value, "already ended")
        log.warning(f"Recovered run {done.describe()}; {marked}, its pool slots freed")
        recovered.append(done)
    return recovered


def free_pool_slots_of_dead_runs(context: dg.AssetExecutionContext) -> list[Recovered]:
    """The first step of a sync run, before any pool step: record this run's worker, then mark
    failed, and free the pool slots of, every run whose recorded process is provably gone."""
    record_run_worker(context)
    return recover_dead_runs(context.instance, context.run.run_id, context.log)
