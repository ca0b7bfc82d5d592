"""A key's lease: while a client is open it holds one slot of its Dagster pool's limit.

Dagster's pool keeps a key's steps apart only when their claims do not meet: two steps that
claim a free slot at the same moment (two syncs of one key launched together, two schedules
on the same cron) can both get it, on SQLite and on Postgres storage alike. So every client
of a key also takes a lease on the instance, with a primitive that cannot be won twice:

- an instance on Postgres storage: a session advisory lock in the instance's database;
- an instance in a directory (SQLite): an exclusive `flock` on a file in that directory.

Either is released by the operating system or the server when the holding process dies, so a
killed run never keeps a lease. The number of leases is the pool's limit
(`dagster instance concurrency set <pool> N`); a pool without a limit takes none. Any other
storage is left to Dagster's pool alone.
"""

import asyncio
import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

POLL_S = 0.2  # between attempts while another holder has every slot
REPORT_EVERY_S = 60.0  # a waiting client says so again after this long


class _Slot(Protocol):
    def try_take(self) -> bool: ...

    def holder(self) -> str: ...

    def give_back(self) -> None: ...


class _FileSlot:
    """Slot `index` of `pool`: an exclusive flock on `<directory>/<pool>.<index>.lock`."""

    def __init__(self, directory: Path, pool: str, index: int, me: str) -> None:
        self.path = directory / f"{pool}.{index}.lock"
        self.me = me
        self._fd: int | None = None

    def try_take(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.me.encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def give_back(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class _PostgresSlot:
    """Slot `index` of `pool`: a session advisory lock in the instance's Postgres database."""

    def __init__(self, url: str, pool: str, index: int, me: str) -> None:
        self.url, self.me = url, me
        digest = hashlib.sha256(f"userflow lease {pool} {index}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._con: Any = None

    def _connect(self) -> Any:
        import psycopg2  # dagster-postgres's driver: present whenever the instance is on Postgres

        con = psycopg2.connect(
            self.url.replace("postgresql+psycopg2://", "postgresql://", 1),
            application_name=f"userflow lease {self.me}"[:63],
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,  # a holder whose machine vanished loses the lease in about a minute
        )
        con.autocommit = True
        return con

    def _session(self) -> Any:
        """One session per slot: it holds the lock once taken, and serves every attempt before."""
        if self._con is None:
            self._con = self._connect()
        return self._con

    def try_take(self) -> bool:
        with self._session().cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            (taken,) = cur.fetchone()
        return bool(taken)

    def holder(self) -> str:
        with self._session().cursor() as cur:
            cur.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = (%s::bigint & x'ffffffffffffffff'::bigint)",
                (self.key,),
            )
            row = cur.fetchone()
        return row[0].removeprefix("userflow lease ") if row else "unknown"

    def give_back(self) -> None:
        if self._con is not None:
            self._con.close()  # ends the session, and with it the lock if it was taken
            self._con = None


SlotFactory = Callable[[int], _Slot]


def slot_factory(instance: Any, pool: str, me: str) -> SlotFactory | None:
    """How to make `pool`'s slots on `instance`, or None where this instance has no primitive."""
    url = getattr(instance.event_log_storage, "postgres_url", None)
    if isinstance(url, str) and url:
        return lambda index: _PostgresSlot(url, pool, index, me)
    root = getattr(instance, "root_directory", None)
    if root and instance.is_persistent:
        return lambda index: _FileSlot(Path(root) / "userflow_leases", pool, index, me)
    return None


def pool_limit(instance: Any, pool: str) -> int:
    """The pool's slot count on the instance (0: no limit)."""
    storage = instance.event_log_storage
    if not getattr(storage, "supports_global_concurrency_limits", False):
        return 0
    return int(storage.get_concurrency_info(pool).slot_count)


# The slots this process holds, per (pool, holder), with how many clients use each: one run's
# clients share its lease; two runs in one process each need their own.
_HELD_LOCK = threading.Lock()
_HELD: dict[tuple[str, str], tuple[_Slot, int]] = {}


def _take_any(held: tuple[str, str], slots: list[_Slot]) -> bool | None:
    """Join this holder's lease (False) or take a free slot (True); None while every slot is held.
    The slots not taken are given back, closing what they opened to try."""
    with _HELD_LOCK:
        if held in _HELD:
            slot, users = _HELD[held]
            _HELD[held] = (slot, users + 1)
            return False
        taken = next((slot for slot in slots if slot.try_take()), None)
        if taken is None:
            return None
        _HELD[held] = (taken, 1)
    for slot in slots:
        if slot is not taken:
            slot.give_back()
    return True


def _give_back(held: tuple[str, str]) -> bool:
    """Drop one user of the slot; True when that released it."""
    with _HELD_LOCK:
        slot, users = _HELD[held]
        if users > 1:
            _HELD[held] = (slot, users - 1)
            return False
        del _HELD[held]
    slot.give_back()
    return True


def holder_name(run_id: str | None) -> str:
    return f"run {run_id or '?'} (pid {os.getpid()} on {socket.gethostname()})"


@asynccontextmanager
async def _leased(
    pool: str, me: str, make: SlotFactory, limit: int, report: Callable[[str], None]
) -> AsyncIterator[None]:
    started = time.monotonic()
    reported: float | None = None
    slots = [make(index) for index in range(limit)]
    try:
        while (fresh := _take_any((pool, me), slots)) is None:
            if reported is None or time.monotonic() - reported >= REPORT_EVERY_S:
                report(f"Waiting for a lease of pool {pool} ({limit} slot(s)), held by {slots[0].holder()}")
                reported = time.monotonic()
            await asyncio.sleep(POLL_S)
    except BaseException:  # cancelled while waiting: nothing was taken, close what the attempts opened
        for slot in slots:
            slot.give_back()
        raise
    if fresh:
        report(
            f"Lease of pool {pool} taken, after waiting {time.monotonic() - started:.1f} s"
        )
    try:
        yield
    finally:
        if _give_back((pool, me)):
            report(f"Lease of pool {pool} given back")


def lease(
    instance: Any,
    pool: str | None,
    run_id: str | None,
    report: Callable[[str], None] = log.info,
) -> AbstractAsyncContextManager[None] | None:
    """The lease a client of `pool` holds while open, or None when there is nothing to hold."""
    if instance is None or not pool:
        return None
    limit, me = pool_limit(instance, pool), holder_name(run_id)
    make = slot_factory(instance, pool, me)
    if limit <= 0 or make is None:
        return None
    return _leased(pool, me, make, limit, report)
