"""userflow_drift: Userflow (through the mirror) against the sync state, after a real sync."""

import dagster as dg
import duckdb
import pytest
from harness import metadata
from mirror_harness import WAREHOUSE_DDL, MirrorHarness

DRIFT_ASSETS = ["mirror_users", "mirror_groups", "userflow_drift"]


def build_warehouse(mirror: MirrorHarness) -> None:
    with duckdb.connect(str(mirror.warehouse)) as con:
        con.execute(WAREHOUSE_DDL)
        con.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
            [(f"u{i:02d}", f"user{i}@example.com", f"User {i}", ["free", "pro"][i % 2], i, f"a{i % 2}") for i in range(10)],
        )
        con.executemany("INSERT INTO accounts VALUES (?, ?)", [("a0", "Account 0"), ("a1", "Account 1")])


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def drift_rows(mirror: MirrorHarness) -> list[tuple[object, ...]]:
    return mirror.sql(
        "SELECT object_type, id, kind, attribute, userflow_value::VARCHAR, synced_value::VARCHAR "
        "FROM userflow.drift WHERE kind = 'attribute_changed' ORDER BY ALL"
    )


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_drift_finds_changes_made_outside_the_sync(
    mirror: MirrorHarness, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        mirror.state_url = request.getfixturevalue("postgres_url")
    build_warehouse(mirror)
    assert mirror.sync().success

    # Straight after the sync, and again with nothing changed: no drift.
    for _ in range(2):
        clean = mirror.mirror(DRIFT_ASSETS)
        meta = metadata(clean, "userflow_drift")
        assert (meta["drift_total"], meta["compared"]) == (0, "group, user")
        assert check_result(clean).passed
    assert mirror.sql("SELECT count(*) FROM userflow.drift") == [(0,)]

    # Changes made directly in Userflow, not by the sync.
    mirror.api("POST", "/users", json={"id": "u03", "attributes": {"plan": "enterprise"}})
    mirror.api("POST", "/users", json={"id": "u06", "attributes": {"seats": None}})
    mirror.api("POST", "/users", json={"id": "u04", "attributes": {"nickname": "Four"}})  # not in the mapping
    mirror.api("POST", "/users", json={"id": "u07", "attributes": {"seats": 7.0}})  # the same number
    mirror.api("POST", "/users", json={"id": "stranger", "attributes": {"email": "s@example.com"}})
    mirror.api("DELETE", "/users/u05")
    mirror.api("POST", "/groups", json={"id": "a1", "attributes": {"name": "Renamed"}})

    result = mirror.mirror(DRIFT_ASSETS)
    meta = metadata(result, "userflow_drift")
    counts = {k: meta[k] for k in meta if k.endswith(("_users", "_groups"))}
    assert counts == {
        "attribute_changed_users": 2, "attribute_changed_groups": 1,
        "not_synced_users": 1, "not_synced_groups": 0,
        "missing_users": 1, "missing_groups": 0,
    }
    assert (meta["drift_total"], meta["records_changed"]) == (5, 3)
    assert drift_rows(mirror) == [
        ("group", "a1", "attribute_changed", "name", '"Renamed"', '"Account 1"'),
        ("user", "u03", "attribute_changed", "plan", '"enterprise"', '"pro"'),
        ("user", "u06", "attribute_changed", "seats", None, "6"),
    ]
    assert mirror.sql("SELECT object_type, id, kind FROM userflow.drift WHERE kind <> 'attribute_changed' ORDER BY ALL") == [
        ("user", "stranger", "not_synced"),
        ("user", "u05", "missing"),
    ]
    assert "| user | u03 | plan | \"enterprise\" | \"pro\" |" in meta["sample_attribute_changed"]
    assert "stranger" in meta["sample_not_synced"] and "u05" in meta["sample_missing"]
    evaluation = check_result(result)
    assert not evaluation.passed
    assert {k: v.value for k, v in evaluation.metadata.items()} == {"attribute_changed": 3, "not_synced": 1, "missing": 1}


def test_drift_without_a_sync_state_compares_nothing(mirror: MirrorHarness) -> None:
    mirror.api("POST", "/users", json={"id": "u1", "attributes": {"name": "Ann"}})
    result = mirror.mirror(DRIFT_ASSETS)
    meta = metadata(result, "userflow_drift")
    assert (meta["drift_total"], meta["compared"]) == (0, "none (the sync state holds no records)")
    assert check_result(result).passed
