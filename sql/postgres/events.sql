-- Product events; event_id is the key that makes each one sent once (sync.sent_events).
-- $LAST_SYNC_TIMESTAMP is bound as a parameter: the start of the last read whose events were
-- all settled, minus warehouse.late_arrival_minutes; a full read binds the earliest timestamp.
-- Events never change, so when they happened is when they are new. An event that lands in the
-- warehouse later than the late-arrival window after it happened is not read incrementally:
-- if the events table has a load timestamp (e.g. loaded_at), filter on that instead.
-- Re-reading an event is harmless: a key already sent is never sent again.
SELECT
    event_id,
    user_id,
    account_id,
    name,
    occurred_at,
    properties
FROM events
WHERE occurred_at > $LAST_SYNC_TIMESTAMP
