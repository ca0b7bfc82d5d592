-- Product events; event_id is the key that makes each one sent once.
SELECT
    event_id,
    user_id,
    account_id,
    name,
    occurred_at,
    properties
FROM events
WHERE occurred_at > $LAST_SYNC_TIMESTAMP
