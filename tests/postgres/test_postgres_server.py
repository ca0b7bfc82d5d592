"""The throwaway PostgreSQL server the Postgres tests run against."""

import os
import select
import socket
import subprocess
import sys
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import pytest
from needs import need
from postgres_server import fresh_database

from userflow_assets.devtools import pgcluster


def test_each_test_gets_an_empty_database_of_its_own(postgres, postgres_url):
    with pg.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE only_here (x int)")
        con.commit()
    with pg.connect(fresh_database(postgres)) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cur.fetchone()[0] == 0


def test_a_restart_drops_connections_and_keeps_the_data(postgres, postgres_url):
    if postgres.data_dir is None:
        pytest.skip("a server given by USERFLOW_TEST_POSTGRES_URL is not the tests' to restart")
    with pg.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE kept (x int)")
        cur.execute("INSERT INTO kept VALUES (7)")
        con.commit()
        postgres.restart()
        with pytest.raises(pg.Error):
            cur.execute("SELECT 1")
    with pg.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("SELECT x FROM kept")
        assert cur.fetchall() == [(7,)]


# Starts a throwaway cluster, says where, and waits to be killed.
HOLD_CLUSTER = """
import sys
from userflow_assets.devtools.pgcluster import throwaway_cluster
with throwaway_cluster() as server:
    print(server.data_dir.parent, server.port, flush=True)
    sys.stdin.readline()
"""


def test_a_cluster_whose_starter_is_killed_is_stopped_and_removed() -> None:
    need(pgcluster.find_bin_dir() is not None, "this test needs PostgreSQL's server binaries (initdb, pg_ctl)")
    starter = subprocess.Popen([sys.executable, "-c", HOLD_CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    root, port = starter.stdout.readline().split()
    assert _accepts(int(port))
    watchers = _watchers_of(root)
    starter.kill()  # SIGKILL: no cleanup of its own runs
    starter.wait()
    # The watcher stops the server (pg_ctl waits for it to end), removes the folder, and exits.
    for pid in watchers:
        select.select([os.pidfd_open(pid)], [], [], 120)
    assert not Path(root).exists(), f"the cluster in {root} was left behind"
    assert not _accepts(int(port)), f"a server still listens on port {port}"


def _watchers_of(root: str) -> list[int]:
    """The processes whose command line names the cluster's folder: its watcher, started with it."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and root.encode() in argv:
            found.append(int(entry.name))
    return found


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except OSError:
        return False
    return True
