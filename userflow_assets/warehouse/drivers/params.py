"""The project's `$NAME` parameters, rewritten into a driver's own marker and bound by it.

Found with DuckDB's tokenizer, as `queries.query_parameters` does, so a `$` inside a string
(including `$$...$$` dollar quoting), a quoted identifier or a comment is left as written.
Only the markers change; no value ever enters the SQL text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import duckdb

from userflow_assets.warehouse.source import SourceError


class Style(Enum):
    QMARK = "qmark"  # ? positional: Snowflake (ADBC), Redshift, MySQL prepared statements
    AT = "at"  # @NAME: BigQuery named parameters
    COLON = "colon"  # :NAME: Databricks native parameters


@dataclass(frozen=True)
class Translated:
    """SQL in a driver's style and the parameter names in binding order."""

    sql: str
    names: tuple[str, ...]  # positional: one per marker, repeats included; named: each name once

    def values(self, params: Mapping[str, object]) -> list[object]:
        """The values in binding order; a name the query uses but `params` lacks is an error."""
        by_upper = {name.upper(): value for name, value in params.items()}
        missing = sorted({n for n in self.names if n.upper() not in by_upper})
        if missing:
            raise SourceError(f"the query uses ${', $'.join(missing)} but no value was given for it")
        return [by_upper[n.upper()] for n in self.names]


def _markers(sql: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of each `$NAME` outside strings and comments."""
    tokens = duckdb.tokenize(sql)
    found: list[tuple[int, int, str]] = []
    for (pos, kind), (next_pos, next_kind) in zip(tokens, tokens[1:], strict=False):
        is_dollar = kind == duckdb.token_type.operator and sql[pos] == "$"
        if is_dollar and next_pos == pos + 1 and next_kind == duckdb.token_type.identifier:
            end = next_pos
            while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            found.append((pos, end, sql[next_pos:end]))
    return found


def _has_bare_qmark(sql: str) -> bool:
    return any(kind == duckdb.token_type.operator and sql[pos] == "?" for pos, kind in duckdb.tokenize(sql))


def _marker(style: Style, name: str) -> str:
    if style is Style.QMARK:
        return "?"
    return ("@" if style is Style.AT else ":") + name


def translate(sql: str, style: Style) -> Translated:
    """`sql` with each `$NAME` replaced by `style`'s marker."""
    if style is Style.QMARK and _has_bare_qmark(sql):
        # A `?` of the query's own would shift every positional value after it.
        raise SourceError("the query has a `?` outside a string; write parameters as $NAME")
    parts: list[str] = []
    names: list[str] = []
    last = 0
    for start, end, name in _markers(sql):
        parts += [sql[last:start], _marker(style, name)]
        names.append(name)
        last = end
    parts.append(sql[last:])
    if style is not Style.QMARK:
        names = list(dict.fromkeys(names))
    return Translated(sql="".join(parts), names=tuple(names))
