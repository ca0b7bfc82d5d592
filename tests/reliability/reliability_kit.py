"""Shared pieces of the reliability tests and `benchmarks/reliability.py`.

The emulator on a loopback port, the sync run in-process through Dagster, the sync run as a
`dg launch` subprocess, and comparable snapshots of the emulator and the sync state.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import duckdb
import pytest
from harness import local_http

from userflow_assets.client import UserflowResource
from userflow_assets.emulator import EmulatorConfig, create_app, serve_app
from userflow_assets.orchestration.component import SYNC_JOB, build_sync_defs
from userflow_assets.settings import PROJECT_ROOT
from userflow_assets.spec import SyncSpec

T = TypeVar("T")

SOAK_KEY = "uf_reliability_soak_key"
DG = str(Path(sys.executable).with_name("dg"))


@contextmanager
def emulator_on_port(config: EmulatorConfig) -> Iterator[str]:
    """The emulator on a loopback port of this process; yields its base URL."""
    with serve_app(create_app(config)) as url:
        yield url


def once_per_session(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], T]) -> T:
    """`make(folder)` once for the whole test session: under xdist the first worker to ask makes
    it in a folder all workers share, and the others wait for it and read its (pickled) result."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name  # the session's, above each worker's
    made = folder / "made.pickle"
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not made.exists():
            folder.mkdir(exist_ok=True)
            made.write_bytes(pickle.dumps(make(folder)))
        return pickle.loads(made.read_bytes())


# ---- snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What Userflow holds, without server-assigned fields (created_at, event IDs)."""

    users: dict[str, Any]
    groups: dict[str, Any]
    memberships: dict[tuple[str, str], Any]
    event_refs: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)  # each event's content, copies counted

    def objects(self) -> tuple[dict[str, Any], dict[str, Any], dict[tuple[str, str], Any]]:
        return self.users, self.groups, self.memberships


def snapshot(url: str) -> Snapshot:
    state = local_http().get(f"{url}/__emulator/state", timeout=120).json()
    return Snapshot(
        users={u["id"]: u["attributes"] for u in state["users"]},
        groups={g["id"]: g["attributes"] for g in state["groups"]},
        memberships={(m["user_id"], m["group_id"]): m.get("attributes") for m in state["memberships"]},
        event_refs=Counter((e.get("attributes") or {}).get("event_ref") for e in state["events"]),
        events=Counter(dump([e[k] for k in ("name", "user_id", "group_id", "time", "attributes")]) for e in state["events"]),
    )


def request_counts(url: str) -> dict[str, Any]:
    return local_http().get(f"{url}/__emulator/requests", params={"limit": 0}, timeout=60).json()


def outcomes(url: str) -> Counter[str]:
    """Outcomes over every endpoint: status codes as text, `drop_before`, `lost_response`."""
    total: Counter[str] = Counter()
    for by_outcome in request_counts(url)["by_endpoint"].values():
        total.update({k: int(v) for k, v in by_outcome.items()})
    return total


def endpoint_outcomes(url: str, endpoint: str) -> Counter[str]:
    return Counter({k: int(v) for k, v in request_counts(url)["by_endpoint"].get(endpoint, {}).items()})


StateTarget = Path | str  # a DuckDB state file, or a postgresql:// URL


def state_rows(state_db: StateTarget, sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql` on the sync state, read with a connection of its own."""
    if isinstance(state_db, str):
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(state_db) as con, con.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    with duckdb.connect(str(state_db), read_only=True) as con:
        return con.execute(sql).fetchall()


def has_state_table(state_db: StateTarget, table: str) -> bool:
    """Whether `sync.<table>` exists (a run killed early may not have made it)."""
    if isinstance(state_db, Path) and not state_db.exists():
        return False
    sql = f"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'sync' AND table_name = '{table}'"
    return bool(state_rows(state_db, sql)[0][0])


def state_records(state_db: StateTarget) -> set[tuple[str, str, str]]:
    """(object_type, id, payload_hash) of every record the state calls synced."""
    return set(state_rows(state_db, "SELECT object_type, id, payload_hash FROM sync.records"))


def sent_event_keys(state_db: StateTarget) -> set[str]:
    if not has_state_table(state_db, "sent_events"):
        return set()
    return {r[0] for r in state_rows(state_db, "SELECT key FROM sync.sent_events")}


def state_count(state_db: StateTarget, sql: str) -> int:
    return int(state_rows(state_db, sql)[0][0])


# ---- the sync in-process (soak) ----------------------------------------------------------

EVENT_SPEC: dict[str, Any] = {
    "query": "events.sql",
    "key_column": "event_id",
    "name": "name",
    "user_id": "user_id",
    "group_id": "account_id",
    "time": "occurred_at",
    # event_ref names each event in Userflow, so copies of one event can be counted.
    "attributes": {"event_ref": "event_id"},
    "delivery": "at_least_once",
}


def project_spec(warehouse: Path, state_db: Path, url: str, events: bool = True) -> SyncSpec:
    """The shipped spec (defs.yaml) pointed at `warehouse`, `state_db` and `url`, plus events."""
    import yaml

    raw = yaml.safe_load((PROJECT_ROOT / "userflow_assets/defs/userflow_sync/defs.yaml").read_text())["attributes"]
    raw["warehouse"]["database"] = str(warehouse)
    raw["warehouse"]["sql_dir"] = str(PROJECT_ROOT / "sql")
    raw["state_database"] = str(state_db)
    raw["work_database"] = str(state_db.parent / "work.duckdb")  # used when the state is in Postgres
    raw["userflow"]["base_url"] = url
    raw["mirror"] = {"enabled": False}
    raw["events"] = dict(EVENT_SPEC) if events else None
    # A small sample plants at least one dirty row of each kind, so its rejected share is high.
    for name in ("users", "groups", "events"):
        if raw.get(name):
            raw[name]["max_rejected_fraction"] = 0.25
    return SyncSpec.model_validate(raw)


def run_in_process(spec: SyncSpec, url: str, **client: Any) -> dg.ExecuteInProcessResult:
    defs = build_sync_defs(spec)
    resources = dict(defs.resources or {})
    resources["userflow"] = UserflowResource(api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=url, **client)
    return dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],  # type: ignore[list-item]
        resources=resources,
        raise_on_error=False,
        selection=sync_selection(),
    )


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in events[-1].metadata.items()} if events else {}


# ---- the sync as a subprocess (crash recovery) ------------------------------------------


# Read by the project when its modules are imported, not when a run starts: a launch forked by a
# `LaunchZygote` gets the value the zygote imported them with, so every launch shares it.
IMPORT_TIME_ENV = {
    # Checkpoint events per batch only: a crash point half way through a batch is then
    # reached however slowly this machine sends (the 2 s flush would reset the count).
    "USERFLOW_EVENTS_FLUSH_INTERVAL_S": "1e9",
}


class LaunchZygote:
    """`launch_zygote.py` running: `dg` launches forked from a process that has imported the CLI
    and the project already (each a process of its own, killed or exiting as `dg` would)."""

    def __init__(self, log: Path) -> None:
        env = {**os.environ, **IMPORT_TIME_ENV}
        self._log = log.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("launch_zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            bufsize=0,
        )
        self._received = b""  # what was read of the replies and not yet returned
        assert self._reply(timeout_s=120) == {"ready": True}, f"the launch zygote did not start: see {log}"

    def _reply(self, timeout_s: float) -> dict[str, Any]:
        """The next reply line; raw reads, so a line that came with the previous one is not
        left waiting in a buffer the selector cannot see."""
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._received:
                if not selector.select(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no answer from the launch zygote in {timeout_s} s")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the launch zygote exited ({self._process.wait()})")
                self._received += chunk
        line, self._received = self._received.split(b"\n", 1)
        return json.loads(line)

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        """As `subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)`."""
        for name, value in IMPORT_TIME_ENV.items():
            assert env.get(name) == value, f"{name} is read at import: the zygote has {value!r}"
        assert self._process.stdin is not None
        with tempfile.TemporaryDirectory(prefix="launch_") as out:
            stdout, stderr = Path(out) / "stdout", Path(out) / "stderr"
            request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            pid = int(self._reply(timeout_s=60)["pid"])
            try:
                status = int(self._reply(timeout_s=timeout_s)["status"])
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._reply(timeout_s=60)  # reaped
                raise subprocess.TimeoutExpired(argv, timeout_s) from None
            return subprocess.CompletedProcess(argv, status, stdout.read_text(), stderr.read_text())

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._log.close()


@dataclass(frozen=True)
class Launcher:
    """`dg launch --job userflow_sync` in the project, against files of one test; forked by
    `zygote` when given, otherwise started as a subprocess."""

    home: Path
    warehouse: Path
    url: str
    key: str
    zygote: LaunchZygote | None = None
    run_config: Mapping[str, Any] | None = None  # `dg launch --config-json`

    @classmethod
    def create(
        cls,
        root: Path,
        warehouse: Path,
        url: str,
        key: str,
        zygote: LaunchZygote | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> Launcher:
        home = root / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        return cls(home, warehouse, url, key, zygote, run_config)

    def env(self, state_db: StateTarget, failpoint: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "USERFLOW_FAILPOINT"}
        env.update(
            DAGSTER_HOME=str(self.home),
            USERFLOW_WAREHOUSE_PATH=str(self.warehouse),
            USERFLOW_STATE_DB_PATH=str(state_db),
            USERFLOW_WORK_DB_PATH=str(self.home.parent / "work.duckdb"),  # used when the state is in Postgres
            USERFLOW_BASE_URL=self.url,
            USERFLOW_API_KEY=self.key,
            **IMPORT_TIME_ENV,
        )
        if failpoint:
            env["USERFLOW_FAILPOINT"] = failpoint
        return env

    def launch(self, state_db: StateTarget, failpoint: str | None = None, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        # The caller reads the returncode: -9 is what a crash test expects.
        argv, env = [DG, "launch", "--job", SYNC_JOB], self.env(state_db, failpoint)
        if self.run_config is not None:
            argv += ["--config-json", json.dumps(self.run_config)]
        if self.zygote is not None:
            return self.zygote.run(argv, PROJECT_ROOT, env, timeout_s)
        return subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def held_slots(self) -> list[str]:
        """Run IDs holding a `userflow_api` pool slot."""
        with self.instance() as instance:
            info = instance.event_log_storage.get_concurrency_info("userflow_api")
            return [slot.run_id for slot in info.claimed_slots]


def dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# ---- the fault soak ----------------------------------------------------------------------

SOAK_FAULTS: dict[str, float] = {
    "fault_500": 0.05,
    "fault_503": 0.05,  # 10% answered 500/503 together
    "fault_drop_before": 0.02,
    "fault_lost_response": 0.01,
}
SOAK_429 = 0.05
SOAK_LATENCY_MS = 50.0
SOAK_JITTER_MS = 50.0  # 0-100 ms per request
MAX_SOAK_RUNS = 3  # a record whose every retry failed is retried by the next run (invariant 2)


@dataclass
class SoakResult:
    reference: Snapshot
    faulty: Snapshot
    runs: int
    injected: Counter[str]  # fault kind -> times the emulator or gateway injected it
    requests: int
    lost_event_posts: int  # POST /events whose response was lost after the write
    dropped_event_posts: int
    possible_duplicates_reported: int  # summed over the runs' userflow_events metadata
    successes: list[bool]

    def expected_vs_found(self) -> dict[str, tuple[int, int]]:
        ref, got = self.reference, self.faulty
        return {
            "users": (len(ref.users), sum(got.users.get(k) == v for k, v in ref.users.items())),
            "groups": (len(ref.groups), sum(got.groups.get(k) == v for k, v in ref.groups.items())),
            "memberships": (
                len(ref.memberships),
                sum(got.memberships.get(k, "missing") == v for k, v in ref.memberships.items()),
            ),
            "events": (len(ref.event_refs), sum(1 for k in ref.event_refs if got.event_refs[k] >= 1)),
        }

    def duplicated_events(self) -> int:
        return sum(n - 1 for n in self.faulty.event_refs.values() if n > 1)


def add_events(warehouse: Path, total: int) -> None:
    """Top the sample's events up to `total` with copies under new keys (same users and times)."""
    with duckdb.connect(str(warehouse)) as con:
        have = int(con.execute("SELECT count(*) FROM events").fetchone()[0])
        if have >= total:
            return
        con.execute(
            "INSERT INTO events SELECT 'extra_' || row_number() OVER () AS event_id, user_id, account_id, name, "
            "occurred_at, properties FROM (SELECT * FROM events ORDER BY event_id LIMIT ?)",
            [total - have],
        )


def converge(spec: SyncSpec, url: str, state_db: Path) -> tuple[int, int, list[bool]]:
    """Run the sync until nothing waits to be retried; (runs, possible duplicates reported, successes)."""
    reported, successes = 0, []
    for run in range(1, MAX_SOAK_RUNS + 1):
        result = run_in_process(spec, url)
        successes.append(result.success)
        reported += int(materialization(result, "userflow_events").get("possible_duplicates", 0))
        owed = state_count(state_db, "SELECT count(*) FROM sync.failures") + state_count(
            state_db, "SELECT count(*) FROM sync.pending_events WHERE status NOT LIKE 'waiting%'"
        )
        if owed == 0:
            return run, reported, successes
    return MAX_SOAK_RUNS, reported, successes


def soak(
    root: Path, users: int, events: int, seed: int = 42, p_429: float = SOAK_429, rate_limit_per_s: int | None = None
) -> SoakResult:
    """The same warehouse synced to a fault-free emulator and to a faulty one: random 5xx, dropped
    connections, lost responses and jitter, plus 429s drawn at random (`p_429`) or from the
    emulator's rate safeguard (`rate_limit_per_s`)."""
    from userflow_assets.sample import generate_warehouse

    os.environ["USERFLOW_API_KEY"] = SOAK_KEY
    warehouse = root / "warehouse.duckdb"
    generate_warehouse(warehouse, users=users, seed=seed)
    add_events(warehouse, events)
    plain = EmulatorConfig(api_key=SOAK_KEY, seed_content=False)
    with emulator_on_port(plain) as url:
        state_db = root / "reference" / "state.duckdb"
        _, _, done = converge(project_spec(warehouse, state_db, url), url, state_db)
        if done != [True]:
            raise RuntimeError(f"the fault-free reference run did not converge in one run: {done}")
        reference = snapshot(url)
    faulty = EmulatorConfig(
        api_key=SOAK_KEY,
        seed_content=False,
        latency_ms=SOAK_LATENCY_MS,
        latency_jitter_ms=SOAK_JITTER_MS,
        fault_seed=seed,
        rate_limit_requests=rate_limit_per_s,
        rate_limit_window_s=1.0,
        fault_429=p_429,
        **SOAK_FAULTS,
    )
    with emulator_on_port(faulty) as url:
        state_db = root / "faulty" / "state.duckdb"
        runs, reported, successes = converge(project_spec(warehouse, state_db, url), url, state_db)
        seen = outcomes(url)
        posts = endpoint_outcomes(url, "POST /events")
        injected = Counter(
            {
                "500": seen["500"],
                "503": seen["503"],
                "429": seen["429"],
                "drop_before": seen["drop_before"],
                "lost_response": seen["lost_response"],
            }
        )
        return SoakResult(
            reference=reference,
            faulty=snapshot(url),
            runs=runs,
            injected=injected,
            requests=int(request_counts(url)["total"]),
            lost_event_posts=posts["lost_response"],
            dropped_event_posts=posts["drop_before"],
            possible_duplicates_reported=reported,
            successes=successes,
        )


def sync_selection() -> dg.AssetSelection:
    """What the `userflow_sync` job runs: everything but the read side and the partitioned backfill."""
    return dg.AssetSelection.all() - dg.AssetSelection.groups("userflow_mirror", "backfill")
