"""The key's lease (client/lease.py): clients of one pool, in separate processes that start at
the same moment, never hold more leases than the pool's limit, on an instance in a directory
(SQLite) and on Postgres storage. A killed holder's lease is free again.

Each holder keeps its lease until it has seen what the test needs (the other process reporting
that it waits, or both inside at limit 2), so the processes meet at the lease by construction.
"""

import asyncio
import multiprocessing as mp
import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from userflow_assets.client.client import UserflowClient
from userflow_assets.client.lease import lease

POOL = "userflow_api_lease_test"
KEY = "uf_lease_test_key"
WAIT_S = 60
# Fresh processes that share nothing with this one but their arguments, each forked from a
# server that has imported Dagster and the client once (spawn imports them again in each).
PROCESSES = mp.get_context("forkserver")
PROCESSES.set_forkserver_preload(["dagster", "userflow_assets.client.client", "userflow_assets.client.lease", "yaml"])


def make_home(tmp_path: Path, storage_url: str | None, limit: int) -> str:
    home = tmp_path / "home"
    home.mkdir()
    config: dict[str, Any] = {"concurrency": {"pools": {"default_limit": 1}}, "telemetry": {"enabled": False}}
    if storage_url:
        config["storage"] = {"postgres": {"postgres_url": storage_url.replace("postgresql://", "postgresql+psycopg2://", 1)}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, limit)
    return str(home)


def _client(home: str, run_id: str, report: Any) -> tuple[DagsterInstance, UserflowClient]:
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(home))
    # The client holds the lease from __aenter__ to __aexit__; it sends nothing here.
    return instance, UserflowClient(KEY, base_url="http://127.0.0.1:9", lease=partial(lease, instance, POOL, run_id, report))


def hold(home: str, run_id: str, limit: int, shared: dict[str, Any]) -> None:
    """Take the lease through a client, note how many are inside, and keep it until released."""

    def report(message: str) -> None:
        if message.startswith("Waiting for a lease"):
            shared["waiting"].set()

    async def main() -> None:
        instance, client = _client(home, run_id, report)
        shared["barrier"].wait(WAIT_S)
        async with client:
            with shared["lock"]:
                shared["inside"].value += 1
                shared["peak"].value = max(shared["peak"].value, shared["inside"].value)
            # Limit 1: hold until the other process has said it waits. Limit 2: until both are in.
            if limit == 1:
                assert shared["waiting"].wait(WAIT_S), "the other process never waited"
            else:
                with shared["lock"]:
                    if shared["inside"].value == limit:
                        shared["all_in"].set()
                assert shared["all_in"].wait(WAIT_S), "the other process never came in"
            with shared["lock"]:
                shared["inside"].value -= 1
        instance.dispose()

    asyncio.run(main())


def run_pair(home: str, limit: int) -> dict[str, Any]:
    manager = PROCESSES.Manager()
    shared = {
        "barrier": manager.Barrier(2),
        "lock": manager.Lock(),
        "inside": manager.Value("i", 0),
        "peak": manager.Value("i", 0),
        "waiting": manager.Event(),
        "all_in": manager.Event(),
    }
    processes = [PROCESSES.Process(target=hold, args=(home, f"run-{n}", limit, shared)) for n in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(WAIT_S * 2)
    codes = [p.exitcode for p in processes]
    result = {"codes": codes, "peak": shared["peak"].value, "waited": shared["waiting"].is_set()}
    manager.shutdown()
    return result


@pytest.fixture(params=["directory", "postgres"])
def storage(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


def test_two_processes_at_once_take_turns_at_limit_one(tmp_path: Path, storage: str | None) -> None:
    home = make_home(tmp_path, storage, limit=1)
    for _ in range(3):
        result = run_pair(home, limit=1)
        assert result == {"codes": [0, 0], "peak": 1, "waited": True}


def test_limit_two_lets_both_in(tmp_path: Path, storage: str | None) -> None:
    home = make_home(tmp_path, storage, limit=2)
    result = run_pair(home, limit=2)
    assert result == {"codes": [0, 0], "peak": 2, "waited": False}


def sit_on_lease(home: str, taken: Any) -> None:
    async def main() -> None:
        _, client = _client(home, "killed-run", lambda _: None)
        async with client:
            taken.set()
            await asyncio.Event().wait()  # until killed

    asyncio.run(main())


def test_a_killed_holders_lease_is_free_again(tmp_path: Path, storage: str | None) -> None:
    home = make_home(tmp_path, storage, limit=1)
    taken = PROCESSES.Event()
    holder = PROCESSES.Process(target=sit_on_lease, args=(home, taken))
    holder.start()
    assert taken.wait(WAIT_S)
    messages: list[str] = []

    async def wait_while_held() -> bool:
        """Whether entering got in before this client reported that it waits (it must not)."""
        instance, client = _client(home, "next-run", messages.append)
        entering = asyncio.create_task(client.__aenter__())
        while not entering.done() and not any(m.startswith("Waiting") for m in messages):
            await asyncio.sleep(0.05)  # poll interval of a condition wait
        got_in = entering.done()
        entering.cancel()
        instance.dispose()
        return got_in

    assert not asyncio.run(asyncio.wait_for(wait_while_held(), WAIT_S)), "the lease was taken twice"
    assert any("held by run killed-run" in m for m in messages), messages
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(WAIT_S)
    messages.clear()
    assert asyncio.run(asyncio.wait_for(_take_and_give_back(home, messages), WAIT_S))
    assert [m.split(",")[0] for m in messages if "Waiting" not in m] == [
        f"Lease of pool {POOL} taken",
        f"Lease of pool {POOL} given back",
    ]


async def _take_and_give_back(home: str, messages: list[str]) -> bool:
    instance, client = _client(home, "next-run", messages.append)
    async with client:
        pass
    instance.dispose()
    return True


def test_no_limit_no_lease(tmp_path: Path) -> None:
    home = make_home(tmp_path, None, limit=0)
    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        assert lease(instance, POOL, "r", print) is None
        assert lease(instance, None, "r", print) is None
    assert lease(None, POOL, "r", print) is None
