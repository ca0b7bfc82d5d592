"""The events sink against the emulator: each event sent once, across reruns and interruptions."""

import dataclasses

import pytest
from ports import refused_port
from events_harness import EventsHarness, event_rows
from harness import metadata

from userflow_assets.sink.run import DRY_RUN_LABEL


@pytest.mark.slow  # three runs
def test_events_sent_once_across_reruns(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(30))
    first = metadata(h.run(), "userflow_events")
    assert (first["sent"], first["already_sent"], first["waiting"], first["failed"]) == (30, 0, 0, 0)
    assert (first["possible_duplicates"], first["possible_losses"], first["requests"]) == (0, 0, 30)
    assert h.event_refs() == [f"evt_{i:04d}" for i in range(30)]
    assert h.event_posts() == 30

    second_run = h.run()
    second = metadata(second_run, "userflow_events")
    assert (second["sent"], second["already_sent"], second["requests"]) == (0, 0, 0)
    # Nothing new was read, yet the names sent earlier are still checked.
    (names,) = [e for e in second_run.get_asset_check_evaluations() if e.check_name == "event_names"]
    assert (names.passed, names.description) == (
        False,
        (
            "1 near-duplicate name pair: event names 'Feature_Activated' (warehouse) and 'feature activated' "
            "(warehouse) differ only in case or separators"
        ),
    )
    # A full read stages every event again: all are known, none is sent.
    third = metadata(h.run(read={"full_refresh": True}), "userflow_events")
    assert (third["sent"], third["already_sent"], third["requests"]) == (0, 30, 0)
    assert h.event_posts() == 30
    assert h.state("SELECT status, count(*) FROM sync.sent_events GROUP BY status") == [("sent", 30)]


def test_key_revoked_mid_run_then_rerun_sends_each_event_once(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(60))
    h.revoker.revoke_after = 25  # the 26th POST /events and later meet a rotated key
    stopped = h.run(raise_on_error=False, events={"batch_size": 10})
    assert not stopped.success
    recorded = h.state("SELECT key FROM sync.sent_events WHERE status = 'sent' ORDER BY key")
    # Requests in flight when the key changed still report: every confirmed event is recorded.
    assert [r[0] for r in recorded] == h.event_refs()
    assert 0 < len(recorded) <= 25
    assert h.state("SELECT count(*) FROM sync.pending_events") == [(0,)]  # a refused key is no event's fault
    assert h.state("SELECT count(*) FROM sync.cursors WHERE object_type = 'event'") == [(0,)]

    h.revoker.reset()
    rerun = metadata(h.run(events={"batch_size": 10}), "userflow_events")
    assert (rerun["sent"], rerun["already_sent"]) == (60 - len(recorded), len(recorded))
    assert h.event_refs() == [f"evt_{i:04d}" for i in range(60)]
    assert h.state("SELECT count(*) FROM sync.cursors WHERE object_type = 'event'") == [(1,)]


def test_at_least_once_resends_after_a_lost_response(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(5))
    h.faults(["lost_response"], "/events")
    result = metadata(h.run(max_concurrency=1), "userflow_events")
    assert (result["sent"], result["possible_duplicates"], result["possible_losses"], result["requests"]) == (5, 1, 0, 6)
    refs = h.event_refs()
    assert len(refs) == 6 and set(refs) == {f"evt_{i:04d}" for i in range(5)}  # the first one twice
    assert refs.count("evt_0000") == 2

    rerun = metadata(h.run(read={"full_refresh": True}), "userflow_events")
    assert (rerun["sent"], rerun["already_sent"], rerun["requests"]) == (0, 5, 0)


@pytest.mark.slow  # two runs with exhausted retries
def test_at_least_once_owes_an_event_whose_every_attempt_went_unanswered(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(5))
    h.faults(["lost_response", "lost_response"], "/events")  # both attempts of the first event
    first = metadata(h.run(max_concurrency=1), "userflow_events")
    # Two unanswered attempts, each possibly applied: the resend can make up to two copies.
    assert (first["sent"], first["failed"], first["possible_duplicates"]) == (4, 0, 2)
    assert h.state("SELECT key, status, attempts FROM sync.pending_events") == [("evt_0000", "ambiguous", 1)]
    assert h.event_refs().count("evt_0000") == 2  # both attempts were applied

    # The warehouse row is not read again (the cursor moved): the state alone resends it.
    rerun = metadata(h.run(), "userflow_events")
    assert (rerun["plan_resend"], rerun["sent"], rerun["possible_duplicates"]) == (1, 1, 0)
    assert h.event_refs().count("evt_0000") == 3
    assert h.state("SELECT count(*) FROM sync.pending_events") == [(0,)]


def test_at_most_once_never_resends_an_unanswered_event(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(5))
    h.faults(["lost_response"], "/events")
    spec = h.spec(delivery="at_most_once")
    result = metadata(h.run(spec, max_concurrency=1), "userflow_events")
    assert (result["sent"], result["possible_duplicates"], result["possible_losses"], result["requests"]) == (4, 0, 1, 5)
    assert h.event_refs() == [f"evt_{i:04d}" for i in range(5)]  # the lost answer's event was applied, once
    assert h.state("SELECT key FROM sync.sent_events WHERE status = 'possibly_lost'") == [("evt_0000",)]

    rerun = metadata(h.run(spec, read={"full_refresh": True}), "userflow_events")
    assert (rerun["sent"], rerun["already_sent"], rerun["requests"]) == (0, 5, 0)
    assert h.event_posts() == 5


@pytest.mark.slow  # three runs
def test_events_wait_for_a_user_that_failed_upstream(events_harness: EventsHarness) -> None:
    h = events_harness
    h.run()  # users, groups; no events yet
    h.sql("INSERT INTO users VALUES ('u100', 'new@example.com', 'New', now()::TIMESTAMP)")
    h.add_events([("evt_new", "u100", None, "Signed Up", "2026-01-02 00:00:00", "{}"), *event_rows(3)])
    # Landed now, after the last read: within the read's late-arrival window.
    h.sql("UPDATE events SET occurred_at = now()::TIMESTAMP")
    h.faults(["500", "500"], "/users")  # both attempts of the one user upsert
    first = h.run()
    assert metadata(first, "userflow_users")["failed"] == 1
    events = metadata(first, "userflow_events")
    assert (events["sent"], events["waiting"], events["plan_waiting"]) == (3, 1, 1)
    assert "u100" not in {u["id"] for u in h.emulator("state")["users"]}  # no empty user was created
    assert h.state("SELECT key, status FROM sync.pending_events") == [("evt_new", "waiting")]

    second = h.run()
    released = metadata(second, "userflow_events")
    assert (released["sent"], released["waiting"]) == (1, 0)
    users = {u["id"]: u for u in h.emulator("state")["users"]}
    assert users["u100"]["attributes"]["email"] == "new@example.com"
    assert h.event_refs() == ["evt_0000", "evt_0001", "evt_0002", "evt_new"]
    assert [e["user_id"] for e in h.events() if e["attributes"]["event_ref"] == "evt_new"] == ["u100"]


@pytest.mark.slow  # three runs
def test_events_of_a_rejected_user_wait_until_the_user_is_fixed(events_harness: EventsHarness) -> None:
    h = events_harness
    h.sql("INSERT INTO users VALUES ('u200', 'not-an-email-but-far-too-long@example.com', 'Long', '2026-01-01')")
    h.add_events([("evt_200", "u200", None, "Signed Up", "2026-01-01 00:00:00", "{}"), *event_rows(2)])
    spec = h.spec(users={"output_schema": {"email": {"type": "string", "max_length": 30}}, "max_rejected_fraction": 0.5})
    first = metadata(h.run(spec), "userflow_events")
    assert (first["sent"], first["waiting"]) == (2, 1)
    # The next read no longer lists u200 among the rejected rows; its event keeps waiting.
    second = metadata(h.run(spec), "userflow_events")
    assert (second["sent"], second["waiting"], second["requests"]) == (0, 1, 0)
    assert "u200" not in {u["id"] for u in h.emulator("state")["users"]}

    h.sql("UPDATE users SET email = 'u200@example.com', updated_at = now()::TIMESTAMP WHERE user_id = 'u200'")
    third = metadata(h.run(spec), "userflow_events")
    assert (third["sent"], third["waiting"]) == (1, 0)
    assert h.event_refs() == ["evt_0000", "evt_0001", "evt_200"]
    assert h.state("SELECT count(*) FROM sync.pending_events") == [(0,)]


def test_event_payload_holds_only_what_the_spec_maps(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events([("evt_x", "u001", "a1", "Project Created", "2026-01-02 03:04:05", '{"plan": null, "n": 1}')])
    spec = h.spec(attributes={"plan": "json_extract_string(properties, '$.plan')", "n": "(properties::JSON->>'n')::INT"})
    assert metadata(h.run(spec), "userflow_events")["sent"] == 1
    (event,) = h.events()
    assert (event["name"], event["user_id"], event["group_id"]) == ("Project Created", "u001", "a1")
    assert h.state("SELECT time FROM transform.event_records") == [("2026-01-02T03:04:05Z",)]
    assert event["time"] == "2026-01-02T03:04:05.000Z"  # the emulator's own rendering of that instant
    assert event["attributes"] == {"n": 1}  # no key, and a null attribute is left out
    assert "evt_x" not in str(event)


def test_unchanged_rerun_sends_no_request_at_all(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(12))
    h.run()
    before = h.emulator("requests")["total"]
    rerun = h.run()
    assert h.emulator("requests")["total"] == before, "not even the name check's definitions are read again"
    (names,) = [e for e in rerun.get_asset_check_evaluations() if e.check_name == "event_names"]
    assert not names.passed, "the stored definitions and sent names are still compared"


def test_events_of_users_the_sync_never_wrote_wait(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(4) + [("evt_ghost", "ghost", "a0", "Signed Up", "2026-01-01 05:00:00", "{}")])
    meta = metadata(h.run(), "userflow_events")
    assert (meta["sent"], meta["waiting"]) == (4, 1)
    assert "ghost" not in {u["id"] for u in h.emulator("state")["users"]}, "no empty user was created"
    # Asked to, the sync sends it anyway, and Userflow creates the user empty.
    meta = metadata(h.run(h.spec(unknown_users="send")), "userflow_events")
    assert (meta["sent"], meta["waiting"]) == (1, 0)
    ghost = next(u for u in h.emulator("state")["users"] if u["id"] == "ghost")
    assert ghost["attributes"] == {}


def test_unreachable_userflow_fails_the_run_and_keeps_every_event(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(5))
    with refused_port() as port:
        closed = f"http://127.0.0.1:{port}"
        offline = dataclasses.replace(h, url=closed)
        events_only = ["warehouse_events", "userflow_event_records", "userflow_events"]
        result = offline.run(offline.spec(unknown_users="send"), raise_on_error=False, selection=events_only)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    text = "".join(e.message for e in (error, error.cause) if e) if error else ""
    assert f"none of 5 events reached Userflow at {closed}" in text
    assert h.state("SELECT status, count(*) FROM sync.pending_events GROUP BY status") == [("failed", 5)]
    assert h.state("SELECT count(*) FROM sync.sent_events") == [(0,)]


def test_a_dry_run_of_events_leads_with_its_label_and_sends_nothing(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(5))
    result = h.run(sink={"dry_run": True}, events={"dry_run": True})
    events = metadata(result, "userflow_events")
    assert next(iter(events)) == DRY_RUN_LABEL
    # The users were not written either, so the plan holds the events back: planned, not sent.
    assert sum(v for k, v in events.items() if k.startswith("plan_") and isinstance(v, int)) == 5
    assert h.event_posts() == 0
