"""Deletes mirror removals only when enabled, only after a full read, and never past a guard."""

from harness import failure_message, metadata
from sync_harness import SyncHarness

FULL_READ = {"full_refresh": True}


def test_deletes_are_off_by_default(harness: SyncHarness) -> None:
    harness.run()
    harness.sql("DELETE FROM users WHERE user_id IN ('u001', 'u002')")
    harness.run(read=FULL_READ)
    assert {"u001", "u002"} <= set(harness.users())


def test_users_that_left_the_query_are_deleted_after_a_full_read(harness: SyncHarness) -> None:
    spec = harness.spec(deletes="delete")
    harness.run(spec)
    harness.sql("DELETE FROM users WHERE user_id IN ('u001', 'u002')")
    harness.run(spec)  # incremental: an absence cannot be seen
    assert {"u001", "u002"} <= set(harness.users())
    result = harness.run(spec, read=FULL_READ)
    assert metadata(result, "userflow_users")["deleted"] == 2
    users = harness.users()
    assert "u001" not in users and "u002" not in users and len(users) == 98
    assert harness.state("SELECT count(*) FROM sync.records WHERE object_type = 'user'") == [(98,)]
    assert ("u001", "a1") not in harness.memberships()
    assert "a1" in {g["id"] for g in harness.emulator("state")["groups"]}, "the group stays"
    before = harness.requests_total()
    harness.run(spec, read=FULL_READ)
    assert harness.requests_total() == before, "a delete happens once"


def test_rejected_or_filtered_rows_are_not_deleted(harness: SyncHarness) -> None:
    spec = harness.spec(deletes="delete", filter={"conditions": [{"column": "plan", "operator": "is not null"}]})
    harness.run(spec)
    # u003 is now filtered out, u004 is now a bad row: neither left the query's result.
    harness.sql("UPDATE users SET plan = NULL, updated_at = now() WHERE user_id = 'u003'")
    harness.sql("INSERT INTO users SELECT * REPLACE ('other@example.com' AS email) FROM users WHERE user_id = 'u004'")
    result = harness.run(spec, read=FULL_READ)
    assert metadata(result, "userflow_users")["deleted"] == 0
    assert {"u003", "u004"} <= set(harness.users())


def test_too_many_deletes_stop_the_run_before_any_request(harness: SyncHarness) -> None:
    spec = harness.spec(deletes="delete")
    harness.run(spec)
    harness.sql("DELETE FROM users WHERE user_id < 'u010'")
    harness.sql("UPDATE users SET plan = 'enterprise', updated_at = now() WHERE user_id = 'u050'")
    before = user_requests(harness)
    result = harness.run(spec, read=FULL_READ, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "10 of 100 synced users (10.0%) left the query's result" in message
    assert "max_delete_fraction (5.0%)" in message
    assert user_requests(harness) == before, "no user request at all, not even the update"
    assert len(harness.users()) == 100
    assert harness.users()["u050"]["attributes"]["plan"] != "enterprise"


def user_requests(harness: SyncHarness) -> dict[str, dict[str, int]]:
    # Groups are a separate sink (deletes off); only user endpoints matter here.
    return {k: v for k, v in harness.emulator("requests")["by_endpoint"].items() if "/users" in k}


def test_an_empty_query_stops_the_run(harness: SyncHarness) -> None:
    spec = harness.spec(deletes="delete")
    harness.run(spec)
    harness.sql("DELETE FROM users")
    result = harness.run(spec, read=FULL_READ, raise_on_error=False)
    assert not result.success
    assert "The users query returned no rows while 100 users are synced" in failure_message(result)
    assert len(harness.users()) == 100


def test_remove_memberships_without_pruning(harness: SyncHarness) -> None:
    spec = harness.spec(remove_memberships=True)
    harness.run(spec)
    harness.sql(
        "UPDATE users SET memberships = [{'account_id': 'a2', 'role': 'member', 'account_name': 'Account 2'}], "
        "updated_at = now() WHERE user_id = 'u001'"
    )
    result = harness.run(spec)
    memberships = harness.memberships()
    assert ("u001", "a1") not in memberships and ("u001", "a2") in memberships
    assert metadata(result, "userflow_users")["memberships_removed"] == 1
    assert harness.emulator("requests")["by_endpoint"]["DELETE /group_memberships"] == {"200": 1}
    assert ("u006", "a1") in memberships
