"""A throwaway MariaDB server for the MySQL source's live tests (tests/mysql_server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class MySQLDatabase:
    """A fresh database, a reader (SELECT only) and a writer (every privilege), both with passwords."""

    server: object
    name: str
    reader: str
    writer: str
    password: str

    def url(self, user: str) -> str:
        return f"mysql://{user}@127.0.0.1:{self.server.port}/{self.name}?ssl_disabled=true"

    def sql(self, statements: str) -> str:
        return self.server.sql(statements, self.name)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[object]:
    from mysql_server import mariadb_server

    with mariadb_server() as server:
        yield server


@pytest.fixture
def mysql_db(mariadb) -> MySQLDatabase:
    suffix = uuid.uuid4().hex[:10]
    db = MySQLDatabase(mariadb, f"t_{suffix}", f"r_{suffix}", f"w_{suffix}", f"pw-{uuid.uuid4().hex}")
    mariadb.sql(
        f"CREATE DATABASE {db.name};"
        f"CREATE USER '{db.reader}'@'127.0.0.1' IDENTIFIED BY '{db.password}';"
        f"GRANT SELECT ON {db.name}.* TO '{db.reader}'@'127.0.0.1';"
        f"CREATE USER '{db.writer}'@'127.0.0.1' IDENTIFIED BY '{db.password}';"
        f"GRANT ALL ON {db.name}.* TO '{db.writer}'@'127.0.0.1';"
    )
    return db
