"""Source queries: SQL files read from `sql/`, checked, and bound to their one parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from userflow_assets.warehouse.params import markers

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


def query_parameters(sql: str) -> set[str]:
    """Names of the `$name` parameters in `sql`."""
    return {name for _, _, name in markers(sql)}
