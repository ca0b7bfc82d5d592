"""How close the client gets to a rate limit it is not told, and what the limiter costs.

Runs the bundled emulator in its own process on a loopback port (50 ms latency), then:

* for limits of 10, 100 and 300 requests/second (a 1 s sliding window the client does not
  know), upserts users through `UserflowClient.bulk` for a fixed time and reports successful
  requests/second divided by the limit and the share of requests answered 429;
* with no limit, compares the client's throughput with a bare httpx loop at the same
  concurrency, in the same run.

Usage: .venv/bin/python benchmarks/client_throughput.py [--seconds 30] [--bare-seconds 15]
Prints a markdown table. Targets: >= 0.9 of the limit with <= 3% 429s; >= 0.8 of bare httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from userflow_assets.client import UserflowClient, forget_shared_limiters

KEY = "uf_benchmark_key"
LATENCY_MS = 50.0
LIMITS = (10, 100, 300)
CONCURRENCY = 32
WARMUP_S = 5.0


@dataclass
class Result:
    label: str
    seconds: float
    ok: int
    requests: int
    rate_limited: int
    ok_after_warmup: int
    final_rate_per_s: float
    client_cpu: float = 0.0  # share of one core used by this process
    server_cpu: float = 0.0  # share of one core used by the emulator

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Emulator:
    base_url: str
    pid: int


@contextmanager
def emulator_process() -> Iterator[Emulator]:
    """The emulator CLI in a child process, so its CPU is not the client's."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        env = {**os.environ, "USERFLOW_EMULATOR_API_KEY": KEY}
        command = [sys.executable, "-m", "userflow_assets.emulator", "--port", "0", "--port-file", str(port_file)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                time.sleep(0.05)
            yield Emulator(f"http://127.0.0.1:{port_file.read_text().strip()}", process.pid)
        finally:
            process.terminate()
            process.wait(timeout=15)


async def configure(base_url: str, limit: int | None) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        config = {"rate_limit_requests": limit, "rate_limit_window_s": 1.0, "latency_ms": LATENCY_MS}
        (await http.post("/__emulator/config", json=config)).raise_for_status()
        (await http.post("/__emulator/reset")).raise_for_status()


async def server_counts(base_url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        data = (await http.get("/__emulator/requests")).json()
    return dict(data["by_endpoint"].get("POST /users", {}))


async def _user_ids(deadline: float) -> AsyncIterator[str]:
    for n in itertools.count():
        if time.monotonic() >= deadline:
            return
        yield f"user_{n}"


async def run_client(base_url: str, seconds: float, label: str) -> Result:
    forget_shared_limiters()  # every scenario starts from the client's default: 500/min, unknown
    started = time.monotonic()
    ok = ok_after_warmup = 0
    async with UserflowClient(KEY, base_url=base_url, max_concurrency=CONCURRENCY) as client:

        async def upsert(user_id: str) -> Any:
            return await client.upsert_user(user_id, {"plan": "pro"})

        async for result in client.bulk(_user_ids(started + seconds), upsert, label=label):
            if result.ok:
                ok += 1
                if time.monotonic() - started >= WARMUP_S:
                    ok_after_warmup += 1
        elapsed = time.monotonic() - started
        meta = client.metadata()
    return Result(
        label,
        elapsed,
        ok,
        int(meta["userflow_requests"]),
        int(meta["userflow_rate_limited"]),
        ok_after_warmup,
        float(meta["userflow_rate_per_minute"]) / 60.0,
    )


async def run_bare(base_url: str, seconds: float) -> Result:
    """The same upserts with plain httpx: no limiter, no retries, same concurrency."""
    started = time.monotonic()
    deadline = started + seconds
    counter = itertools.count()
    ok = 0
    headers = {"Authorization": f"Bearer {KEY}", "Userflow-Version": "2020-01-03"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as http:

        async def worker() -> None:
            nonlocal ok
            while time.monotonic() < deadline:
                body = {"id": f"bare_{next(counter)}", "attributes": {"plan": "pro"}}
                response = await http.post("/users", json=body)
                ok += response.status_code == 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.monotonic() - started
    return Result("bare httpx loop", elapsed, ok, ok, 0, ok, 0.0)


async def measured(emulator: Emulator, run: Awaitable[Result]) -> Result:
    """`run`'s result with the CPU share each side used while it ran."""
    client_before, server_before = time.process_time(), cpu_seconds(emulator.pid)
    result = await run
    result.client_cpu = (time.process_time() - client_before) / result.seconds
    result.server_cpu = (cpu_seconds(emulator.pid) - server_before) / result.seconds
    return result


async def main(seconds: float, bare_seconds: float, limits: tuple[int, ...]) -> None:
    rows: list[str] = []
    with emulator_process() as emulator:
        base_url = emulator.base_url
        for limit in limits:
            await configure(base_url, limit)
            result = await measured(emulator, run_client(base_url, seconds, f"limit {limit}/s"))
            server = await server_counts(base_url)
            steady = result.ok_after_warmup / (result.seconds - WARMUP_S)
            rows.append(
                f"| {limit}/s | {result.seconds:.1f} | {result.per_s:.1f} | {result.per_s / limit:.3f} "
                f"| {steady / limit:.3f} | {100 * result.share_429:.2f}% "
                f"| {server.get('200', 0)} / {server.get('429', 0)} | {result.final_rate_per_s:.1f} "
                f"| {100 * result.client_cpu:.0f}% / {100 * result.server_cpu:.0f}% |"
            )
        await configure(base_url, None)
        client = await measured(emulator, run_client(base_url, bare_seconds, "client"))
        await configure(base_url, None)
        bare = await measured(emulator, run_bare(base_url, bare_seconds))
    print(f"Emulator on a loopback port in its own process, {LATENCY_MS:.0f} ms latency, 1 s sliding window;")
    print(f"client defaults (starts at 500/min, limit not told), max_concurrency={CONCURRENCY}; "
          f"steady = after the first {WARMUP_S:.0f} s.\n")
    print("| server limit | seconds | achieved req/s | achieved / limit | steady / limit | answered 429 "
          "| server 200 / 429 | adapted rate at end (req/s) | CPU client / emulator |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("| no limit | seconds | req/s | ratio to bare httpx | CPU client / emulator |")
    print("|---|---|---|---|---|")
    for row, ratio in ((client, client.per_s / bare.per_s), (bare, 1.0)):
        print(f"| {row.label} | {row.seconds:.1f} | {row.per_s:.1f} | {ratio:.3f} "
              f"| {100 * row.client_cpu:.0f}% / {100 * row.server_cpu:.0f}% |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="run time per limit")
    parser.add_argument("--bare-seconds", type=float, default=15.0, help="run time per no-limit run")
    parser.add_argument("--limits", type=int, nargs="+", default=list(LIMITS), help="server limits, req/s")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.bare_seconds, tuple(args.limits)))
