"""Where the rest is: rejected rows and failures shown up to 500, with the SQL that lists them all."""

import duckdb
from harness import metadata
from sync_harness import SyncHarness


def test_rejected_rows_are_shown_with_their_table_and_sql(harness: SyncHarness) -> None:
    harness.sql("UPDATE users SET user_id = NULL WHERE user_id IN ('u001', 'u002')")
    result = harness.run(spec=harness.spec(max_rejected_fraction=0.5))
    records = metadata(result, "userflow_user_records")
    assert records["rejected_table"] == "transform.user_rejected"
    preview = records["rejected_preview"]
    assert preview.count("missing") == 2 and "| row | source_key | column | reason | value |" in preview
    with duckdb.connect(str(harness.state_db), read_only=True) as con:
        assert len(con.execute(records["rejected_sql"]).fetchall()) == 2
        keys = [k for (k,) in con.execute(f"SELECT source_key FROM {records['rejected_table']} ORDER BY 1").fetchall()]
    # Without an ID, a row is shown by its columns, which find it in the warehouse.
    assert all(key.startswith("user_id=null, ") for key in keys) and all(key[:60] in preview for key in keys)
    emails = [part for key in keys for part in key.split(", ") if part.startswith("email=")]
    assert len(emails) == 2 and len(set(emails)) == 2
    users = metadata(result, "userflow_users")
    assert users["rejected"] == 2
    assert users["rejected_in"] == "userflow_user_records (transform.user_rejected)"
    assert users["in_sync_now"] == 98


def test_every_failure_is_listed_and_the_sql_finds_them_all(harness: SyncHarness) -> None:
    # More 500s queued than the users' attempts (two each): every user is recorded as failed.
    harness.post("faults", {"next": ["500"] * 250, "path_prefix": "/users", "method": "POST"})
    result = harness.run(raise_on_error=False)
    users = metadata(result, "userflow_users")
    assert (users["failed"], users["in_sync_now"]) == (100, 0)
    rows = users["failures"].splitlines()[2:]  # under the header and its rule
    assert len(rows) == 100 and all("| 500 | internal_error |" in row for row in rows)
    with duckdb.connect(str(harness.state_db), read_only=True) as con:
        assert len(con.execute(users["failures_sql"]).fetchall()) == 100
