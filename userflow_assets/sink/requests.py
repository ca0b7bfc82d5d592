"""Request bodies: a planned record shaped into what Userflow is sent.

The planner decides what to send; this is where a decision becomes a body.
"""

import json
from typing import Any

from userflow_assets.spec import ObjectSpec


def removed_groups(previous: str | None, current: str | None) -> list[str]:
    """Groups the user was confirmed in last time that the warehouse no longer lists."""
    if not previous:
        return []
    still = {item["id"] for item in json.loads(current or "[]")}
    return sorted(item["id"] for item in json.loads(previous) if item["id"] not in still)


def request_attributes(attributes: str, previous: str | None, nulls: str) -> dict[str, Any]:
    """What to send: the values that are set, and, under `nulls: clear`, a null for each
    attribute Userflow holds from an earlier sync that is now null or no longer mapped."""
    current = json.loads(attributes)
    body = {name: value for name, value in current.items() if value is not None}
    if nulls == "clear" and previous:
        for name, value in json.loads(previous).items():
            if value is not None and current.get(name) is None:
                body[name] = None
    return body


def user_groups_fields(memberships: str | None, spec: ObjectSpec, prune: bool) -> dict[str, Any]:
    """`groups` or (with membership attributes) `memberships`, inside the user's own upsert."""
    if spec.memberships is None or memberships is None:
        return {}
    items = json.loads(memberships)

    def group(item: dict[str, Any]) -> dict[str, Any]:
        attributes = {k: v for k, v in (item.get("group_attributes") or {}).items() if v is not None}
        return {"id": item["id"], **({"attributes": attributes} if attributes else {})}

    if spec.memberships.attributes:
        fields: dict[str, Any] = {
            "memberships": [
                {
                    "group": group(item),
                    "attributes": {k: v for k, v in (item.get("attributes") or {}).items() if v is not None},
                }
                for item in items
            ]
        }
    else:
        fields = {"groups": [group(item) for item in items]}
    # The list is the user's complete set (the whole column), so pruning is safe to send.
    if prune:
        fields["prune_memberships"] = True
    return fields
