"""A real, throwaway PostgreSQL server for tests: its own cluster in a temp folder, on loopback
(`userflow_assets/devtools/pgcluster.py`, shared with the benchmarks).

`USERFLOW_TEST_POSTGRES_URL`, when set, is used instead (a server the caller runs). Where no
PostgreSQL binaries exist, the tests that need one are skipped with the reason, or fail
under CI=true (tests/needs.py). Each test gets a database of its own (`fresh_database`), so
tests never see each other's tables and the cluster starts once per worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from needs import need

from userflow_assets.devtools import pgcluster
from userflow_assets.devtools.pgcluster import PostgresServer

__all__ = ["PostgresServer", "fresh_database", "postgres_server", "throwaway_cluster"]

URL_VARIABLE = "USERFLOW_TEST_POSTGRES_URL"


@contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """A cluster of the test's own; skipped (failed under CI) where PostgreSQL is not installed."""
    need(
        pgcluster.find_bin_dir() is not None,
        "this test needs PostgreSQL's server binaries (initdb, pg_ctl) or USERFLOW_TEST_POSTGRES_URL",
    )
    with pgcluster.throwaway_cluster() as server:
        yield server


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The caller's server from USERFLOW_TEST_POSTGRES_URL, or a throwaway cluster."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield PostgresServer(host="", port=0, user="", base_url=given)
        return
    with throwaway_cluster() as server:
        yield server


def fresh_database(server: PostgresServer, prefix: str = "t") -> str:
    """A new, empty database on `server`; returns its URL."""
    return server.create_database(f"{prefix}_{uuid.uuid4().hex[:12]}")
