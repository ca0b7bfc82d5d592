"""Name hygiene: near-duplicate event and attribute names, alone and on the sample warehouse."""

from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml
from events_harness import KEY, EventsHarness
from harness import metadata

from userflow_assets.events.names import NamedIn, near_duplicates, normalise
from userflow_assets.sample import generate_warehouse
from userflow_assets.spec import SyncSpec

REPO = Path(__file__).resolve().parents[2]
SECTION = Path(__file__).with_name("events_sample_section.yaml")


@pytest.mark.parametrize(
    ("name", "normal"),
    [("Feature_Activated", "featureactivated"), ("Feature Activated", "featureactivated"),
     ("feature-activated", "featureactivated"), ("signed.up", "signedup"), ("Signed Up", "signedup")],
)
def test_normal_form_drops_case_and_separators(name: str, normal: str) -> None:
    assert normalise(name) == normal


def test_pairs_name_both_sides_and_ignore_pairs_that_are_only_theirs() -> None:
    ours = [NamedIn("Feature_Activated", "warehouse"), NamedIn("feature_activated", "warehouse"), NamedIn("Logged In", "warehouse")]
    theirs = [NamedIn("logged_in", "Userflow"), NamedIn("Old Name", "Userflow"), NamedIn("old_name", "Userflow")]
    described = [p.describe() for p in near_duplicates("event", ours, theirs)]
    assert described == [
        "event names 'Feature_Activated' (warehouse) and 'feature_activated' (warehouse) differ only in case or separators",
        "event names 'Logged In' (warehouse) and 'logged_in' (Userflow) differ only in case or separators",
    ]
    # The same exact name on both sides is one name, not a pair.
    assert near_duplicates("event", [NamedIn("Signed Up", "warehouse")], [NamedIn("Signed Up", "Userflow")]) == []


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_event_names_check_warns_on_the_sample_warehouse(events_harness: EventsHarness) -> None:
    h = events_harness
    generate_warehouse(h.warehouse, users=100, seed=7)
    # Userflow already knows an event and a user attribute spelled differently.
    headers = {"Authorization": f"Bearer {KEY}", "Userflow-Version": "2020-01-03"}
    httpx.post(f"{h.url}/events", json={"name": "logged_in", "user_id": "x"}, headers=headers).raise_for_status()
    httpx.post(f"{h.url}/users", json={"id": "x", "attributes": {"signedUpAt": "2026-01-01T00:00:00Z"}}, headers=headers).raise_for_status()
    spec = SyncSpec.model_validate(
        {
            "warehouse": {"database": str(h.warehouse), "sql_dir": str(REPO / "sql")},
            "state_database": str(h.state_db),
            "userflow": {"base_url": h.url},
            "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "lower(email)", "signed_up_at": "signed_up_at"}},
            **yaml.safe_load(SECTION.read_text()),
        }
    )
    result = h.run(spec, selection=["warehouse_events", "userflow_event_records"])
    records = metadata(result, "userflow_event_records")
    assert (records["source_rows"], records["rejected"]) == (records["dagster/row_count"], 0)
    check = _check(result, "event_names")
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    description = check.description or ""
    # Four spellings of Feature_Activated make six pairs; one event and one attribute clash with Userflow.
    assert description.startswith("8 near-duplicate name pairs: ")
    for pair in [
        "event names 'Feature Activated' (warehouse) and 'Feature_Activated' (warehouse)",
        "event names 'Feature_Activated' (warehouse) and 'feature_activated' (warehouse)",
        "event names 'Logged In' (warehouse) and 'logged_in' (Userflow event definition)",
        "user attribute names 'signed_up_at' (users mapping) and 'signedUpAt' (Userflow attribute definition)",
    ]:
        assert pair in description
    assert _check(result, "rejected_share").passed
