"""The ceiling: the same payloads as the naive script, sent by an asyncio httpx loop paced at
the emulator's limit with `--concurrency` requests in flight. No state, no backoff: a request
that fails is sent again at the next free slot.

    python bare_httpx.py --warehouse W.duckdb --base-url URL --rate 100   (key in USERFLOW_API_KEY)
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naive_script import GROUPS_SQL, MEMBERSHIPS_SQL, USERS_SQL, rows


def payloads(warehouse: str) -> list[tuple[str, dict]]:
    with duckdb.connect(warehouse, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        groups, users = rows(con, GROUPS_SQL), rows(con, USERS_SQL)
        memberships: dict[str, list] = {}
        for user_id, account_id, role in con.execute(MEMBERSHIPS_SQL).fetchall():
            memberships.setdefault(user_id, []).append({"group": {"id": account_id}, "attributes": {"role": role}})
    out = [("/groups", {"id": g.pop("account_id"), "attributes": g}) for g in groups]
    for u in users:
        user_id = u.pop("user_id")
        out.append(("/users", {"id": user_id, "attributes": u, "memberships": memberships.get(user_id, [])}))
    return out


async def run(base_url: str, key: str, work: list[tuple[str, dict]], rate: float, concurrency: int) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    start, sent = time.monotonic(), 0
    lock = asyncio.Lock()

    async def slot() -> None:  # the n-th request goes no earlier than n / rate seconds in
        nonlocal sent
        async with lock:
            due = start + sent / rate
            sent += 1
        await asyncio.sleep(max(0.0, due - time.monotonic()))

    headers = {"Authorization": f"Bearer {key}", "Userflow-Version": "2020-01-03"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                path, body = queue.get_nowait()
                await slot()
                try:
                    ok = (await client.post(path, json=body)).is_success
                except httpx.TransportError:
                    ok = False
                if not ok:
                    queue.put_nowait((path, body))

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = payloads(args.warehouse)
    asyncio.run(run(args.base_url, os.environ["USERFLOW_API_KEY"], work, args.rate, args.concurrency))
    print(f"sent {len(work)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
