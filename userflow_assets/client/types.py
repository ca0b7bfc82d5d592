"""Shapes of what the client sends and receives (see shared/userflow-api.md)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

Literal_: TypeAlias = str | int | float | bool | None
# A literal, a flat list of literals, or a change object such as {"set_once": ..., "data_type": ...}.
AttributeValue: TypeAlias = Literal_ | list[Literal_] | dict[str, Any]
Attributes: TypeAlias = dict[str, AttributeValue]
AttributeScope: TypeAlias = Literal["user", "group", "group_membership"]


class GroupRef(TypedDict):
    id: str
    attributes: NotRequired[Attributes]


class MembershipRef(TypedDict):
    group: GroupRef
    attributes: NotRequired[Attributes]


class UserObject(TypedDict, total=False):
    object: str
    id: str
    attributes: dict[str, Any]
    created_at: str
    groups: list[dict[str, Any]] | None
    memberships: list[dict[str, Any]] | None


class GroupObject(TypedDict, total=False):
    object: str
    id: str
    attributes: dict[str, Any]
    created_at: str
    memberships: list[dict[str, Any]] | None
    users: list[dict[str, Any]] | None


class EventObject(TypedDict, total=False):
    object: str
    id: str
    name: str
    user_id: str | None
    group_id: str | None
    attributes: dict[str, Any]
    time: str
    created_at: str


class AttributeDefinition(TypedDict, total=False):
    object: str
    name: str
    display_name: str
    data_type: str
    scope: str


class EventDefinition(TypedDict, total=False):
    object: str
    name: str
    display_name: str


# Content, versions and sessions are read-only and loosely known: plain JSON objects.
ContentObject: TypeAlias = dict[str, Any]
ContentVersionObject: TypeAlias = dict[str, Any]
ContentSessionObject: TypeAlias = dict[str, Any]
