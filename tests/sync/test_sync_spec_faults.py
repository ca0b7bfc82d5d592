"""A bad spec fails at load, or before the first request, with a message naming the fault."""

import pydantic
import pytest
from harness import failure_message
from sync_harness import SyncHarness


def test_unknown_operator_fails_at_load(harness: SyncHarness) -> None:
    with pytest.raises(pydantic.ValidationError, match="is roughly"):
        harness.spec(filter={"conditions": [{"column": "plan", "operator": "is roughly", "values": ["pro"]}]})


@pytest.mark.parametrize(
    ("users", "fault"),
    [
        ({"mapping": {"email": "emial"}}, "users.mapping.email"),
        ({"mapping": {"email": "lower(email"}}, "users.mapping.email"),
        ({"filter": {"conditions": [{"column": "plann", "operator": "is", "values": ["pro"]}]}}, "plann"),
        ({"query": "missing.sql"}, "missing.sql"),
    ],
    ids=["unknown-column", "bad-expression", "unknown-filter-column", "missing-query-file"],
)
def test_spec_fault_stops_before_any_request(harness: SyncHarness, users: dict, fault: str) -> None:
    result = harness.run(harness.spec(**users), raise_on_error=False)
    assert not result.success
    assert fault in failure_message(result)
    # Groups have a valid spec of their own and may be written; no user request goes out.
    assert "POST /users" not in harness.emulator("requests")["by_endpoint"]


def test_misspelled_cursor_parameter_is_named(harness: SyncHarness) -> None:
    (harness.root / "sql" / "users.sql").write_text("SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTMP")
    result = harness.run(raise_on_error=False)
    assert "unknown parameter $LAST_SYNC_TIMESTMP" in failure_message(result)
    assert "POST /users" not in harness.emulator("requests")["by_endpoint"]
