-- One row per company, with the attributes every peer maps (see defs.yaml, groups.mapping).
SELECT account_id, name, plan, industry, employees, arr, created_at, updated_at
FROM accounts
