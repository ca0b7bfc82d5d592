-- One row per company (a Userflow group).
SELECT
    account_id,
    name,
    plan,
    industry,
    employees,
    arr,
    created_at,
    updated_at
FROM accounts
WHERE updated_at > $LAST_SYNC_TIMESTAMP
