"""This project against the peers a user would pick instead, side by side on one emulator.

    python benchmarks/peers_compare.py [--runs 3] [--slow-runs 1] [--quick] [--out BENCHMARKS.md]

Peers (each its own subprocess; wall time and peak RSS of its process tree are its own):
- naive script (`peers/naive_script.py`): seed 002's advice, one request at a time, tenacity backoff;
- drt (`peers/drt/`): drt-core's DuckDB source and REST API destination, incremental on an
  `updated_at` cursor, its rate limiter at the emulator's limit; installed into
  `benchmarks/.venv-drt` on first use;
- bare httpx loop (`peers/bare_httpx.py`): paced at the limit, 16 in flight, no logic: the ceiling;
- this project: `dg launch --job userflow_sync` with the shipped spec, a fresh DAGSTER_HOME and state.

Scenarios: (a) 5,000 users / 300 groups at 100 requests/s and 50 ms latency; (b) 500 users at
500 requests/minute; (c) a re-sync after 1% of users changed; (d) a re-sync with no change;
(e) as (a) with 5% of requests answered 500/503. The emulator runs in its own process and is
reset between runs. Prints a markdown table and writes it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))

import dataset

KEY = "uf_bench_key"
LATENCY_MS = 50.0
DRT_VENV = ROOT / "benchmarks" / ".venv-drt"
# pytz: DuckDB's Python client needs it to return TIMESTAMPTZ values (users.last_seen_at).
DRT_REQUIREMENTS = ("drt-core[duckdb]", "pytz")
BIN = Path(sys.executable).parent
PEER_NAMES = ("naive script", "drt", "bare httpx loop", "this project")
SLOW_PEERS = ("naive script", "drt")  # one request at a time: minutes per full send


# ---- the emulator ---------------------------------------------------------------------------


class Emulator:
    """The bundled emulator as its own process (CLI), driven through its inspection API."""

    def __init__(self, workdir: Path) -> None:
        port_file = workdir / "emulator.port"
        self.log = (workdir / "emulator.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "userflow_assets.emulator", "--port", "0", "--port-file", str(port_file),
             "--api-key", KEY, "--latency-ms", str(LATENCY_MS), "--no-seed-content"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{int(port_file.read_text().strip())}"
        self.http = httpx.Client(base_url=self.url, timeout=300)

    def configure(self, rate: int, window_s: float, fault_5xx: float = 0.0, seed: int | None = None) -> None:
        half = fault_5xx / 2
        body = {"rate_limit_requests": rate, "rate_limit_window_s": window_s, "fault_500": half, "fault_503": half,
                "latency_ms": LATENCY_MS, "fault_seed": seed}
        self.http.post("/__emulator/config", json=body).raise_for_status()
        self.http.post("/__emulator/reset").raise_for_status()

    def counts(self) -> dict[str, int]:
        by_endpoint = self.http.get("/__emulator/requests", params={"limit": 0}).json()["by_endpoint"]
        out = {"total": 0, "get": 0, "429": 0, "5xx": 0}
        for endpoint, outcomes in by_endpoint.items():
            n = sum(int(v) for v in outcomes.values())
            out["total"] += n
            out["get"] += n if endpoint.startswith("GET ") else 0
            out["429"] += int(outcomes.get("429", 0))
            out["5xx"] += sum(int(v) for k, v in outcomes.items() if k.startswith("5"))
        return out

    def state(self) -> dict[str, Any]:
        return self.http.get("/__emulator/state").json()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# ---- running one peer -----------------------------------------------------------------------


@dataclass
class Measure:
    wall_s: float
    requests: int
    gets: int
    n429: int
    n5xx: int
    correct: int
    expected: int
    peak_mb: float
    sink_s: float | None = None
    exit_code: int = 0


def _tree_rss_kb(root: int) -> int:
    """Resident memory (kB) of `root` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21]) * PAGE_KB
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in tree)


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def run_process(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, timeout_s: float = 3600) -> tuple[float, float, int]:
    """(wall seconds, peak resident memory in MB of the process tree, exit code). The peak is
    sampled from /proc every 0.2 s over the process and its children (Dagster's run workers
    included); `ru_maxrss` cannot serve, as it counts the memory a fork inherits before exec."""
    started = time.monotonic()
    peak_kb, next_sample = 0, 0.0
    with log.open("w") as out:
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            now = time.monotonic()
            if now >= next_sample:
                peak_kb, next_sample = max(peak_kb, _tree_rss_kb(process.pid)), now + 0.2
            pid, status, _ = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if now - started > timeout_s:
                process.kill()
            time.sleep(0.02)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, peak_kb / 1024, process.returncode


@dataclass
class PeerContext:
    """One peer's files for one chain of runs: (a) then (c) then (d) share them."""

    name: str
    workdir: Path
    warehouse: Path
    emulator: Emulator
    rate_rps: float
    home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("USERFLOW_", "DAGSTER_"))}
        env.update(USERFLOW_API_KEY=KEY, USERFLOW_BASE_URL=self.emulator.url, DO_NOT_TRACK="1", **extra)
        return env


def run_naive(ctx: PeerContext, log: Path) -> tuple[float, float, int, float | None]:
    cmd = [sys.executable, str(PEERS / "naive_script.py"), "--warehouse", str(ctx.warehouse), "--base-url", ctx.emulator.url]
    return (*run_process(cmd, ctx.workdir, ctx.env(), log), None)


def run_bare(ctx: PeerContext, log: Path) -> tuple[float, float, int, float | None]:
    cmd = [sys.executable, str(PEERS / "bare_httpx.py"), "--warehouse", str(ctx.warehouse), "--base-url",
           ctx.emulator.url, "--rate", str(ctx.rate_rps)]
    return (*run_process(cmd, ctx.workdir, ctx.env(), log), None)


def ensure_drt() -> str:
    """The drt venv, created (or completed) on first use; drt's version."""
    python = DRT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DRT_VENV)], check=True)
    check = [str(python), "-c", "import drt, duckdb, pytz, importlib.metadata as m; print(m.version('drt-core'))"]
    found = subprocess.run(check, capture_output=True, text=True)
    if found.returncode:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DRT_REQUIREMENTS], check=True)
        found = subprocess.run(check, capture_output=True, text=True, check=True)
    return found.stdout.strip()


def run_drt(ctx: PeerContext, log: Path) -> tuple[float, float, int, float | None]:
    project = ctx.workdir / "drt"
    if not project.exists():  # the first run of a chain: drt's state (.drt/state.json) starts empty
        shutil.copytree(PEERS / "drt", project)
        (ctx.home / ".drt").mkdir(parents=True, exist_ok=True)
        profile = {"warehouse": {"type": "duckdb", "database": str(ctx.warehouse)}}
        (ctx.home / ".drt" / "profiles.yml").write_text(json.dumps(profile))
    env = ctx.env(HOME=str(ctx.home), DRT_REQUESTS_PER_SECOND=f"{ctx.rate_rps:.4f}")
    return (*run_process([str(DRT_VENV / "bin" / "drt"), "run"], project, env, log), None)


def run_project(ctx: PeerContext, log: Path) -> tuple[float, float, int, float | None]:
    dagster_home = ctx.workdir / "dagster_home"
    if not dagster_home.exists():
        dagster_home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = ctx.env(DAGSTER_HOME=str(dagster_home), USERFLOW_WAREHOUSE_PATH=str(ctx.warehouse),
                  USERFLOW_STATE_DB_PATH=str(ctx.workdir / "state.duckdb"))
    wall, peak, code = run_process([str(BIN / "dg"), "launch", "--job", "userflow_sync"], ROOT, env, log)
    return wall, peak, code, sink_seconds(dagster_home)


def sink_seconds(dagster_home: Path) -> float | None:
    """The sinks' own time (`duration_s` of userflow_groups and userflow_users) in the latest run."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return None
        total = 0.0
        for asset in ("userflow_groups", "userflow_users"):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            if event is None or event.run_id != runs[0].run_id:
                return None
            total += float(event.asset_materialization.metadata["duration_s"].value)  # type: ignore[union-attr]
        return total


RUNNERS: dict[str, Callable[[PeerContext, Path], tuple[float, float, int, float | None]]] = {
    "naive script": run_naive,
    "drt": run_drt,
    "bare httpx loop": run_bare,
    "this project": run_project,
}


def measure(ctx: PeerContext, tag: str) -> Measure:
    before = ctx.emulator.counts()
    wall, peak, code, sink = RUNNERS[ctx.name](ctx, ctx.workdir / f"{tag}.log")
    after = ctx.emulator.counts()
    verdict = dataset.compare(dataset.expected_state(ctx.warehouse), ctx.emulator.state())
    d = {k: after[k] - before[k] for k in after}
    return Measure(wall, d["total"], d["get"], d["429"], d["5xx"], verdict.correct, verdict.expected, peak, sink, code)


# ---- the scenarios --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    rate: int
    window_s: float
    fault_5xx: float = 0.0

    @property
    def limit_rps(self) -> float:
        return self.rate / self.window_s


SCENARIOS = {
    "a": Scenario("a", "initial sync, 100 req/s", 100, 1.0),
    "b": Scenario("b", "initial sync, 500 req/min", 500, 60.0),
    "c": Scenario("c", "re-sync, 1% of users changed", 100, 1.0),
    "d": Scenario("d", "re-sync, nothing changed", 100, 1.0),
    "e": Scenario("e", "as (a), 5% 5xx faults", 100, 1.0, 0.05),
}


@dataclass
class Plan:
    runs: int
    slow_runs: int
    users: int
    groups: int
    small_users: int
    small_groups: int
    naive_resyncs: bool = False
    changed_share: float = 0.01

    def runs_of(self, peer: str, scenario: str) -> int:
        if peer == "bare httpx loop" and scenario in ("c", "d"):
            return 0  # no state: it would resend everything, as in (a); it is the throughput ceiling only
        if peer == "naive script" and scenario in ("c", "d") and not self.naive_resyncs:
            return 0  # no state: a re-sync is (a) again, about five minutes each at full size
        if peer in SLOW_PEERS or (peer == "bare httpx loop" and scenario != "a"):
            return self.slow_runs
        return self.runs


def save(results: dict[tuple[str, str], list[Measure]], plan: Plan, path: Path) -> None:
    raw = {"plan": asdict(plan), "results": [[k, p, [asdict(m) for m in ms]] for (k, p), ms in results.items()]}
    path.write_text(json.dumps(raw, indent=1))


def load(path: Path) -> tuple[dict[tuple[str, str], list[Measure]], Plan]:
    raw = json.loads(path.read_text())
    return {(k, p): [Measure(**m) for m in ms] for k, p, ms in raw["results"]}, Plan(**raw["plan"])


def run_all(
    plan: Plan,
    work: Path,
    emulator: Emulator,
    log: Callable[[str], None],
    raw: Path,
    peers: tuple[str, ...] = PEER_NAMES,
    kept: dict[tuple[str, str], list[Measure]] | None = None,
) -> dict[tuple[str, str], list[Measure]]:
    """Measure `peers`; `kept` holds earlier measurements of the other peers, saved alongside."""
    results = {key: ms for key, ms in (kept or {}).items() if key[1] not in peers}
    base = dataset.build_warehouse(work / "base.duckdb", plan.users, plan.groups)
    small = dataset.build_warehouse(work / "small.duckdb", plan.small_users, plan.small_groups)
    log(f"warehouses: {base} and {small}")
    plan.users, plan.groups, plan.small_users, plan.small_groups = base["users"], base["accounts"], small["users"], small["accounts"]

    def record(peer: str, scenario: str, m: Measure) -> None:
        results.setdefault((scenario, peer), []).append(m)
        save(results, plan, raw)  # the measurements so far: `--render RAW` rewrites the table from them
        log(f"  ({scenario}) {peer}: {m.wall_s:.1f} s, {m.requests} requests, {m.n429} 429s, "
            f"{m.correct}/{m.expected} correct, {m.peak_mb:.0f} MB, exit {m.exit_code}"
            + (f", sink {m.sink_s:.1f} s" if m.sink_s is not None else ""))

    for peer in peers:
        # (a) -> (c) -> (d): one chain per run, sharing the peer's state and the emulator's data.
        for r in range(max(plan.runs_of(peer, "a"), plan.runs_of(peer, "c"))):
            a = SCENARIOS["a"]
            emulator.configure(a.rate, a.window_s)
            ctx = PeerContext(peer, work / f"{peer.replace(' ', '_')}-acd-{r}", Path(), emulator, a.limit_rps)
            ctx.warehouse = dataset.copy_warehouse(work / "base.duckdb", ctx.workdir / "warehouse.duckdb")
            record(peer, "a", measure(ctx, "a"))
            if r < plan.runs_of(peer, "c"):
                dataset.change_users(ctx.warehouse, plan.changed_share)
                record(peer, "c", measure(ctx, "c"))
                record(peer, "d", measure(ctx, "d"))
        for key, source in (("b", "small.duckdb"), ("e", "base.duckdb")):
            s = SCENARIOS[key]
            for r in range(plan.runs_of(peer, key)):
                emulator.configure(s.rate, s.window_s, s.fault_5xx, seed=r + 1 if s.fault_5xx else None)
                ctx = PeerContext(peer, work / f"{peer.replace(' ', '_')}-{key}-{r}", Path(), emulator, s.limit_rps)
                ctx.warehouse = dataset.copy_warehouse(work / source, ctx.workdir / "warehouse.duckdb")
                record(peer, key, measure(ctx, key))
    return results


# ---- the table ------------------------------------------------------------------------------


NOT_RUN = {
    "bare httpx loop": "n/a: no state, it resends every record as in (a); run as the throughput ceiling only",
    "naive script": "not run (`--naive-resyncs` runs it): no state, so a re-sync is (a) again, same requests and time",
}


def med(values: list[float]) -> float:
    return statistics.median(values)


def summary(scenario: Scenario, ms: list[Measure]) -> dict[str, Any]:
    wall, req = med([m.wall_s for m in ms]), med([m.requests for m in ms])
    sink = [m.sink_s for m in ms if m.sink_s is not None]
    return {
        "runs": len(ms),
        "wall": wall,
        "sink": med(sink) if sink else None,
        "requests": req,
        "gets": med([m.gets for m in ms]),
        "per_record": req / ms[0].expected if ms[0].expected else 0.0,
        "429": med([m.n429 for m in ms]),
        "5xx": med([m.n5xx for m in ms]),
        "ratio": req / wall / scenario.limit_rps if wall else 0.0,
        "sink_ratio": (req - med([m.gets for m in ms])) / med(sink) / scenario.limit_rps if sink and med(sink) else None,
        "correct": min(m.correct for m in ms),
        "expected": ms[0].expected,
        "peak": med([m.peak_mb for m in ms]),
        "failed_exits": sum(1 for m in ms if m.exit_code),
    }


def table(results: dict[tuple[str, str], list[Measure]]) -> tuple[str, dict[tuple[str, str], dict[str, Any]]]:
    head = ("| scenario | peer | runs | wall time (s) | sink time (s) | requests sent | requests / record | 429s "
            "| achieved req/s ÷ limit | records correct | peak memory (MB) |")
    lines = [head, "|" + "---|" * 11]
    sums: dict[tuple[str, str], dict[str, Any]] = {}
    for key, scenario in SCENARIOS.items():
        for peer in PEER_NAMES:
            ms = results.get((key, peer))
            label = f"({key}) {scenario.title}"
            if not ms:
                why = NOT_RUN.get(peer, "n/a")
                lines.append(f"| {label} | {peer} | 0 | {why} | | | | | | | |")
                continue
            s = sums[(key, peer)] = summary(scenario, ms)
            sink = f"{s['sink']:.1f}" + (f" ({s['sink_ratio']:.2f} of limit)" if s["sink_ratio"] is not None else "") if s["sink"] is not None else "–"
            requests = f"{s['requests']:,.0f}" + (f" ({s['gets']:.0f} GET)" if s["gets"] else "")
            correct = f"{s['correct']:,} / {s['expected']:,}" + (f" (exit {s['failed_exits']}×≠0)" if s["failed_exits"] else "")
            lines.append(
                f"| {label} | {peer} | {s['runs']} | {s['wall']:.1f} | {sink} | {requests} | {s['per_record']:.3f} "
                f"| {s['429']:,.0f} | {s['ratio']:.2f} | {correct} | {s['peak']:.0f} |"
            )
    return "\n".join(lines), sums


def targets(sums: dict[tuple[str, str], dict[str, Any]], plan: Plan) -> list[str]:
    me = "this project"
    out = []

    def verdict(ok: bool) -> str:
        return "holds" if ok else "does not hold"

    for key in ("a", "b"):
        s = sums.get((key, me))
        if not s:
            continue
        records = s["expected"]
        limit = SCENARIOS[key].limit_rps
        bound = 1.15 * records / limit
        out.append(f"- ({key}) at least 0.9 of the limit: {verdict(s['ratio'] >= 0.9)} by whole-process wall time "
                   f"({s['ratio']:.2f}); by the sinks' own time {s['sink_ratio']:.2f}" if s["sink_ratio"] is not None else "")
        sink_note = f", sinks alone {s['sink']:.1f} s" if s["sink"] is not None else ""
        out.append(f"- ({key}) wall time at most 1.15 × {records:,} requests / {limit:.2f} per s = {bound:.1f} s: "
                   f"{verdict(s['wall'] <= bound)} ({s['wall']:.1f} s whole process{sink_note})")
    if (c := sums.get(("c", me))):
        changed = round(plan.users * plan.changed_share)
        writes = c["requests"] - c["gets"]
        out.append(f"- (c) requests = changed users ({changed}): writes {verdict(writes == changed)} ({writes:.0f} writes); "
                   f"all requests {verdict(c['requests'] == changed)} ({c['requests']:.0f}: the `read_back` checks add "
                   f"{c['gets']:.0f} GETs of what the run wrote)")
    if (d := sums.get(("d", me))):
        out.append(f"- (d) zero requests: {verdict(d['requests'] == 0)} ({d['requests']:.0f})")
    if (a := sums.get(("a", me))) and (n := sums.get(("a", "naive script"))):
        out.append(f"- (a) at least 3× faster than the naive script: {verdict(n['wall'] >= 3 * a['wall'])} "
                   f"({n['wall'] / a['wall']:.1f}×)")
    for key in ("c", "d"):
        if (p := sums.get((key, me))) and (q := sums.get((key, "drt"))):
            out.append(f"- ({key}) fewer requests than drt: {verdict(p['requests'] < q['requests'])} "
                       f"({p['requests']:.0f} vs {q['requests']:.0f})")
    bad = [f"({k}) {s['correct']}/{s['expected']}" for (k, peer), s in sorted(sums.items()) if peer == me and s["correct"] != s["expected"]]
    out.append(f"- every record correct in every scenario, (e) included: {verdict(not bad)}" + (f" (short: {', '.join(bad)})" if bad else ""))
    return [line for line in out if line]


def document(
    body: str,
    sums: dict[tuple[str, str], dict[str, Any]],
    plan: Plan,
    drt_version: str,
    quick: bool,
    elapsed: float,
    only: tuple[str, ...] = (),
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    took = f"the whole run took {elapsed / 60:.0f} minutes"
    if only:
        took = (f"this run re-measured {', '.join(only)} in {elapsed / 60:.0f} minutes (`--only`) and kept the "
                f"other peers' rows from the previous full run, on the same machine, data and emulator settings")
    reduced = (f"Runs: medians of {plan.runs} runs for this project in every scenario and for the bare loop in (a). The "
               f"naive script and drt send one request at a time (about 20 requests/s against 50 ms latency: about five "
               f"minutes per full send of 5,300 records), so they, and the bare loop outside (a), run {plan.slow_runs} "
               f"time(s) per scenario"
               + ("." if plan.naive_resyncs else "; the naive script, which keeps no state, is not run in (c) and (d) "
                  "(a re-sync is (a) again; the `--quick` run measures it and finds the same requests and time)."))
    return f"""# Benchmarks: this project against the peers

Generated by `make bench` (`benchmarks/peers_compare.py{' --quick' if quick else ''}`) on {when}, {platform.machine()}, \
{os.cpu_count()} cores, shared; {took}. Absolute times drift on shared machines:
read the ratios, measured in the same run against the same emulator.

## Setup

- **Emulator**: the bundled one, in its own process, {LATENCY_MS:.0f} ms latency per request, its request-rate safeguard
  at the scenario's limit; reset (data, request log, rate window) before every run that starts from nothing.
- **Data**: the sample generator's warehouse (seed 42) without its planted dirty rows, cut to {plan.users:,} users and
  {plan.groups} companies with their memberships ((b): {plan.small_users} users, {plan.small_groups} companies); `billing` contacts
  become `member`s and `trial_ends_at` is UTC ISO text, so every peer is expected to sync every row and the shipped
  spec's filter and rejections do not apply. No events (not part of the comparison).
- **Records correct**: users and groups in the emulator afterwards equal to the state computed independently from the
  warehouse with the shipped spec's mapping (15 user attributes, 6 group attributes, memberships with `role`); a user
  counts only with its memberships right. Values compare by meaning: a datetime equals any ISO text of the same
  instant, numbers numerically, a null equals an absent attribute. Worst run shown.
- **Peers**, each its own subprocess (wall time and peak resident memory, sampled from `/proc` every 0.2 s over the process tree, are its own):
  - *naive script* (`benchmarks/peers/naive_script.py`): what seed 002 tells a team to write: upsert each company, then
    each user with its memberships in the body, one request at a time, tenacity backoff (random exponential) on 429,
    5xx and connection errors. Resends everything each run.
  - *drt* {drt_version} (`benchmarks/peers/drt/`, in `benchmarks/.venv-drt`): `drt run` with a DuckDB profile and two
    `rest_api` syncs (groups, users with memberships), `mode: incremental` on an `updated_at` cursor (the users
    model's cursor also covers memberships), its rate limiter at the emulator's limit, default retries (3 attempts on
    429/5xx), `on_error: skip` as in its starter template. Its REST destination sends one row at a time.
  - *bare httpx loop* (`benchmarks/peers/bare_httpx.py`): the same payloads, asyncio, 16 in flight, paced at exactly
    the limit, a failed request re-queued: no state, no backoff. The machine's ceiling; not run in (c) and (d).
  - *this project*: `dg launch --job userflow_sync` as users run it (shipped `defs.yaml`, adaptive limiter with no
    `requests_per_minute` set), fresh `DAGSTER_HOME` and state DB per chain. The job also runs the events assets,
    which have nothing to send here; the read side is a separate job and is not run. *Wall time* is the whole
    process (Dagster's start-up included); *sink time* is the `duration_s` of the `userflow_groups` and
    `userflow_users` materializations, with the rate it implies. Requests include the `read_back` checks' GETs.
- **Scenarios**: (a), then (c) after changing `plan` (and `updated_at`) of 1% of the users, then (d) with no change,
  run as one chain per run on the same emulator data; (b) and (e) start from nothing. (e) injects 2.5% 500 and 2.5% 503.
- {reduced}

## Results

{body}

Columns: *requests sent* = every request the emulator received during the run (429s and faults included);
*requests / record* over the scenario's {plan.users + plan.groups:,} records ((b): {plan.small_users + plan.small_groups:,});
*achieved req/s ÷ limit* = requests sent ÷ wall time ÷ the limit.

## Targets

{chr(10).join(targets(sums, plan))}

## Notes

- *Wall time* of this project includes Dagster's start-up and the steps around the sinks (reading the
  warehouse, building the records, the checks): about 6 s on this machine, which scenario (d) shows with nothing
  to send. *Sink time* is the time spent sending; it is what the limiter controls.
- This project's requests include the `read_back` checks' GETs: 1% of what the run wrote, 1 to 20 per sink.
- drt's REST API destination sends one row at a time, and its default retry gives a record three attempts; under
  faults a record can run out of them and, with `on_error: skip`, the run goes on without it and exits 1.
- `drt-core[duckdb]` does not install `pytz`, which DuckDB's Python client needs for `TIMESTAMPTZ` columns; the
  driver installs it beside drt.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario for this project and the bare loop")
    parser.add_argument("--slow-runs", type=int, default=1, help="runs per scenario for the naive script and drt")
    parser.add_argument("--quick", action="store_true", help="1 run, 500 users / 30 groups ((b): 100 / 10)")
    parser.add_argument("--naive-resyncs", action="store_true", help="also run the naive script in (c) and (d)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--raw", type=Path, default=ROOT / ".tmp" / "peers_compare.json", help="the measurements, as JSON")
    parser.add_argument("--render", action="store_true", help="only rewrite the table from --raw")
    parser.add_argument("--only", action="append", choices=PEER_NAMES, metavar="PEER",
                        help="measure only this peer (repeatable), keeping the others' rows from --raw")
    args = parser.parse_args()
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    drt_version = ensure_drt()
    if args.render:
        results, plan = load(args.raw)
        body, sums = table(results)
        args.out.write_text(document(body, sums, plan, drt_version, args.quick, 0.0))
        print(body)
        return 0
    kept: dict[tuple[str, str], list[Measure]] = {}
    if args.only:
        kept, plan = load(args.raw)  # the same plan as the rows kept, so the rows compare
    elif args.quick:
        plan = Plan(runs=1, slow_runs=1, users=500, groups=30, small_users=100, small_groups=10, naive_resyncs=True)
    else:
        plan = Plan(runs=args.runs, slow_runs=args.slow_runs, users=5000, groups=300, small_users=500, small_groups=30,
                    naive_resyncs=args.naive_resyncs)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="peers_compare_") as tmp:
        work = Path(tmp)
        emulator = Emulator(work)
        try:
            peers = tuple(args.only or PEER_NAMES)
            results = run_all(plan, work, emulator, lambda line: print(line, flush=True), args.raw, peers, kept)
        finally:
            emulator.close()
    body, sums = table(results)
    text = document(body, sums, plan, drt_version, args.quick, time.monotonic() - started, tuple(args.only or ()))
    print(body)
    print("\n".join(targets(sums, plan)))
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
