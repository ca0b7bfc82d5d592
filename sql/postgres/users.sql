-- One row per user, with the user's company memberships (account and role) as a JSON list
-- (PostgreSQL: the sync reads a JSON list of objects as the list of structs it is).
-- $LAST_SYNC_TIMESTAMP is bound as a parameter: a full read binds the earliest timestamp.
-- A user is read when its row or one of its memberships changed; the filter comes first,
-- so an incremental read aggregates only the memberships of the users it reads.
WITH selected AS (
    SELECT *
    FROM users
    WHERE updated_at > $LAST_SYNC_TIMESTAMP
       OR user_id IN (SELECT user_id FROM account_memberships WHERE updated_at > $LAST_SYNC_TIMESTAMP)
),
memberships AS (
    SELECT
        user_id,
        jsonb_agg(jsonb_build_object('account_id', account_id, 'role', role) ORDER BY account_id) AS memberships
    FROM account_memberships
    WHERE user_id IN (SELECT user_id FROM selected)
    GROUP BY user_id
)
SELECT
    u.user_id,
    u.email,
    u.first_name,
    u.last_name,
    u.plan,
    u.role,
    u.locale,
    u.country,
    u.signed_up_at,
    u.updated_at,
    u.last_seen_at,
    u.trial_ends_at,
    u.seats,
    u.mrr,
    u.is_verified,
    u.account_ids,
    u.bio,
    m.memberships
FROM selected AS u
LEFT JOIN memberships AS m ON m.user_id = u.user_id
