"""Markdown for asset metadata."""

from collections.abc import Sequence
from typing import Any

MAX_CELL = 80


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_CELL:  # a long attributes JSON would swamp the metadata view
        text = text[: MAX_CELL - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "none") -> str:
    if not rows:
        return empty
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
