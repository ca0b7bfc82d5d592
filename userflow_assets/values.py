"""When an attribute value in Userflow is the value the sync sent: the one rule that the
read-back check, the drift report and the peer benchmark share.

Userflow answers in JSON and may write a value other than the sync wrote it (7.0 for 7,
`+00:00` for `Z`); it still holds that value, so none of them may call it a difference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def same_value(sent: Any, held: Any) -> bool:
    """Whether `held` is the value `sent`, both as JSON decodes them.

    Numbers are equal by value (7 == 7.0; a boolean is no number), two strings that read as
    ISO 8601 date-times by the instant they name (naive ones are UTC), lists item by item,
    anything else when it is equal and of the same type.
    """
    if _number(sent) and _number(held):
        return float(sent) == float(held)
    if isinstance(sent, str) and isinstance(held, str) and sent != held:
        instant = _instant(sent)
        return instant is not None and instant == _instant(held)
    if isinstance(sent, list) and isinstance(held, list):
        return len(sent) == len(held) and all(map(same_value, sent, held))
    return type(sent) is type(held) and sent == held


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
