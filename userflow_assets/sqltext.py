"""Text helpers every stage shares: SQL quoting, table names, bound parameters, transactions,
the read-only attach of another DuckDB file, and markdown tables for asset metadata.

It imports nothing from the package, so the first stage (the warehouse) can use it as well as the last.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


@contextmanager
def scratch_writes(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Tables written in the block are stored uncompressed: DuckDB writes them several times
    faster, and the run's scratch tables (staging, transform, plan) are replaced every run, so their
    size on disk matters less than the time. The setting belongs to the whole database
    instance, so it is set back at the end, also on error."""
    con.execute("SET force_compression = 'uncompressed'")
    try:
        yield
    finally:
        con.execute("RESET force_compression")


def attach_read_only(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """Attach the DuckDB file at `path` as `alias`, read-only: reading it never takes its write lock."""
    con.execute(f"ATTACH {literal(str(path))} AS {ident(alias)} (READ_ONLY)")


def md_cell(value: object, max_chars: int | None = None) -> str:
    """`value` as one markdown table cell: `|` escaped, newlines as spaces, at most `max_chars` (… included)."""
    text = "" if value is None else str(value)
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(columns: Sequence[str], rows: Sequence[Sequence[object]], max_chars: int | None = None) -> str:
    """`rows` as a markdown table under `columns`, each cell through `md_cell`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(md_cell(v, max_chars) for v in row) + " |" for row in rows]
    return "\n".join(lines)
