"""DuckDB files opened by attaching them to an in-memory DuckDB kept for the process.

Connecting to a DuckDB file creates a database instance: about 25 ms of CPU, most of it
registering DuckDB's built-in functions in a fresh catalog, and more to free it at the close. A
sync opens its state file some 30 times a run, and lets it go between uses so that other
processes can open it (`StateDatabase.held`). Attaching the file to an instance that stays costs
a fifth of that, and detaching it checkpoints the file and releases its lock as a close does.

Each file gets an instance of its own, so it keeps what a direct connection gives it: its catalog
name (the file's stem), its memory cap and its spill folder (`<file>.tmp`). At most `IDLE_HOSTS`
instances with no file attached are kept. A forked child starts with none.

The sync state, the mirror and the log write-back into a DuckDB warehouse all open their files here.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import sleep
from typing import Any

import duckdb

from userflow_assets.sqltext import ident, literal

IDLE_HOSTS = 4
# Waits while another process holds the file: 0.1 s doubling, 10 times (about 100 s in all), as
# dagster-duckdb's DuckDBResource waits for its connection.
LOCK_RETRIES = 10
LOCK_FIRST_WAIT_S = 0.1
# What DuckDB says when the file is in use: by another process, or by another instance in this one.
_IN_USE = ("Could not set lock", "Unique file handle conflict")


@dataclass
class _Host:
    con: duckdb.DuckDBPyConnection
    alias: str
    memory_limit: str
    users: int = 0  # open_file blocks using it; changed under _hosts_lock
    attached: bool = False  # changed under `lock`, which also orders ATTACH and DETACH
    lock: threading.Lock = field(default_factory=threading.Lock)


_hosts: OrderedDict[str, _Host] = OrderedDict()
_hosts_lock = threading.Lock()
_inherited: list[OrderedDict[str, _Host]] = []


def _forget_hosts() -> None:
    # After a fork: the parent's instances, their threads and locks are not the child's. They
    # stay referenced, never closed: freeing an instance whose threads stayed behind crashes.
    global _hosts, _hosts_lock
    _inherited.append(_hosts)
    _hosts = OrderedDict()
    _hosts_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_hosts)


@contextmanager
def open_file(
    path: str, memory_limit: str = "", config: Mapping[str, Any] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of its own (its own transactions and temp tables) on the DuckDB file at
    `path`, created if missing, as the default catalog. The file stays attached while any such
    connection is open, and is detached (checkpointed, its lock released) after the last.
    `memory_limit` "" leaves DuckDB's own cap."""
    key = os.path.abspath(path)
    host = _reserve(key, config or {})
    try:
        with host.lock:
            if memory_limit and host.memory_limit != memory_limit:
                host.con.execute(f"SET memory_limit = {literal(memory_limit)}")
                host.memory_limit = memory_limit
            if not host.attached:
                _attach(host, key)
                host.attached = True
        con = host.con.cursor()
        try:
            con.execute(f"USE {ident(host.alias)}")
            yield con
        finally:
            con.close()
    finally:
        _release(key, host)


def _reserve(key: str, config: Mapping[str, Any]) -> _Host:
    """The instance for the file at `key` (made on first use), counted as used."""
    with _hosts_lock:
        host = _hosts.get(key)
        if host is None:
            settings = {"temp_directory": f"{key}.tmp", **config}
            host = _Host(duckdb.connect(":memory:", config=settings), Path(key).stem, "")
            _hosts[key] = host
        _hosts.move_to_end(key)
        host.users += 1
        return host


def _release(key: str, host: _Host) -> None:
    """One use fewer; after the last, DETACH the file and close instances idle beyond IDLE_HOSTS."""
    with host.lock:
        with _hosts_lock:
            host.users -= 1
            last = host.users == 0
        if last and host.attached:
            host.attached = False
            _detach(key, host)
    _close_idle()


def _attach(host: _Host, key: str) -> None:
    """ATTACH the file, waiting while another process (or instance) holds it."""
    wait = LOCK_FIRST_WAIT_S
    for retry in range(LOCK_RETRIES + 1):
        try:
            host.con.execute(f"ATTACH {literal(key)} AS {ident(host.alias)}")
            return
        except duckdb.Error as error:
            if retry == LOCK_RETRIES or not any(sign in str(error) for sign in _IN_USE):
                raise
        sleep(wait)
        wait *= 2


def _detach(key: str, host: _Host) -> None:
    """DETACH the file; should that fail, close its instance, which lets the file go as well."""
    try:
        host.con.execute(f"DETACH {ident(host.alias)}")
    except BaseException:
        with _hosts_lock:
            orphan = host.users == 0 and _hosts.get(key) is host
            if orphan:
                del _hosts[key]
        if orphan:
            host.con.close()
        else:  # another block took it meanwhile: it stays attached for that one
            host.attached = True
        raise


def _close_idle() -> None:
    """Close the least recently used instances with no file attached, beyond IDLE_HOSTS."""
    closing = []
    with _hosts_lock:
        idle = [(key, host) for key, host in _hosts.items() if host.users == 0]
        for key, host in idle[: max(0, len(idle) - IDLE_HOSTS)]:
            # Skipped if busy: a block releasing it is still detaching.
            if host.lock.acquire(blocking=False):
                try:
                    if not host.attached:
                        del _hosts[key]
                        closing.append(host)
                finally:
                    host.lock.release()
    for host in closing:
        host.con.close()
