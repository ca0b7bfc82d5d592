"""The dirty rows planted in the sample warehouse.

Every kind appears at least its minimum number of times, even for the smallest warehouse
(100 users), so a rehearsal always meets each one. *Rate* is the share of the rows named in
*Rate of* that get the kind (the "users, accounts" kinds are planted in both tables, each at the
rate). Each planted row is listed in the `sample_dirty_rows` table (`table_name`, `row_key`,
`kind`); rows without a usable `user_id` are keyed `email=...` or `first_name=...;last_name=...;signed_up_at=...`.

| Kind | Rate | Rate of | What is planted |
|---|---|---|---|
| `null_user_id` | 0.1% | users | `user_id` is NULL and so is `email`: nothing can identify the user |
| `empty_user_id` | 0.05% | users | `user_id` is the empty string `''` |
| `blank_user_id` | 0.05% | users | `user_id` is whitespace only (`' '`, `'   '`, a tab) |
| `fallback_email_id` | 0.2% | users | `user_id` is NULL but `email` is set: the fallback-ID case |
| `duplicate_user_id` | 0.1% | users | a second row with the same `user_id` and a different `email`, `plan` and later `updated_at` |
| `special_char_id` | 0.1% | users, accounts | IDs with `/`, `?`, `#`, `..`, spaces or non-ASCII (`usr/eu/7`, `usr?x=7`, `usr#7`, `../usr_7`, `usr 7`, `usr_ünïcødé_7`, `acc/eu/3`, `acc #3`, `acc_ünïcødé_3`, `../acc?ref=3`), with their memberships and events |
| `nan_number` | 0.1% | users, accounts | `users.mrr` / `accounts.arr` is NaN |
| `infinite_number` | 0.1% | users, accounts | `users.mrr` / `accounts.arr` is +Infinity or -Infinity (both signs always present) |
| `long_string` | 0.05% | users, accounts | `users.bio` / `accounts.name` longer than 10,000 characters |
| `naive_timestamp_text` | 3% | users | `trial_ends_at` text without an offset (`2026-03-01T10:00:00`, meant as UTC); clean rows end in `Z`, about 30% are NULL |
| `offset_timestamp_text` | 3% | users | `trial_ends_at` text with a non-UTC offset (`2026-03-01T12:00:00+02:00`), the same instant as the UTC form |
| `event_name_variant` | 0.5% | events | a name differing from the canonical one only in case or separators (`feature_activated`, `Feature Activated` for `Feature_Activated`) |
| `duplicate_account_id` | 0.5% | accounts | a second row with the same `account_id` and a different `name`, `plan`, `arr` and later `updated_at` |
| `orphan_membership` | 0.05% | users | one more membership (also in the user's `account_ids`) naming an `account_id` absent from `accounts` |
| `orphan_event` | 0.05% | events | an event whose `user_id` is absent from `users` |

Schema-level time zones (no row is planted for them): `signed_up_at`, `updated_at` and
`created_at` are naive `TIMESTAMP` (UTC by convention), `last_seen_at` is `TIMESTAMPTZ`.
"""

from __future__ import annotations

NULL_USER_ID_RATE = 0.001
EMPTY_USER_ID_RATE = 0.0005
BLANK_USER_ID_RATE = 0.0005
FALLBACK_EMAIL_ID_RATE = 0.002
DUPLICATE_USER_ID_RATE = 0.001
SPECIAL_CHAR_ID_RATE = 0.001
NAN_NUMBER_RATE = 0.001
INFINITE_NUMBER_RATE = 0.001
LONG_STRING_RATE = 0.0005
NAIVE_TIMESTAMP_TEXT_RATE = 0.03
OFFSET_TIMESTAMP_TEXT_RATE = 0.03
EVENT_NAME_VARIANT_RATE = 0.005
DUPLICATE_ACCOUNT_ID_RATE = 0.005
ORPHAN_MEMBERSHIP_RATE = 0.0005
ORPHAN_EVENT_RATE = 0.0005

DIRTY_KINDS: dict[str, str] = {
    "null_user_id": "user_id is NULL and so is email: nothing can identify the user",
    "empty_user_id": "user_id is the empty string ''",
    "blank_user_id": "user_id is whitespace only",
    "fallback_email_id": "user_id is NULL but email is set: the fallback-ID case",
    "duplicate_user_id": "a second users row with the same user_id and a different email, plan and later updated_at",
    "special_char_id": "a user_id or account_id containing '/', '?', '#', '..', a space or non-ASCII characters",
    "nan_number": "users.mrr or accounts.arr is NaN",
    "infinite_number": "users.mrr or accounts.arr is +Infinity or -Infinity",
    "long_string": "users.bio or accounts.name is longer than 10,000 characters",
    "naive_timestamp_text": "trial_ends_at is ISO 8601 text without an offset (meant as UTC)",
    "offset_timestamp_text": "trial_ends_at is ISO 8601 text with a non-UTC offset",
    "event_name_variant": "an event name differing from the canonical one only in case or separators",
    "duplicate_account_id": "a second accounts row with the same account_id and a different name, plan, arr and later updated_at",
    "orphan_membership": "a membership (also listed in users.account_ids) naming an account_id absent from accounts",
    "orphan_event": "an event whose user_id is absent from users",
}

DIRTY_RATES: dict[str, float] = {
    "null_user_id": NULL_USER_ID_RATE,
    "empty_user_id": EMPTY_USER_ID_RATE,
    "blank_user_id": BLANK_USER_ID_RATE,
    "fallback_email_id": FALLBACK_EMAIL_ID_RATE,
    "duplicate_user_id": DUPLICATE_USER_ID_RATE,
    "special_char_id": SPECIAL_CHAR_ID_RATE,
    "nan_number": NAN_NUMBER_RATE,
    "infinite_number": INFINITE_NUMBER_RATE,
    "long_string": LONG_STRING_RATE,
    "naive_timestamp_text": NAIVE_TIMESTAMP_TEXT_RATE,
    "offset_timestamp_text": OFFSET_TIMESTAMP_TEXT_RATE,
    "event_name_variant": EVENT_NAME_VARIANT_RATE,
    "duplicate_account_id": DUPLICATE_ACCOUNT_ID_RATE,
    "orphan_membership": ORPHAN_MEMBERSHIP_RATE,
    "orphan_event": ORPHAN_EVENT_RATE,
}

# ID shapes of the special_char_id kind; "{n}" is the row's number, which keeps them unique.
SPECIAL_USER_ID_PATTERNS: tuple[str, ...] = (
    "usr/eu/{n}", "usr?x={n}", "usr#{n}", "../usr_{n}", "usr {n}", "usr_ünïcødé_{n}",
)
SPECIAL_ACCOUNT_ID_PATTERNS: tuple[str, ...] = (
    "acc/eu/{n}", "acc #{n}", "acc_ünïcødé_{n}", "../acc?ref={n}",
)
BLANK_IDS: tuple[str, ...] = (" ", "   ", "\t")
# Non-UTC offsets of offset_timestamp_text, in minutes east of UTC, with their text form.
TEXT_OFFSETS: tuple[tuple[int, str], ...] = (
    (120, "+02:00"), (-300, "-05:00"), (330, "+05:30"), (540, "+09:00"), (-480, "-08:00"), (60, "+01:00"),
)

# Smallest number planted per table, so that every shape of a kind is met at any size.
MINIMUMS: dict[str, int] = {
    "special_char_id:users": len(SPECIAL_USER_ID_PATTERNS),
    "special_char_id:accounts": len(SPECIAL_ACCOUNT_ID_PATTERNS),
    "infinite_number:users": 2,
    "infinite_number:accounts": 2,
    "blank_user_id:users": len(BLANK_IDS),
    "offset_timestamp_text:users": 2,
    "naive_timestamp_text:users": 2,
    "event_name_variant:events": 3,
}


def dirty_count(kind: str, table: str, population: int) -> int:
    """How many rows of `kind` to plant in a table of `population` rows: the rate, at least the minimum."""
    return max(MINIMUMS.get(f"{kind}:{table}", 1), round(DIRTY_RATES[kind] * population))
