"""The events sink against the emulator: each event sent once, across reruns and interruptions."""

from events_harness import EventsHarness, event_rows, metadata


def test_events_sent_once_across_reruns(events_harness: EventsHarness) -> None:
    h = events_harness
    h.add_events(event_rows(30))
    first = metadata(h.run(), "userflow_events")
    assert (first["sent"], first["already_sent"], first["waiting"], first["failed"]) == (30, 0, 0, 0)
    assert (first["possible_duplicates"], first["possible_losses"], first["requests"]) == (0, 0, 30)
    assert h.event_refs() == [f"evt_{i:04d}" for i in range(30)]
    assert h.event_posts() == 30

    second = metadata(h.run(), "userflow_events")
    assert (second["sent"], second["already_sent"], second["requests"]) == (0, 0, 0)
    # A full read stages every event again: all are known, none is sent.
    third = metadata(h.run(read={"full_refresh": True}), "userflow_events")
    assert (third["sent"], third["already_sent"], third["requests"]) == (0, 30, 0)
    assert h.event_posts() == 30
    assert h.state("SELECT status, count(*) FROM sync.sent_events GROUP BY status") == [("sent", 30)]
