"""The project's `$NAME` parameters: found in a query, and rewritten into a warehouse's own marker.

The one place they are found (`markers`, by DuckDB's tokenizer, so a `$` inside a string,
`$$...$$` dollar quoting, a quoted identifier or a comment is left as written) and rewritten
(`rewrite`): for the queries' checks, the Postgres source and every driver. Only the markers
change; no value ever enters the SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def markers(sql: str) -> list[tuple[int, int, str]]:
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
    names = [name for _, _, name in markers(sql)]
    if style is not Style.QMARK:
        names = list(dict.fromkeys(names))
    return Translated(sql=rewrite(sql, lambda name: _marker(style, name)), names=tuple(names))


def rewrite(sql: str, marker: Callable[[str], str]) -> str:
    """`sql` with each `$NAME` replaced by `marker(NAME)`."""
    parts: list[str] = []
    last = 0
    for start, end, name in markers(sql):
        parts += [sql[last:start], marker(name)]
        last = end
    parts.append(sql[last:])
    return "".join(parts)
