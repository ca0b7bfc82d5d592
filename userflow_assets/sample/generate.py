"""Generate the sample warehouse: users, accounts, memberships and events, with dirty rows.

numpy (one seeded Generator) draws every random choice as numbers; DuckDB turns the numbers
into text, timestamps and lists in bulk. No per-row Python runs, so a million users take
seconds, and the same seed always yields the same table contents (DuckDB's own `random()`
is never used: it differs between threads and runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from userflow_assets.sample import vocab as v
from userflow_assets.sample.dirty import dirty_count

MIN_USERS = 100
# Sign-ups spread over the three years ending on END; every timestamp stays at or before END.
START = datetime(2023, 11, 1, tzinfo=UTC)
END = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
START_S = int(START.timestamp())
END_S = int(END.timestamp())
DAY_S = 86_400
TRIAL_DAYS = 14
USERS_PER_ACCOUNT = 20

# Dirty kinds planted on users rows, in placement order; the code of a kind is its index + 1.
USER_KINDS: tuple[str, ...] = (
    "null_user_id", "empty_user_id", "blank_user_id", "fallback_email_id", "duplicate_user_id",
    "special_char_id", "nan_number", "infinite_number", "long_string",
    "naive_timestamp_text", "offset_timestamp_text", "orphan_membership",
)
ACCOUNT_KINDS: tuple[str, ...] = (
    "special_char_id", "nan_number", "infinite_number", "long_string", "duplicate_account_id",
)
EVENT_KINDS: tuple[str, ...] = ("orphan_event", "event_name_variant")
# Users whose row carries no usable ID: they get no membership rows and no events.
NO_ID_KINDS: tuple[str, ...] = ("null_user_id", "empty_user_id", "blank_user_id", "fallback_email_id")

TABLES: tuple[str, ...] = ("users", "accounts", "account_memberships", "events", "sample_dirty_rows")


def user_code(name: str) -> int:
    """The number a users row carries for a dirty kind (0 is clean)."""
    return USER_KINDS.index(name) + 1


def account_code(name: str) -> int:
    return ACCOUNT_KINDS.index(name) + 1


def event_code(name: str) -> int:
    return EVENT_KINDS.index(name) + 1


def name_variants(name: str) -> list[str]:
    """Spellings of an event name that differ from it only in case or separators."""
    words = name.replace("_", " ").split()
    title = [w[:1].upper() + w[1:].lower() for w in words]
    lower = [w.lower() for w in words]
    forms = [
        "_".join(lower), " ".join(title), " ".join(lower), "_".join(title),
        "_".join(w.upper() for w in words), "-".join(lower),
    ]
    out: list[str] = []
    for form in forms:
        if form != name and form not in out:
            out.append(form)
    return out


@dataclass(frozen=True)
class Draw:
    """Every random choice of one warehouse, as numeric frames DuckDB scans in place."""

    users: int
    accounts: int
    orphan_accounts: int
    orphan_events: int
    user_frame: pd.DataFrame
    account_frame: pd.DataFrame
    link_frame: pd.DataFrame
    event_frame: pd.DataFrame


def _place(order: np.ndarray, start: int, counts: list[int], size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Give disjoint slices of a permutation to each kind: returns (kind code, variant, next start)."""
    kind = np.zeros(size, dtype=np.int8)
    variant = np.zeros(size, dtype=np.int32)
    for code, count in enumerate(counts, start=1):
        pos = order[start:start + count]
        if pos.size < count:
            raise ValueError("too few rows to plant every dirty kind; use more users")
        kind[pos] = code
        variant[pos] = np.arange(count, dtype=np.int32)
        start += count
    return kind, variant, start


def _draw_accounts(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    plan = rng.choice(len(v.PLANS), n, p=v.PLAN_WEIGHTS)
    median_employees = np.array([8.0, 25.0, 120.0, 1500.0])[plan]
    employees = np.maximum(1, np.rint(median_employees * rng.lognormal(0.0, 0.8, n))).astype(np.int32)
    seat_price = np.array(v.PLAN_SEAT_PRICE)[plan]
    # Not every employee is a paid seat: ARR is a share of the head count times the seat price.
    arr = np.round(employees * seat_price * 12 * rng.uniform(0.2, 0.9, n), 2)
    order = rng.permutation(n)
    counts = [dirty_count(k, "accounts", n) for k in ACCOUNT_KINDS]
    kind, variant, _ = _place(order, 0, counts, n)
    return {
        "acc_idx": np.arange(n, dtype=np.int64),
        "word": rng.integers(0, len(v.COMPANY_WORDS), n),
        "noun": rng.integers(0, len(v.COMPANY_NOUNS), n),
        "suffix": rng.integers(0, len(v.COMPANY_SUFFIXES), n),
        "tld": rng.integers(0, len(v.TLDS), n),
        "industry": rng.integers(0, len(v.INDUSTRIES), n),
        "plan": plan,
        "employees": employees,
        "arr": arr,
        "kind": kind,
        "variant": variant,
    }


def draw(users: int, seed: int) -> Draw:
    """Draw all random numbers of a warehouse with `users` users from `seed`."""
    if users < MIN_USERS:
        raise ValueError(f"users must be at least {MIN_USERS} so that every dirty kind fits")
    rng = np.random.default_rng(seed)
    n = users
    n_acc = max(12, round(n / USERS_PER_ACCOUNT))
    acc = _draw_accounts(rng, n_acc)

    # Users: how many accounts each belongs to, and which (the primary one first).
    n_links = rng.choice(4, n, p=[0.05, 0.85, 0.08, 0.02])
    primary = np.minimum(n_acc - 1, (n_acc * rng.random(n) ** 1.3).astype(np.int64))
    order = rng.permutation(n)
    # The first n_acc users of the permutation guarantee every account at least one member.
    primary[order[:n_acc]] = np.arange(n_acc)
    n_links[order[:n_acc]] = np.maximum(n_links[order[:n_acc]], 1)
    counts = [dirty_count(k, "users", n) for k in USER_KINDS]
    kind, variant, _ = _place(order, n_acc, counts, n)
    n_links[kind == user_code("special_char_id")] = np.maximum(n_links[kind == user_code("special_char_id")], 1)
    # Second and third accounts sit 1..half and 2..2*half places after the primary: always distinct.
    half = (n_acc - 1) // 2
    second = (primary + 1 + rng.integers(0, half, n)) % n_acc
    third = (second + 1 + rng.integers(0, half, n)) % n_acc

    has_acc = n_links > 0
    plan = np.where(has_acc, acc["plan"][primary], rng.choice(2, n, p=[0.9, 0.1]))
    seat_lo = np.array([1, 1, 3, 10])[plan]
    seat_hi = np.array([2, 6, 26, 251])[plan]
    seats = (seat_lo + rng.random(n) * (seat_hi - seat_lo)).astype(np.int32)
    discount = rng.choice(np.array([0.0, 0.1, 0.2]), n, p=[0.7, 0.2, 0.1])
    mrr = np.round(seats * np.array(v.PLAN_SEAT_PRICE)[plan] * (1 - discount), 2)
    # More sign-ups recently: the density of sign-up times grows linearly over the span.
    signup = START_S + ((END_S - START_S) * np.sqrt(rng.random(n))).astype(np.int64)
    updated = signup + (rng.random(n) * (END_S - signup)).astype(np.int64)
    last_seen = updated + (rng.random(n) * (END_S - updated)).astype(np.int64)
    no_id = np.isin(kind, [user_code(k) for k in NO_ID_KINDS])
    tz_kinds = np.isin(kind, [user_code("naive_timestamp_text"), user_code("offset_timestamp_text")])
    users_frame: dict[str, np.ndarray] = {
        "num": np.arange(1, n + 1, dtype=np.int64),
        "kind": kind,
        "variant": variant,
        "first": rng.integers(0, len(v.FIRST_NAMES), n),
        "last": rng.integers(0, len(v.LAST_NAMES), n),
        "work_email": has_acc & (rng.random(n) < 0.9),
        "personal_domain": rng.integers(0, len(v.PERSONAL_DOMAINS), n),
        "dom_word": acc["word"][primary],
        "dom_noun": acc["noun"][primary],
        "dom_tld": acc["tld"][primary],
        "plan": plan,
        "role": rng.choice(len(v.USER_ROLES), n, p=v.USER_ROLE_WEIGHTS),
        "locale": rng.choice(len(v.LOCALES), n, p=v.LOCALE_WEIGHTS),
        "signup_s": signup,
        "updated_s": updated,
        "last_seen_s": last_seen,
        "seen": rng.random(n) >= 0.05,
        # Tz-kind rows always carry a trial date, so the kind is visible in the data.
        "trial_null": (rng.random(n) < 0.3) & ~tz_kinds,
        "seats": seats,
        "mrr": mrr,
        "verified": rng.random(n) < 0.88,
        "bio": np.where(rng.random(n) < 0.45, rng.integers(0, len(v.BIOS), n), -1),
    }

    # Links user -> account (rank 0 is the primary), plus one orphan link per orphan_membership user.
    nums = users_frame["num"]
    orphan_users = np.flatnonzero(kind == user_code("orphan_membership"))
    n_orphan_acc = orphan_users.size
    link_num = np.concatenate([nums[n_links > 0], nums[n_links > 1], nums[n_links > 2], nums[orphan_users]])
    link_rank = np.concatenate([
        np.zeros((n_links > 0).sum(), np.int64), np.ones((n_links > 1).sum(), np.int64),
        np.full((n_links > 2).sum(), 2, np.int64), n_links[orphan_users].astype(np.int64),
    ])
    link_acc = np.concatenate([
        primary[n_links > 0], second[n_links > 1], third[n_links > 2],
        n_acc + np.arange(n_orphan_acc, dtype=np.int64),
    ])
    sort = np.lexsort((link_rank, link_num))
    link_num, link_rank, link_acc = link_num[sort], link_rank[sort], link_acc[sort]
    link_user = link_num - 1
    base = signup[link_user]
    # The primary membership starts at sign-up; later ones some time after.
    link_created = np.where(
        link_rank == 0,
        base + rng.integers(0, 600, link_num.size),
        base + (rng.random(link_num.size) * (END_S - base) * 0.5).astype(np.int64),
    )
    link_updated = link_created + (rng.random(link_num.size) * (END_S - link_created)).astype(np.int64)
    # The earliest member of an account owns it; a few others are admins.
    by_account = np.lexsort((link_num, link_created, link_acc))
    first_of_account = np.ones(by_account.size, dtype=bool)
    first_of_account[1:] = link_acc[by_account][1:] != link_acc[by_account][:-1]
    link_role = np.where(rng.random(link_num.size) < 0.15, 1, 2)
    link_role[by_account[first_of_account]] = 0
    users_frame["role"][link_user[link_role == 0]] = v.USER_ROLES.index("admin")

    # Accounts are created shortly before their first member joined.
    first_join = np.full(n_acc + n_orphan_acc, END_S, dtype=np.int64)
    np.minimum.at(first_join, link_acc, link_created)
    acc_created = first_join[:n_acc] - rng.integers(0, 14 * DAY_S, n_acc)
    acc["created_s"] = acc_created
    acc["updated_s"] = acc_created + (rng.random(n_acc) * (END_S - acc_created)).astype(np.int64)
    acc_kind_all = np.concatenate([acc["kind"], np.zeros(n_orphan_acc, np.int8)])
    acc_variant_all = np.concatenate([acc["variant"], np.zeros(n_orphan_acc, np.int32)])
    link_frame = pd.DataFrame({
        "num": link_num, "rank": link_rank, "acc_idx": link_acc,
        "acc_kind": acc_kind_all[link_acc], "acc_variant": acc_variant_all[link_acc],
        "user_kind": kind[link_user], "user_variant": variant[link_user],
        "has_id": ~no_id[link_user], "role": link_role,
        "created_s": link_created, "updated_s": link_updated,
    })

    event_frame, n_orphan_events = _draw_events(rng, users_frame, no_id, has_acc, primary, acc)
    user_frame = _with_duplicates(rng, users_frame)
    account_frame = _accounts_with_duplicates(rng, acc)
    return Draw(n, n_acc, n_orphan_acc, n_orphan_events, user_frame, account_frame, link_frame, event_frame)


def _with_duplicates(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """Append a second row for each duplicate_user_id user: same ID, other email, plan, updated_at."""
    src = np.flatnonzero(cols["kind"] == user_code("duplicate_user_id"))
    out = {k: np.concatenate([a, a[src]]) for k, a in cols.items()}
    n, d = cols["kind"].size, src.size
    out["kind"][:n][src] = 0  # the original row is clean; the appended one is the planted row
    tail = slice(n, n + d)
    out["plan"][tail] = (cols["plan"][src] + 1) % len(v.PLANS)
    out["mrr"][tail] = np.round(cols["seats"][src] * np.array(v.PLAN_SEAT_PRICE)[out["plan"][tail]], 2)
    out["work_email"][tail] = False
    out["personal_domain"][tail] = (cols["personal_domain"][src] + 1) % len(v.PERSONAL_DOMAINS)
    out["updated_s"][tail] = cols["updated_s"][src] + rng.integers(3600, 30 * DAY_S, d)
    out["row_idx"] = np.arange(n + d, dtype=np.int64)
    return pd.DataFrame(out)


def _accounts_with_duplicates(rng: np.random.Generator, acc: dict[str, np.ndarray]) -> pd.DataFrame:
    """Append a second row for each duplicate_account_id account: same ID, other name, plan, arr."""
    src = np.flatnonzero(acc["kind"] == account_code("duplicate_account_id"))
    out = {k: np.concatenate([a, a[src]]) for k, a in acc.items()}
    n, d = acc["kind"].size, src.size
    out["kind"][:n][src] = 0
    tail = slice(n, n + d)
    out["suffix"][tail] = (acc["suffix"][src] + 1) % len(v.COMPANY_SUFFIXES)
    out["plan"][tail] = (acc["plan"][src] + 1) % len(v.PLANS)
    out["arr"][tail] = np.round(acc["arr"][src] * 1.25 + 1200.0, 2)
    out["updated_s"][tail] = acc["updated_s"][src] + rng.integers(3600, 30 * DAY_S, d)
    out["row_idx"] = np.arange(n + d, dtype=np.int64)
    return pd.DataFrame(out)


def _draw_events(
    rng: np.random.Generator,
    users: dict[str, np.ndarray],
    no_id: np.ndarray,
    has_acc: np.ndarray,
    primary: np.ndarray,
    acc: dict[str, np.ndarray],
) -> tuple[pd.DataFrame, int]:
    """About two events per user: "Signed Up" at sign-up, then a Poisson number of others."""
    who = np.flatnonzero(~no_id)
    per_user = 1 + rng.poisson(1.0, who.size)
    user = np.repeat(who, per_user)
    total = user.size
    starts = np.repeat(np.cumsum(per_user) - per_user, per_user)
    seq = np.arange(total) - starts
    weights = np.array(v.EVENT_WEIGHTS[1:]) / sum(v.EVENT_WEIGHTS[1:])
    canon = np.where(seq == 0, 0, 1 + rng.choice(len(weights), total, p=weights))
    signup = users["signup_s"][user]
    at = np.where(seq == 0, signup, signup + (rng.random(total) * (END_S - signup)).astype(np.int64))
    # Stored in time order, so event IDs grow with occurred_at like a real event log.
    order = np.lexsort((seq, user, at))
    user, seq, canon, at = user[order], seq[order], canon[order], at[order]
    kind = np.zeros(total, dtype=np.int8)
    variant = np.zeros(total, dtype=np.int32)
    later = np.flatnonzero(seq > 0)
    n_orphan = dirty_count("orphan_event", "events", total)
    n_variant = dirty_count("event_name_variant", "events", total)
    if later.size < n_orphan + n_variant:
        raise ValueError("too few events to plant every dirty kind; use more users")
    picked = rng.permutation(later)[: n_orphan + n_variant]
    kind[picked[:n_orphan]] = event_code("orphan_event")
    variant[picked[:n_orphan]] = np.arange(n_orphan)
    spelled = picked[n_orphan:]
    kind[spelled] = event_code("event_name_variant")
    # The first two variants are always feature_activated and Feature Activated (the classic trap).
    canon[spelled[:2]] = v.EVENT_NAMES.index("Feature_Activated")
    variant[spelled] = rng.integers(0, 5, spelled.size)
    variant[spelled[:2]] = [0, 1]
    frame = pd.DataFrame({
        "e_idx": np.arange(total, dtype=np.int64),
        "num": users["num"][user],
        "user_kind": users["kind"][user],
        "user_variant": users["variant"][user],
        "acc_idx": np.where(has_acc[user], primary[user], -1),
        "acc_kind": np.where(has_acc[user], acc["kind"][primary[user]], 0),
        "acc_variant": np.where(has_acc[user], acc["variant"][primary[user]], 0),
        "plan": users["plan"][user],
        "canon": canon,
        "kind": kind,
        "variant": variant,
        "at_s": at,
        "r1": rng.integers(0, 1_000_000, total),
        "r2": rng.integers(0, 1_000_000, total),
    })
    return frame, n_orphan
