"""Attribute values and change operations, as Userflow (userflow.js) defines them.

A value is a literal (string, number, boolean, null, or a list of those) or a change object
with exactly one operation:

- `set`: the value; `null` removes the attribute.
- `set_once`: the value, only if the attribute is not set yet.
- `add` / `subtract`: a number; a missing attribute counts as 0.
- `append` / `prepend` / `remove`: a scalar or a list; a missing attribute counts as `[]`,
  a scalar attribute as a one-item list. `remove` drops every equal item.

`data_type` (string, number, boolean, datetime, list) may accompany the operation: it fixes
the attribute definition's type on first write and the resulting value must fit it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from userflow_assets.emulator.errors import invalid

OPERATIONS = ("set", "set_once", "add", "subtract", "append", "prepend", "remove")
DATA_TYPES = ("string", "number", "boolean", "datetime", "list")

_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class Change:
    """One attribute's requested change."""

    op: str
    value: Any
    data_type: str | None = None


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def is_literal(value: object) -> bool:
    if isinstance(value, list):
        return all(is_scalar(item) for item in value)
    return is_scalar(value)


def parse_datetime(value: str) -> datetime | None:
    """An aware UTC datetime for an ISO 8601 date-time string, else None (naive means UTC)."""
    if not _DATETIME_RE.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def infer_data_type(value: Any) -> str | None:
    """The data type an attribute definition gets from its first non-null value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str) and parse_datetime(value) is not None:
        return "datetime"
    return "string"


def fits_data_type(value: Any, data_type: str) -> bool:
    if data_type == "string":
        return isinstance(value, str)
    if data_type == "number":
        return is_number(value)
    if data_type == "boolean":
        return isinstance(value, bool)
    if data_type == "datetime":
        return isinstance(value, str) and parse_datetime(value) is not None
    return isinstance(value, list)


def parse_change(name: str, raw: Any, *, operations: tuple[str, ...] = OPERATIONS) -> Change:
    """Validate one attribute value from a request body; 400 naming the attribute if bad."""
    if not isinstance(raw, dict):
        if not is_literal(raw):
            raise invalid(f"attributes.{name}: value must be a string, number, boolean, null or a list of those")
        return Change("set", raw)
    ops = [key for key in raw if key in OPERATIONS]
    unknown = [key for key in raw if key not in OPERATIONS and key != "data_type"]
    if unknown:
        raise invalid(f"attributes.{name}: unknown operation {unknown[0]!r}; nested objects are not allowed")
    if len(ops) != 1:
        raise invalid(f"attributes.{name}: a change object needs exactly one of {', '.join(operations)}")
    op = ops[0]
    if op not in operations:
        raise invalid(f"attributes.{name}: operation {op!r} is not allowed here")
    data_type = raw.get("data_type")
    if data_type is not None and data_type not in DATA_TYPES:
        raise invalid(f"attributes.{name}: data_type must be one of {', '.join(DATA_TYPES)}")
    value = raw[op]
    _check_operand(name, op, value)
    return Change(op, value, data_type)


def _check_operand(name: str, op: str, value: Any) -> None:
    if op in ("add", "subtract") and not is_number(value):
        raise invalid(f"attributes.{name}: {op} needs a number")
    if op in ("append", "prepend", "remove") and (value is None or not is_literal(value)):
        raise invalid(f"attributes.{name}: {op} needs a scalar or a list of scalars")
    if not is_literal(value):
        raise invalid(f"attributes.{name}: {op} value must be a string, number, boolean, null or a list of those")


def _as_list(current: Any) -> list[Any]:
    if current is None:
        return []
    return list(current) if isinstance(current, list) else [current]


def _same(a: Any, b: Any) -> bool:
    # Python treats True == 1; attribute lists must not.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def apply_change(attributes: dict[str, Any], name: str, change: Change) -> None:
    """Apply one change to `attributes` in place; 400 if the current value does not allow it."""
    current = attributes.get(name)
    op, value = change.op, change.value
    if op == "set_once" and name in attributes:
        return
    if op in ("set", "set_once"):
        result = value
    elif op in ("add", "subtract"):
        if current is not None and not is_number(current):
            raise invalid(f"attributes.{name}: cannot {op} on a non-number value")
        base = current if current is not None else 0
        result = base + value if op == "add" else base - value
    else:
        items = value if isinstance(value, list) else [value]
        existing = _as_list(current)
        if op == "append":
            result = existing + items
        elif op == "prepend":
            result = items + existing
        else:
            result = [x for x in existing if not any(_same(x, y) for y in items)]
    if result is None:
        attributes.pop(name, None)
        return
    if change.data_type is not None and not fits_data_type(result, change.data_type):
        raise invalid(f"attributes.{name}: value does not match data_type {change.data_type!r}")
    attributes[name] = result


def humanize(name: str) -> str:
    """Display name for an attribute or event name: `signed_up_at` -> `Signed up at`."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"[_\-.\s]+", " ", spaced).strip()
    if not spaced:
        return name
    return spaced[0].upper() + spaced[1:].lower()
