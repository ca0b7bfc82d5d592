"""The sync a team writes by hand (seed 002): read the warehouse, upsert every company, then
every user with its memberships, one request at a time, backing off on 429 and 5xx.

    python naive_script.py --warehouse W.duckdb --base-url URL   (key in USERFLOW_API_KEY)
"""

import argparse
import os
from datetime import date, datetime

import duckdb
import httpx
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

GROUPS_SQL = "SELECT account_id, name, plan, industry, employees, arr, created_at FROM accounts"
USERS_SQL = """
    SELECT user_id, lower(email) AS email, first_name || ' ' || last_name AS name, first_name, last_name,
           plan, role, locale, country, signed_up_at, last_seen_at, trial_ends_at, seats, mrr, is_verified, bio
    FROM users
"""
MEMBERSHIPS_SQL = "SELECT user_id, account_id, role FROM account_memberships ORDER BY user_id, account_id"


def transient(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code == 429 or error.response.status_code >= 500
    return isinstance(error, httpx.TransportError)


def jsonable(value):
    return value.isoformat() if isinstance(value, datetime | date) else value


def rows(con, sql):
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, (jsonable(v) for v in row))) for row in result.fetchall()]


@retry(retry=retry_if_exception(transient), wait=wait_random_exponential(multiplier=0.5, max=30),
       stop=stop_after_attempt(12), reraise=True)
def upsert(client, path, body):
    client.post(path, json=body).raise_for_status()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    with duckdb.connect(args.warehouse, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        groups, users = rows(con, GROUPS_SQL), rows(con, USERS_SQL)
        memberships = {}
        for user_id, account_id, role in con.execute(MEMBERSHIPS_SQL).fetchall():
            memberships.setdefault(user_id, []).append({"group": {"id": account_id}, "attributes": {"role": role}})
    headers = {"Authorization": f"Bearer {os.environ['USERFLOW_API_KEY']}", "Userflow-Version": "2020-01-03"}
    failed = 0
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=30) as client:
        for group in groups:
            group_id = group.pop("account_id")
            try:
                upsert(client, "/groups", {"id": group_id, "attributes": group})
            except httpx.HTTPError as error:
                failed += 1
                print(f"group {group_id}: {error}")
        for user in users:
            user_id = user.pop("user_id")
            body = {"id": user_id, "attributes": {k: v for k, v in user.items() if v is not None},
                    "memberships": memberships.get(user_id, [])}
            try:
                upsert(client, "/users", body)
            except httpx.HTTPError as error:
                failed += 1
                print(f"user {user_id}: {error}")
    print(f"synced {len(groups) + len(users) - failed} records, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
