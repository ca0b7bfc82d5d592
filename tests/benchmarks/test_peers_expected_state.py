"""The peer benchmark's warehouse and its "records correct" comparison (benchmarks/peers/dataset.py)."""

import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "peers"))

import dataset  # noqa: E402


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z", True),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05", True),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T05:04:05+02:00", True),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:06Z", False),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00", True),
        (15.0, 15, True),
        (15.0, 15.01, False),
        (1, True, False),
        (True, True, True),
        (None, None, True),
        (float("nan"), None, True),
        ("Acme", "acme", False),
    ],
)
def test_values_compare_by_meaning(expected, actual, same):
    assert dataset.same_value(expected, actual) is same


def test_null_equals_absent_and_extra_attributes_count_as_wrong():
    assert dataset.same_attributes({"a": 1, "b": None}, {"a": 1})
    assert not dataset.same_attributes({"a": 1}, {"a": 1, "stale": "x"})
    assert dataset.same_attributes({"a": 1}, {"a": 1, "cleared": None})


def test_a_user_counts_only_with_its_memberships_right():
    expected = dataset.Expected(
        users={"u1": {"plan": "pro"}, "u2": {"plan": "free"}},
        groups={"g1": {"name": "G"}},
        memberships={"u1": {"g1": {"role": "admin"}}, "u2": {"g1": {"role": "member"}}},
    )
    state = {
        "users": [{"id": "u1", "attributes": {"plan": "pro"}}, {"id": "u2", "attributes": {"plan": "free"}}],
        "groups": [{"id": "g1", "attributes": {"name": "G"}}],
        "memberships": [{"user_id": "u1", "group_id": "g1", "attributes": {"role": "admin"}},
                        {"user_id": "u2", "group_id": "g1", "attributes": {"role": "admin"}}],
    }
    verdict = dataset.compare(expected, state)
    assert (verdict.correct, verdict.expected, verdict.wrong_users, verdict.wrong_groups) == (2, 3, ["u2"], [])
    assert dataset.compare(expected, {"users": [], "groups": [], "memberships": []}).correct == 0


def test_benchmark_warehouse_is_clean_and_sized(tmp_path):
    path = tmp_path / "w.duckdb"
    counts = dataset.build_warehouse(path, users=300, groups=12)
    assert (counts["users"], counts["accounts"]) == (300, 12)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM users WHERE role = 'billing' OR NOT regexp_full_match(user_id, 'usr_[0-9]+')").fetchone()[0] == 0
        orphans = "SELECT count(*) FROM account_memberships WHERE account_id NOT IN (SELECT account_id FROM accounts)"
        assert con.execute(orphans).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM users WHERE trial_ends_at IS NOT NULL AND NOT ends_with(trial_ends_at, 'Z')").fetchone()[0] == 0
    before = dataset.expected_state(path)
    changed = dataset.change_users(path, 0.01)
    after = dataset.expected_state(path)
    assert changed == 3
    assert sum(before.users[u] != after.users[u] for u in before.users) == 3
