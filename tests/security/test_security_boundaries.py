"""Boundaries: an ID stays in its path segment, values are bound (never pasted into SQL), and
plain http is refused off loopback unless explicitly allowed."""

from pathlib import Path

from collections.abc import Iterator

import dagster as dg
import duckdb
import pytest
from harness import Emulator, emulator_get, serve_emulator
from security_kit import make_spec, make_warehouse, run_sync

from userflow_assets.client import UserflowResource
from userflow_assets.client.client import check_base_url

KEY = "uf_security_boundaries_key"
# Each tricky ID next to the plain ID it could be confused with if it left its segment.
TRICKY = ["../x", "x", "a%2Fb", "a/b", "a", "b", "..", ".", "q?id=x", "h#x", "%2E%2E", "sp ace"]
GONE = ["../x", "a%2Fb", "..", "%2E%2E", "q?id=x"]


@pytest.fixture(scope="module")
def boundaries_emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as emulator:
        yield emulator


@pytest.fixture
def fresh(boundaries_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    boundaries_emulator.fresh(monkeypatch)
    return boundaries_emulator.url


def held_users(url: str) -> dict[str, dict]:
    return {u["id"]: u["attributes"] for u in emulator_get(url, "state")["users"]}


def test_ids_land_literally_and_deletes_hit_only_their_own(tmp_path: Path, fresh: str) -> None:
    make_warehouse(tmp_path, TRICKY)
    spec = make_spec(tmp_path, fresh, deletes="delete", max_delete_fraction=1.0)
    first = run_sync(spec)
    assert first.success
    assert set(held_users(fresh)) == set(TRICKY)
    # read_back GETs each synced user by its ID in the path: every one came back equal.
    checks = {
        (e.asset_check_evaluation_data.asset_key.to_user_string(), e.asset_check_evaluation_data.check_name): e
        for e in first.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks[("userflow_users", "read_back")].asset_check_evaluation_data.passed

    # The tricky IDs leave the warehouse: DELETE /users/{id} must remove exactly them.
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("DELETE FROM users WHERE user_id IN (SELECT unnest(?))", [GONE])
    second = run_sync(spec, read={"full_refresh": True})
    assert second.success
    assert set(held_users(fresh)) == set(TRICKY) - set(GONE)


def test_filter_values_and_the_cursor_are_bound(tmp_path: Path, fresh: str) -> None:
    injected = "x' OR 1=1; DROP TABLE users; --"
    cursor_text = "$LAST_SYNC_TIMESTAMP'; DROP TABLE users; --"
    make_warehouse(tmp_path, ["u1", "u2", "u3"], [injected, "plain", cursor_text])
    # The placeholder inside a string literal is text, not a parameter.
    (tmp_path / "sql" / "users.sql").write_text(
        "SELECT user_id, name, updated_at, '$LAST_SYNC_TIMESTAMP' AS literal FROM users "
        "WHERE updated_at > $LAST_SYNC_TIMESTAMP"
    )
    condition = {"column": "name", "operator": "is one of", "values": [injected, cursor_text]}
    spec = make_spec(
        tmp_path, fresh, filter={"conditions": [condition]}, mapping={"name": "name", "literal": "literal"}
    )
    assert run_sync(spec).success
    assert held_users(fresh) == {
        "u1": {"name": injected, "literal": "$LAST_SYNC_TIMESTAMP"},
        "u3": {"name": cursor_text, "literal": "$LAST_SYNC_TIMESTAMP"},
    }
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://api.userflow.com",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com",
        "http://[::ffff:8.8.8.8]",
    ],
)
def test_plain_http_off_loopback_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"^base_url must use https \(plain http is allowed only for loopback\)$"):
        check_base_url(url)
    assert check_base_url(url, allow_insecure_http=True) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://api.eu.userflow.com"]
)
def test_loopback_http_and_https_are_accepted(url: str) -> None:
    assert check_base_url(url) == url


def test_userinfo_cannot_smuggle_a_host() -> None:
    with pytest.raises(ValueError, match="must not carry credentials"):
        check_base_url("http://127.0.0.1@evil.example.com")


def test_run_against_plain_http_host_fails_before_any_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERFLOW_API_KEY", KEY)
    make_warehouse(tmp_path, ["u1"])
    url = "http://userflow.internal.example:8080"
    result = run_sync(make_spec(tmp_path, url))
    assert not result.success
    # The resource refuses at start-up, so no step that could send runs.
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    assert "plain http is allowed only for loopback" in "\n".join(repr(e) for e in result.all_events)


def test_resource_allows_plain_http_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://userflow.internal.example:8080"
    with (
        pytest.raises(dg.DagsterResourceFunctionError) as raised,
        dg.build_resources({"u": UserflowResource(api_key=KEY, base_url=url)}),
    ):
        pass
    assert "plain http is allowed only for loopback" in str(raised.value.__cause__)
    with dg.build_resources({"u": UserflowResource(api_key=KEY, base_url=url, allow_insecure_http=True)}) as res:
        assert res.u.base_url == url
