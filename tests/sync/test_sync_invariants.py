"""DESIGN.md invariants 1-4 and the sync's promises, against the emulator through Dagster."""

import json
from dataclasses import astuple

import duckdb
import pytest
from harness import metadata
from sync_harness import KEY, SyncHarness, user_rows

from userflow_assets.client.ratelimit import (
    AdaptiveRateLimiter,
    forget_shared_limiters,
    shared_limiter,
)
from userflow_assets.redaction import fingerprint


def test_first_sync_writes_users_groups_and_memberships(harness: SyncHarness) -> None:
    result = harness.run()
    assert result.success
    users = harness.users()
    assert len(users) == 100
    assert users["u007"]["attributes"] == {"email": "user7@example.com", "name": "User 7", "plan": "pro", "seats": 7}
    assert {g["id"] for g in harness.emulator("state")["groups"]} == {f"a{i}" for i in range(5)}
    assert harness.memberships() == {(f"u{i:03d}", f"a{i % 5}") for i in range(100)}
    meta = metadata(result, "userflow_users")
    assert (meta["created"], meta["updated"], meta["failed"]) == (100, 0, 0)
    # One request per user: its groups travel inside the user's own upsert.
    assert harness.emulator("requests")["by_endpoint"]["POST /users"] == {"200": 100}
    assert harness.state("SELECT count(*) FROM sync.records WHERE object_type = 'user'") == [(100,)]


def test_rerun_without_changes_sends_nothing(harness: SyncHarness) -> None:
    harness.run()
    before = harness.requests_total()
    result = harness.run(sink={"full_resync": False})
    assert harness.requests_total() == before
    meta = metadata(result, "userflow_users")
    assert (meta["created"], meta["updated"]) == (0, 0)


def test_rerun_after_full_refresh_read_sends_nothing(harness: SyncHarness) -> None:
    # Every row read again (not just changed ones), and still nothing differs from the state.
    harness.run()
    before = harness.requests_total()
    result = harness.run(read={"full_refresh": True})
    assert metadata(result, "warehouse_users")["dagster/row_count"] == 100
    assert harness.requests_total() == before


def test_changed_rows_send_exactly_those(harness: SyncHarness) -> None:
    harness.run()
    # 1% of the users change; a touched row whose data did not change is read but not sent.
    harness.sql("UPDATE users SET plan = 'enterprise', updated_at = now() WHERE user_id = 'u010'")
    harness.sql("UPDATE users SET updated_at = now() WHERE user_id = 'u020'")
    before = harness.emulator("requests")["by_endpoint"]["POST /users"]["200"]
    result = harness.run()
    assert harness.emulator("requests")["by_endpoint"]["POST /users"]["200"] - before == 1
    assert harness.users()["u010"]["attributes"]["plan"] == "enterprise"
    meta = metadata(result, "userflow_users")
    assert (meta["updated"], meta["unchanged"]) == (1, 1)
    # The incremental read saw only the touched rows.
    assert metadata(result, "warehouse_users")["dagster/row_count"] == 2


def test_nulled_column_is_cleared_once(harness: SyncHarness) -> None:
    harness.run()
    harness.sql("UPDATE users SET plan = NULL, updated_at = now() WHERE user_id = 'u003'")
    harness.run()
    assert "plan" not in harness.users()["u003"]["attributes"]
    log = harness.emulator("requests?limit=1000")["log"]
    writes = [e for e in log if e.get("id") == "u003" and e["method"] == "POST"]
    assert len(writes) == 2  # created, then the null sent
    before = harness.requests_total()
    harness.sql("UPDATE users SET updated_at = now() WHERE user_id = 'u003'")
    harness.run()
    assert harness.requests_total() == before, "the null was sent once, not on every run"


def test_nulls_keep_leaves_the_attribute(harness: SyncHarness) -> None:
    harness.run(harness.spec(nulls="keep"))
    harness.sql("UPDATE users SET plan = NULL, updated_at = now() WHERE user_id = 'u003'")
    harness.run(harness.spec(nulls="keep"))
    assert harness.users()["u003"]["attributes"]["plan"] == "pro"


def test_attribute_removed_from_mapping_is_cleared(harness: SyncHarness) -> None:
    harness.run()
    spec = harness.spec(mapping={"email": "email", "name": "name", "plan": "plan"})
    result = harness.run(spec, sink={"full_resync": False})
    assert metadata(result, "userflow_users")["updated"] == 100
    assert "seats" not in harness.users()["u050"]["attributes"]


def test_failed_record_is_not_marked_synced_and_is_retried(harness: SyncHarness) -> None:
    # Invariants 1, 2 and 4: one user upsert answered 500 (with no retry left) fails alone.
    harness.post("faults", {"next": ["500"], "path_prefix": "/users"})
    result = harness.run(max_attempts=1)
    assert result.success, "one failing record must not fail the run"
    meta = metadata(result, "userflow_users")
    assert meta["failed"] == 1 and meta["created"] == 99
    failed = harness.state("SELECT id, status, attempts FROM sync.failures WHERE object_type = 'user'")
    assert len(failed) == 1 and failed[0][1] == 500 and failed[0][2] == 1
    failed_id = failed[0][0]
    assert failed_id not in harness.users()
    assert harness.state("SELECT count(*) FROM sync.records WHERE id = ?", [failed_id]) == [(0,)]
    # The cursor moved past it (it is recorded as failed); the next run retries it anyway.
    result = harness.run()
    assert metadata(result, "warehouse_users")["dagster/row_count"] == 0
    assert metadata(result, "userflow_users")["updated"] == 1
    assert failed_id in harness.users()
    assert harness.state("SELECT count(*) FROM sync.failures") == [(0,)]


def test_bad_rows_are_rejected_and_the_rest_sync(harness: SyncHarness) -> None:
    harness.sql(
        "INSERT INTO users VALUES (NULL, 'x@example.com', 'No id', 'free', 1, now(), []),"
        " ('u001', 'dup@example.com', 'Dup', 'free', 1, now(), [])"
    )
    result = harness.run()
    assert result.success
    meta = metadata(result, "userflow_user_records")
    assert meta["rejected"] == 3  # the id-less row, and both rows of the conflicting u001
    users = harness.users()
    assert len(users) == 99 and "u001" not in users
    reasons = harness.state("SELECT reason FROM transform.user_rejected ORDER BY source_row")
    assert any("missing id" in r[0] for r in reasons)
    assert any("duplicate id" in r[0] for r in reasons)


def test_dry_run_sends_nothing_and_shows_the_plan(harness: SyncHarness) -> None:
    result = harness.run(sink={"dry_run": True})
    assert harness.requests_total() == 0
    meta = metadata(result, "userflow_users")
    assert meta["plan_create"] == 100 and meta["dry_run"] is True
    assert "| create | u000 |" in meta["plan_preview"]
    observations = result.asset_observations_for_node("userflow_users")
    assert observations and observations[0].metadata["plan_create"].value == 100
    assert harness.state("SELECT count(*) FROM sync.records") == [(0,)]


def test_pruning_off_keeps_and_on_removes_a_dropped_membership(harness: SyncHarness) -> None:
    harness.run()
    harness.sql("UPDATE users SET memberships = [], updated_at = now() WHERE user_id = 'u001'")
    harness.run()
    assert ("u001", "a1") in harness.memberships(), "pruning is off by default"
    harness.sql("UPDATE users SET updated_at = now() WHERE user_id = 'u001'")
    harness.run(sink={"prune_memberships": True, "full_resync": True})
    assert ("u001", "a1") not in harness.memberships()
    assert "a1" in {g["id"] for g in harness.emulator("state")["groups"]}, "the group itself stays"
    assert ("u006", "a1") in harness.memberships(), "other users' memberships stay"


def test_update_mode_creates_nothing(harness: SyncHarness) -> None:
    harness.sql("DELETE FROM users WHERE user_id >= 'u010'")
    harness.run()
    # Twenty users now, ten of them unknown to Userflow; a fresh state file, so update mode
    # has to ask Userflow which ones exist.
    harness.sql("DELETE FROM users")
    rows = [(*r[:3], "enterprise", r[4], "2026-06-01", r[6]) for r in user_rows(20)]
    with duckdb.connect(str(harness.warehouse)) as con:
        con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    harness.state_db.unlink()
    result = harness.run(harness.spec(mode="update"))
    meta = metadata(result, "userflow_users")
    assert (meta["skipped"], meta["created"] + meta["updated"]) == (10, 10)
    users = harness.users()
    assert len(users) == 10 and all(u["attributes"]["plan"] == "enterprise" for u in users.values())


def test_memberships_with_group_attributes_cost_one_request(harness: SyncHarness) -> None:
    harness.spec_overrides = {"groups": None}  # no groups sink: the users carry everything
    memberships = {
        "column": "memberships",
        "group_id_field": "account_id",
        "attributes": {"role": "role"},
        "group_attributes": {"name": "account_name"},
    }
    harness.run(harness.spec(memberships=memberships))
    writes = {k: v for k, v in harness.emulator("requests")["by_endpoint"].items() if not k.startswith("GET")}
    assert writes == {"POST /users": {"200": 100}}
    state = harness.emulator("state")
    assert {g["id"]: g["attributes"]["name"] for g in state["groups"]}["a3"] == "Account 3"
    membership = next(m for m in state["memberships"] if m["user_id"] == "u008")
    assert membership["attributes"] == {"role": "member"}


def test_fallback_id_switches_to_primary_once(harness: SyncHarness) -> None:
    harness.sql(
        "INSERT INTO users VALUES (NULL, 'late@example.com', 'Late Comer', 'free', 3, '2026-01-01', "
        "[{'account_id': 'a1', 'role': 'member', 'account_name': 'Account 1'}])"
    )
    spec = harness.spec(fallback_id_column="email")
    harness.run(spec)
    assert harness.users()["late@example.com"]["attributes"]["name"] == "Late Comer"
    harness.sql("UPDATE users SET user_id = 'u900', updated_at = now() WHERE email = 'late@example.com'")
    result = harness.run(spec)
    users = harness.users()
    assert "late@example.com" not in users
    assert users["u900"]["attributes"]["name"] == "Late Comer"
    assert ("u900", "a1") in harness.memberships()
    assert metadata(result, "userflow_users")["migrated"] == 1
    assert harness.state("SELECT fallback_id, primary_id, decision FROM sync.links") == [
        ("late@example.com", "u900", "migrate")
    ]
    before = harness.requests_total()
    harness.sql("UPDATE users SET updated_at = now() WHERE user_id = 'u900'")
    harness.run(spec)
    assert harness.requests_total() == before, "the switch happens once"


@pytest.mark.slow  # 10 s on a busy machine: scheduled first
def test_fallback_id_kept_beside_the_primary_with_on_primary_id_keep(harness: SyncHarness) -> None:
    harness.sql(
        "INSERT INTO users VALUES (NULL, 'late@example.com', 'Late Comer', 'free', 3, '2026-01-01', "
        "[{'account_id': 'a1', 'role': 'member', 'account_name': 'Account 1'}])"
    )
    spec = harness.spec(fallback_id_column="email", on_primary_id="keep", deletes="delete")
    harness.run(spec)
    harness.sql("UPDATE users SET user_id = 'u900', updated_at = now() WHERE email = 'late@example.com'")
    result = harness.run(spec)
    users = harness.users()
    assert users["late@example.com"]["attributes"]["name"] == "Late Comer", "the fallback-ID user stays"
    assert users["u900"]["attributes"]["name"] == "Late Comer"
    assert {("u900", "a1"), ("late@example.com", "a1")} <= harness.memberships()
    assert "DELETE /users/{id}" not in harness.emulator("requests")["by_endpoint"]
    assert metadata(result, "userflow_users")["migrated"] == 1
    assert harness.state("SELECT fallback_id, primary_id, decision FROM sync.links") == [
        ("late@example.com", "u900", "keep")
    ]
    # Both stay synced records: the twin is not forgotten, so nothing plans to create it again.
    assert harness.state(
        "SELECT id, primary_id, fallback_id FROM sync.records WHERE id IN ('u900', 'late@example.com') ORDER BY id"
    ) == [("late@example.com", None, "late@example.com"), ("u900", "u900", "late@example.com")]
    before = harness.requests_total()
    harness.sql("UPDATE users SET updated_at = now() WHERE user_id = 'u900'")
    again = harness.run(spec)
    assert metadata(again, "userflow_users")["plan_migrate"] == 0
    assert metadata(again, "userflow_users")["plan_fallback_switches"] == 0
    assert harness.requests_total() == before, "the decision is made once"
    # A full read sees the email only as u900's fallback ID: the kept user is not deleted either.
    full = harness.run(spec, read={"full_refresh": True})
    assert metadata(full, "userflow_users")["deleted"] == 0
    assert harness.requests_total() == before
    assert {"late@example.com", "u900"} <= set(harness.users())


def test_wrong_key_stops_the_run_and_marks_nothing(harness: SyncHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERFLOW_API_KEY", "uf_wrong_key_123456")
    result = harness.run(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    message = "".join(e.message for e in (error, error.cause) if e) if error else ""
    assert "refused the API key" in message
    assert "uf_wrong_key_123456" not in message
    # The cause and the fix lead: the variable to set, where the key was sent, which key; no record.
    assert f"Userflow at {harness.url} refused the API key {fingerprint('uf_wrong_key_123456')}" in message
    assert "Set USERFLOW_API_KEY to a key of this Userflow environment" in message
    assert "(record" not in message
    assert harness.state("SELECT count(*) FROM sync.records") == [(0,)]
    assert harness.state("SELECT count(*) FROM sync.cursors") == [(0,)]


# IDs and values that break naive quoting, escaping, encoding or normalisation; each must
# arrive in the plan, the state and Userflow exactly as the warehouse holds it.
AWKWARD_USERS = {
    "Zoë 用户": "plain non-ASCII",
    "e\u0301": "NFD é, a different ID from the NFC one",
    "\u00e9": "NFC é",
    "🚀👩\u200d👩\u200d👧🏽": "emoji, ZWJ sequence and a skin tone",
    'say "hi"': 'quotes "double" and \'single\'',
    "back\\slash\\": "C:\\path\\to\\file and a trailing \\",
    "json\\u0041": "\\u0041 is text here, not an escape; \\n neither",
    "sep\u2028par\u2029": "line and paragraph separators\u2028\u2029inside",
    "\u202eevil": "right-to-left override \u202e and zero width \u200b space",
    "x" * 1000: "the longest ID allowed",
}
CONTROL_VALUE = "tab\tnewline\ncr\rnul\x00bell\x07esc\x1bdel\x7fc1\x85"
LONG_VALUE = "".join(chr(c) for c in range(0x20, 0x3000) if not 0x7F <= c <= 0x9F and not 0xD800 <= c <= 0xDFFF) * 4


def test_plan_and_state_are_json_safe(harness: SyncHarness) -> None:
    rows = [
        (user_id, f"{i}@example.com", name, CONTROL_VALUE if i % 2 else LONG_VALUE, i, "2026-01-01",
         [{"account_id": f"a{i % 5}", "role": "member", "account_name": "x"}])
        for i, (user_id, name) in enumerate(AWKWARD_USERS.items())
    ]
    with duckdb.connect(str(harness.warehouse)) as con:
        con.execute("DELETE FROM users")
        con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    expected = {
        user_id: {"email": email, "name": name, "plan": plan, "seats": seats}
        for user_id, email, name, plan, seats, _, _ in rows
    }
    result = harness.run()
    assert metadata(result, "userflow_users")["created"] == len(AWKWARD_USERS)
    assert metadata(result, "userflow_user_records")["rejected"] == 0
    # The plan (as read back from its table) and the state hold the exact text.
    planned = dict(harness.state("SELECT id, attributes FROM plan.user_plan WHERE action = 'create'"))
    assert {k: json.loads(v) for k, v in planned.items()} == expected
    synced = dict(harness.state("SELECT id, attributes FROM sync.records WHERE object_type = 'user'"))
    assert {k: json.loads(v) for k, v in synced.items()} == expected
    # Userflow got exactly those IDs and values, and the memberships of exactly those IDs.
    assert {k: v["attributes"] for k, v in harness.users().items()} == expected
    assert harness.memberships() == {(user_id, f"a{i % 5}") for i, user_id in enumerate(AWKWARD_USERS)}
    # Their hashes are stable: a full read of the same rows sends nothing.
    before = harness.requests_total()
    again = harness.run(read={"full_refresh": True})
    assert metadata(again, "userflow_users")["unchanged"] == len(AWKWARD_USERS)
    assert harness.requests_total() == before


def test_read_back_reads_one_percent_of_what_the_run_wrote(harness: SyncHarness) -> None:
    def sampled(result) -> dict[str, int]:  # type: ignore[no-untyped-def]
        return {
            e.asset_key.to_user_string(): e.metadata["sampled"].value  # type: ignore[union-attr]
            for e in result.get_asset_check_evaluations()
            if e.check_name == "read_back"
        }

    first = harness.run()
    assert sampled(first) == {"userflow_users": 1, "userflow_groups": 1}  # 100 users, 5 groups written
    assert harness.emulator("requests")["by_endpoint"]["GET /users/{id}"] == {"200": 1}
    harness.sql("UPDATE users SET plan = 'enterprise', updated_at = now() WHERE user_id = 'u010'")
    before = harness.requests_total()
    again = harness.run()
    assert sampled(again) == {"userflow_users": 1, "userflow_groups": 0}
    assert harness.requests_total() - before == 2  # the one change and the one read of it


def limiter_of(harness: SyncHarness) -> AdaptiveRateLimiter:
    """The process-wide limiter the harness's runs used (one per base URL and key)."""
    return shared_limiter(harness.url, fingerprint(KEY))


def test_what_a_run_learned_of_the_rate_limits_is_kept(harness: SyncHarness) -> None:
    harness.post("config", {"rate_limit_requests": 20, "rate_limit_window_s": 1.0})  # 1,200/min, not told
    harness.run()
    learned = limiter_of(harness).learned()
    rows = harness.state("SELECT target, ceiling_per_minute, quota_per_window, noise_share FROM sync.rate_limits")
    # Whether this machine was fast enough to meet the limit is not the point: what was learned is kept.
    target = f"{harness.url} {fingerprint(KEY)}"
    assert rows == ([] if learned is None else [(target, *astuple(learned))])
    assert KEY not in target  # a fingerprint, never the key


@pytest.mark.slow  # 11 s on a busy machine: scheduled first (tests/conftest.py)
def test_the_next_run_starts_from_the_kept_rate_limits(harness: SyncHarness) -> None:
    harness.run()  # creates the state; the emulator sets no limit
    target = f"{harness.url} {fingerprint(KEY)}"
    harness.state("DELETE FROM sync.rate_limits")
    harness.state("INSERT INTO sync.rate_limits VALUES (?, 1234.0, NULL, 0.0, now())", [target])
    forget_shared_limiters()  # the next run starts as a fresh process would
    before = harness.requests_total()
    harness.run(read={"full_refresh": True}, sink={"full_resync": True})
    assert harness.requests_total() - before >= 100  # it sent, under the resumed limiter
    snapshot = limiter_of(harness).snapshot()
    assert snapshot.ceiling_per_minute == pytest.approx(1234.0)
    assert snapshot.rate_per_minute <= 1234.0  # resumed under the kept ceiling, not from 500/min and up
    assert harness.state("SELECT ceiling_per_minute FROM sync.rate_limits WHERE target = ?", [target]) == [(1234.0,)]

def test_every_sink_shows_the_rate_its_client_held(harness: SyncHarness) -> None:
    result = harness.run()
    for sink in ("userflow_groups", "userflow_users"):
        meta = metadata(result, sink)
        # A gauge shown as it is (not as a difference from the step before), in every sink.
        assert meta["userflow_rate_per_minute"] > 0, sink
        assert meta["userflow_concurrency_cap"] >= 1, sink


def test_the_sinks_metadata_keys_are_the_same_in_every_run(harness: SyncHarness) -> None:
    first, second = harness.run(), harness.run()  # the second sends nothing
    keys = [set(metadata(result, "userflow_users")) for result in (first, second)]
    assert keys[0] == keys[1]
    assert {"userflow_status_200", "userflow_status_429", "plan_fallback_switches"} <= keys[1]
    assert metadata(second, "userflow_users")["userflow_status_200"] == 0


def test_a_failed_fallback_id_create_is_not_retried_once_the_primary_id_is_known(harness: SyncHarness) -> None:
    spec = harness.spec(fallback_id_column="email")
    harness.run(spec)
    harness.sql(
        "INSERT INTO users VALUES (NULL, 'late@example.com', 'Late Comer', 'free', 3, now(), "
        "[{'account_id': 'a1', 'role': 'member', 'account_name': 'Account 1'}])"
    )
    harness.post("faults", {"next": ["500"], "path_prefix": "/users", "method": "POST"})
    harness.run(spec, max_attempts=1)  # the only user sent, late@example.com, fails
    assert harness.state("SELECT id FROM sync.failures") == [("late@example.com",)]
    harness.sql("UPDATE users SET user_id = 'u900', updated_at = now() WHERE email = 'late@example.com'")
    result = harness.run(spec)
    users = harness.users()
    assert users["u900"]["attributes"]["name"] == "Late Comer"
    assert "late@example.com" not in users, "a stale fallback-ID user beside u900"
    assert metadata(result, "userflow_users")["created"] == 1
    # The failed twin is settled: nothing waits to be retried, and the switch is recorded once.
    assert harness.state("SELECT count(*) FROM sync.failures") == [(0,)]
    assert harness.state("SELECT fallback_id, primary_id FROM sync.links") == [("late@example.com", "u900")]
    before = harness.requests_total()
    harness.run(spec)
    assert harness.requests_total() == before
