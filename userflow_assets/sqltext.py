"""SQL text helpers every stage shares: quoting, table names, bound parameters, transactions
and the read-only attach of another DuckDB file.

It imports nothing from the package, so the first stage (the warehouse) can use it as well as the last.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb


def ident(name: str) -> str:
    """A quoted identifier: any column name, however odd, stays one name."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal for text the spec defines (names, messages); data values are bound instead."""
    return "'" + text.replace("'", "''") + "'"


def table_parts(name: str) -> list[str]:
    """`schema.table` (or `db.schema.table`, parts optionally double-quoted) split into its parts."""
    parts: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(name):
        ch = name[i]
        if ch == '"':
            if quoted and i + 1 < len(name) and name[i + 1] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    if quoted or not all(parts) or len(parts) > 3:
        raise ValueError(f"not a table name: {name!r}")
    return parts


def qualified(name: str) -> str:
    """A table name as the spec writes it (`schema.table`), quoted part by part."""
    return qualified_parts(*table_parts(name))


def qualified_parts(*parts: str) -> str:
    """A name from parts the code already holds apart (`schema`, `table`): each quoted, then joined."""
    return ".".join(ident(p) for p in parts)


@dataclass
class Params:
    """Named parameters collected while SQL text is built; `add` returns the placeholder."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> str:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return f"${key}"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block as one transaction: readers see all of its writes or none of them."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def attach_read_only(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """Attach the DuckDB file at `path` as `alias`, read-only: reading it never takes its write lock."""
    con.execute(f"ATTACH {literal(str(path))} AS {ident(alias)} (READ_ONLY)")
