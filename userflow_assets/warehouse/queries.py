"""Source queries: SQL files read from `sql/`, checked, and bound to their one parameter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

CURSOR_PARAMETER = "LAST_SYNC_TIMESTAMP"
# Bound on a full read, so `updated_at > $LAST_SYNC_TIMESTAMP` keeps every dated row.
EARLIEST = datetime(1, 1, 1)


class QueryError(ValueError):
    """A source query that cannot run, with the file it came from."""


@dataclass(frozen=True)
class SourceQuery:
    path: Path
    text: str
    uses_cursor: bool

    def parameters(self, since: datetime | None) -> dict[str, datetime]:
        """The bound parameters: never pasted into the text, so no value can change the SQL."""
        return {CURSOR_PARAMETER: since or EARLIEST} if self.uses_cursor else {}


def load_query(path: Path) -> SourceQuery:
    if not path.is_file():
        raise QueryError(f"Source query file not found: {path}")
    text = path.read_text().strip().rstrip(";").strip()
    if not text:
        raise QueryError(f"{path}: the query file is empty")
    names = query_parameters(text)
    unknown = sorted(n for n in names if n.upper() != CURSOR_PARAMETER)
    if unknown:
        listed = ", ".join(f"${n}" for n in unknown)
        raise QueryError(
            f"{path}: unknown parameter {listed}; the only parameter a source query may use is ${CURSOR_PARAMETER}"
        )
    return SourceQuery(path=path, text=text, uses_cursor=bool(names))


def parameter_spans(sql: str) -> list[tuple[int, int, str]]:
    """`(start, end, name)` of each `$name` parameter, found by DuckDB's own tokenizer (so not
    in strings, dollar quotes or comments)."""
    tokens = duckdb.tokenize(sql)
    spans: list[tuple[int, int, str]] = []
    for (pos, kind), (next_pos, next_kind) in zip(tokens, tokens[1:], strict=False):
        is_dollar = kind == duckdb.token_type.operator and sql[pos] == "$"
        if is_dollar and next_pos == pos + 1 and next_kind == duckdb.token_type.identifier:
            end = next_pos
            while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            spans.append((pos, end, sql[next_pos:end]))
    return spans


def query_parameters(sql: str) -> set[str]:
    """Names of the `$name` parameters in `sql`."""
    return {name for _, _, name in parameter_spans(sql)}


def replace_parameters(sql: str, replacement: Callable[[str], str]) -> str:
    """`sql` with each `$name` replaced by `replacement(name)`: how a warehouse whose driver
    binds parameters its own way receives the project's `$NAME` style."""
    out, last = [], 0
    for start, end, name in parameter_spans(sql):
        out += [sql[last:start], replacement(name)]
        last = end
    return "".join(out) + sql[last:]
