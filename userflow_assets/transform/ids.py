"""The ID rules shared by record IDs and group IDs in memberships."""

from __future__ import annotations

from userflow_assets.sqltext import literal

MAX_ID_CHARS = 1000
# Whitespace a blank ID may consist of: ASCII and the Unicode spaces str.isspace() knows.
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
# C0 and C1 control characters and DEL: they break URLs, logs and the front end's identify().
CONTROL_PATTERN = r"[\x00-\x1f\x7f-\x{9f}]"


def usable(x: str) -> str:
    """SQL: true when text `x` is an ID at all (not null, not empty, not whitespace only).

    Only text starting with whitespace can be blank, and trim() with a character set is slow,
    so (CASE being lazy, unlike OR) it runs for those rows alone. Code points above 32, other
    than 133 and 160 and below 5760, are not whitespace.
    """
    first = f"unicode({x})"
    return (
        f"(CASE WHEN {x} IS NULL OR {x} = '' THEN false "
        f"WHEN {first} > 32 AND {first} < 5760 AND {first} NOT IN (133, 160) THEN true "
        f"ELSE trim({x}, {literal(WHITESPACE)}) <> '' END)"
    )


def has_control(x: str) -> str:
    return f"regexp_matches({x}, {literal(CONTROL_PATTERN)})"


def too_long(x: str) -> str:
    return f"(length({x}) > {MAX_ID_CHARS})"
