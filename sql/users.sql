-- One row per user, with the user's company memberships (account and role) as a list.
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
        -- Sorted after the aggregate, not by an ordered aggregate (ORDER BY inside list()),
        -- which holds every group's rows in memory: 10M users overran a 1 GB limit. Sorted all
        -- the same, so the change sensor's checksum of these rows is stable.
        list_sort(list({'account_id': account_id, 'role': role})) AS memberships
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
