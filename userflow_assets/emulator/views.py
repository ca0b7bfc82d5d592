"""JSON shapes of the emulator's objects, with Userflow's `expand` semantics."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from userflow_assets.emulator.store import Event, Membership, Record, Store

USER_EXPANDS = frozenset({"groups", "memberships", "memberships.group"})
GROUP_EXPANDS = frozenset({"users", "memberships", "memberships.user"})
MEMBERSHIP_EXPANDS = frozenset({"group", "user"})
CONTENT_EXPANDS = frozenset({"draft_version", "published_version"})
SESSION_EXPANDS = frozenset({"answers", "content", "user", "version"})


def user_json(store: Store, user: Record, expand: Collection[str] = ()) -> dict[str, Any]:
    memberships = list(store.memberships_by_user.get(user.id, {}).values())
    out: dict[str, Any] = {
        "object": "user",
        "id": user.id,
        "attributes": dict(user.attributes),
        "created_at": user.created_at,
        "groups": None,
        "memberships": None,
    }
    if "groups" in expand:
        out["groups"] = [group_json(store, store.groups[m.group_id]) for m in memberships]
    if "memberships" in expand or "memberships.group" in expand:
        with_group = "memberships.group" in expand
        out["memberships"] = [membership_json(store, m, with_group=with_group) for m in memberships]
    return out


def group_json(store: Store, group: Record, expand: Collection[str] = ()) -> dict[str, Any]:
    memberships = list(store.memberships_by_group.get(group.id, {}).values())
    out: dict[str, Any] = {
        "object": "group",
        "id": group.id,
        "attributes": dict(group.attributes),
        "created_at": group.created_at,
        "users": None,
        "memberships": None,
    }
    if "users" in expand:
        out["users"] = [user_json(store, store.users[m.user_id]) for m in memberships]
    if "memberships" in expand or "memberships.user" in expand:
        with_user = "memberships.user" in expand
        out["memberships"] = [membership_json(store, m, with_user=with_user) for m in memberships]
    return out


def membership_json(
    store: Store, membership: Membership, *, with_group: bool = False, with_user: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "group_membership",
        "user_id": membership.user_id,
        "group_id": membership.group_id,
        "attributes": dict(membership.attributes),
        "created_at": membership.created_at,
    }
    if with_group:
        out["group"] = group_json(store, store.groups[membership.group_id])
    if with_user:
        out["user"] = user_json(store, store.users[membership.user_id])
    return out


def event_json(event: Event) -> dict[str, Any]:
    return {
        "object": "event",
        "id": event.id,
        "name": event.name,
        "user_id": event.user_id,
        "group_id": event.group_id,
        "attributes": dict(event.attributes),
        "time": event.time,
        "created_at": event.created_at,
    }


def version_json(version: dict[str, Any]) -> dict[str, Any]:
    return dict(version)


def content_json(store: Store, content: dict[str, Any], expand: Collection[str] = ()) -> dict[str, Any]:
    out = dict(content)
    draft_id, published_id = content["draft_version_id"], content["published_version_id"]
    out["draft_version"] = version_json(store.content_versions[draft_id]) if "draft_version" in expand else None
    out["published_version"] = (
        version_json(store.content_versions[published_id]) if "published_version" in expand else None
    )
    return out


def session_json(store: Store, session: dict[str, Any], expand: Collection[str] = ()) -> dict[str, Any]:
    out = {key: value for key, value in session.items() if not key.startswith("_")}
    out["task_completions"] = [dict(item) for item in session["task_completions"]]
    out["answers"] = [dict(a) for a in session["_answers"]] if "answers" in expand else None
    out["content"] = content_json(store, store.content[session["content_id"]]) if "content" in expand else None
    user = store.users.get(session["user_id"])
    out["user"] = user_json(store, user) if "user" in expand and user is not None else None
    version = store.content_versions[session["version_id"]]
    out["version"] = version_json(version) if "version" in expand else None
    return out
