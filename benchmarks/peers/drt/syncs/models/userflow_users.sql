-- One row per user with the attributes every peer maps (see defs.yaml, users.mapping) and the
-- user's memberships; the cursor covers the user's row and its memberships, so a change to
-- either is read by the next incremental run.
SELECT
    u.user_id,
    lower(u.email) AS email,
    u.first_name || ' ' || u.last_name AS name,
    u.first_name, u.last_name, u.plan, u.role, u.locale, u.country,
    u.signed_up_at, u.last_seen_at, u.trial_ends_at, u.seats, u.mrr, u.is_verified, u.bio,
    coalesce(m.memberships, []) AS memberships,
    greatest(u.updated_at, coalesce(m.updated_at, u.updated_at)) AS sync_updated_at
FROM users AS u
LEFT JOIN (
    SELECT user_id,
           list({'group': {'id': account_id}, 'attributes': {'role': role}} ORDER BY account_id) AS memberships,
           max(updated_at) AS updated_at
    FROM account_memberships
    GROUP BY user_id
) AS m USING (user_id)
