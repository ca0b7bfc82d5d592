"""What kind of value a DuckDB column or expression holds, as far as Userflow is concerned."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import duckdb


class Kind(Enum):
    NULL = "null"
    TEXT = "text"  # VARCHAR, and types best sent as their text (ENUM, UUID, TIME, INTERVAL, BIT)
    BOOL = "boolean"
    INT = "integer"  # fits in 2^53 by construction (up to INTEGER / UINTEGER)
    BIGINT = "big integer"  # may exceed 2^53: checked per value
    FLOAT = "float"  # FLOAT, DOUBLE, DECIMAL
    TIMESTAMP = "timestamp"  # any TIMESTAMP flavour, with or without time zone
    DATE = "date"
    LIST = "list"  # LIST or ARRAY; its element may itself be nested (checked where it matters)
    NESTED = "nested"  # STRUCT, MAP, UNION, JSON, BLOB, nested lists: never an attribute value


_TEXT = {"varchar", "enum", "uuid", "time", "time with time zone", "interval", "bit", "varint", "bignum"}
_INT = {"tinyint", "smallint", "integer", "utinyint", "usmallint", "uinteger"}
_BIGINT = {"bigint", "ubigint", "hugeint", "uhugeint"}
_FLOAT = {"float", "double", "decimal"}
_TIMESTAMP = {"timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns", "timestamp with time zone"}


@dataclass(frozen=True)
class ValueType:
    kind: Kind
    sql: str  # DuckDB's name for the type, for messages and casts
    element: ValueType | None = None  # for LIST: the (scalar) element type
    fields: tuple[tuple[str, ValueType], ...] = ()  # for a STRUCT (memberships only)

    @property
    def is_json(self) -> bool:
        return self.sql == "JSON"

    def field(self, name: str) -> tuple[str, ValueType] | None:
        """A struct field by name (exact first, then case-insensitive, as DuckDB resolves it)."""
        for exact in (True, False):
            for fname, ftype in self.fields:
                if fname == name if exact else fname.lower() == name.lower():
                    return fname, ftype
        return None


def classify(t: duckdb.typing.DuckDBPyType) -> ValueType:
    sql = str(t)
    tid = t.id
    if sql == "JSON":
        return ValueType(Kind.NESTED, sql)
    if tid == "null":
        return ValueType(Kind.NULL, sql)
    if tid == "boolean":
        return ValueType(Kind.BOOL, sql)
    if tid in _TEXT:
        return ValueType(Kind.TEXT, sql)
    if tid in _INT:
        return ValueType(Kind.INT, sql)
    if tid in _BIGINT:
        return ValueType(Kind.BIGINT, sql)
    if tid in _FLOAT:
        return ValueType(Kind.FLOAT, sql)
    if tid in _TIMESTAMP:
        return ValueType(Kind.TIMESTAMP, sql)
    if tid == "date":
        return ValueType(Kind.DATE, sql)
    if tid in ("list", "array"):
        return ValueType(Kind.LIST, sql, classify(dict(t.children)["child"]))
    if tid == "struct":
        fields = tuple((name, classify(child)) for name, child in t.children)
        return ValueType(Kind.NESTED, sql, fields=fields)
    return ValueType(Kind.NESTED, sql)


SCALAR_KINDS = frozenset({Kind.NULL, Kind.TEXT, Kind.BOOL, Kind.INT, Kind.BIGINT, Kind.FLOAT, Kind.TIMESTAMP, Kind.DATE})


def is_flat(vt: ValueType) -> bool:
    """A scalar, or a list of scalars: what a Userflow attribute can hold."""
    if vt.kind == Kind.LIST:
        return vt.element is not None and vt.element.kind in SCALAR_KINDS
    return vt.kind in SCALAR_KINDS
