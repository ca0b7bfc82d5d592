"""The emulator's data: users, groups, memberships, events, definitions and content.

Handlers validate a whole request before writing anything, so a 400 never leaves a
partial write behind. All mutation happens on the event loop without awaits in between,
which makes every request atomic without locks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from userflow_assets.emulator.attributes import (
    Change,
    apply_change,
    humanize,
    infer_data_type,
)
from userflow_assets.emulator.errors import invalid

ATTRIBUTE_SCOPES = ("user", "group", "group_membership")


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z, the form Userflow answers with."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Clock:
    """Wall clock that never goes backwards, so insertion order matches created_at order."""

    def __init__(self) -> None:
        self._last = datetime.fromtimestamp(0, UTC)

    def now(self) -> datetime:
        self._last = max(self._last, datetime.now(UTC))
        return self._last


@dataclass
class Record:
    """A user or a group."""

    id: str
    attributes: dict[str, Any]
    created_at: str
    seq: int


@dataclass
class Membership:
    user_id: str
    group_id: str
    attributes: dict[str, Any]
    created_at: str
    seq: int


@dataclass
class Event:
    id: str
    name: str
    user_id: str | None
    group_id: str | None
    attributes: dict[str, Any]
    time: str
    created_at: str
    seq: int


@dataclass
class AttributeDefinition:
    scope: str
    name: str
    data_type: str
    seq: int


@dataclass
class EventDefinition:
    name: str
    created_at: str
    seq: int


@dataclass
class MembershipWrite:
    """A membership named in a user upsert: its group's changes and its own."""

    group_id: str
    group_changes: dict[str, Change]
    membership_changes: dict[str, Change]


@dataclass
class Store:
    clock: Clock = field(default_factory=Clock)
    users: dict[str, Record] = field(default_factory=dict)
    groups: dict[str, Record] = field(default_factory=dict)
    memberships_by_user: dict[str, dict[str, Membership]] = field(default_factory=dict)
    memberships_by_group: dict[str, dict[str, Membership]] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    events_by_user: dict[str, list[str]] = field(default_factory=dict)
    attribute_definitions: dict[tuple[str, str], AttributeDefinition] = field(default_factory=dict)
    event_definitions: dict[str, EventDefinition] = field(default_factory=dict)
    content: dict[str, dict[str, Any]] = field(default_factory=dict)
    content_versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    content_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seq: itertools.count = field(default_factory=itertools.count)
    _event_ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_seq(self) -> int:
        return next(self._seq)

    def now(self) -> str:
        return format_time(self.clock.now())

    # -- attribute definitions -------------------------------------------------------

    def _register_attributes(self, scope: str, attributes: dict[str, Any], changes: dict[str, Change]) -> None:
        for name, change in changes.items():
            if (scope, name) in self.attribute_definitions:
                continue
            data_type = change.data_type or infer_data_type(attributes.get(name))
            if data_type is not None:
                self.attribute_definitions[(scope, name)] = AttributeDefinition(scope, name, data_type, self.next_seq())

    # -- users and groups ------------------------------------------------------------

    @staticmethod
    def _merged(current: dict[str, Any], changes: dict[str, Change]) -> dict[str, Any]:
        merged = dict(current)
        for name, change in changes.items():
            apply_change(merged, name, change)
        return merged

    def _store_record(self, table: dict[str, Record], record_id: str, attributes: dict[str, Any]) -> Record:
        record = table.get(record_id)
        if record is None:
            record = Record(record_id, attributes, self.now(), self.next_seq())
            table[record_id] = record
        else:
            record.attributes = attributes
        return record

    def upsert_group(self, group_id: str, changes: dict[str, Change]) -> Record:
        current = self.groups.get(group_id)
        merged = self._merged(current.attributes if current else {}, changes)
        self._register_attributes("group", merged, changes)
        return self._store_record(self.groups, group_id, merged)

    def upsert_user(
        self,
        user_id: str,
        changes: dict[str, Change],
        memberships: list[MembershipWrite] | None,
        prune: bool,
    ) -> Record:
        """Create or merge a user, its groups and memberships; all computed before any write."""
        current = self.users.get(user_id)
        merged = self._merged(current.attributes if current else {}, changes)
        staged_groups = self._stage_groups(memberships or [])
        staged_memberships = self._stage_memberships(user_id, memberships or [])
        # Nothing below raises: the request is now known to be valid.
        self._register_attributes("user", merged, changes)
        user = self._store_record(self.users, user_id, merged)
        for group_id, (attributes, group_changes) in staged_groups.items():
            self._register_attributes("group", attributes, group_changes)
            self._store_record(self.groups, group_id, attributes)
        for group_id, (attributes, membership_changes) in staged_memberships.items():
            self._register_attributes("group_membership", attributes, membership_changes)
            self._store_membership(user_id, group_id, attributes)
        if prune:
            for group_id in list(self.memberships_by_user.get(user_id, {})):
                if group_id not in staged_memberships:
                    self.remove_membership(user_id, group_id)
        return user

    def _stage_groups(self, writes: list[MembershipWrite]) -> dict[str, tuple[dict[str, Any], dict[str, Change]]]:
        staged: dict[str, tuple[dict[str, Any], dict[str, Change]]] = {}
        for write in writes:
            if write.group_id in staged:
                base, seen = staged[write.group_id]
            else:
                group = self.groups.get(write.group_id)
                base, seen = (group.attributes if group else {}), {}
            staged[write.group_id] = (self._merged(base, write.group_changes), {**seen, **write.group_changes})
        return staged

    def _stage_memberships(
        self, user_id: str, writes: list[MembershipWrite]
    ) -> dict[str, tuple[dict[str, Any], dict[str, Change]]]:
        staged: dict[str, tuple[dict[str, Any], dict[str, Change]]] = {}
        existing = self.memberships_by_user.get(user_id, {})
        for write in writes:
            if write.group_id in staged:
                base, seen = staged[write.group_id]
            else:
                membership = existing.get(write.group_id)
                base, seen = (membership.attributes if membership else {}), {}
            merged = self._merged(base, write.membership_changes)
            staged[write.group_id] = (merged, {**seen, **write.membership_changes})
        return staged

    def _store_membership(self, user_id: str, group_id: str, attributes: dict[str, Any]) -> None:
        membership = self.memberships_by_user.get(user_id, {}).get(group_id)
        if membership is not None:
            membership.attributes = attributes
            return
        membership = Membership(user_id, group_id, attributes, self.now(), self.next_seq())
        self.memberships_by_user.setdefault(user_id, {})[group_id] = membership
        self.memberships_by_group.setdefault(group_id, {})[user_id] = membership

    def remove_membership(self, user_id: str, group_id: str) -> bool:
        membership = self.memberships_by_user.get(user_id, {}).pop(group_id, None)
        if membership is None:
            return False
        self.memberships_by_group.get(group_id, {}).pop(user_id, None)
        return True

    def all_memberships(self) -> list[Membership]:
        memberships = [m for by_group in self.memberships_by_user.values() for m in by_group.values()]
        return sorted(memberships, key=lambda m: m.seq)

    def delete_user(self, user_id: str) -> bool:
        """Remove the user with its memberships, events and content sessions; groups stay."""
        if self.users.pop(user_id, None) is None:
            return False
        for group_id in list(self.memberships_by_user.get(user_id, {})):
            self.remove_membership(user_id, group_id)
        self.memberships_by_user.pop(user_id, None)
        for event_id in self.events_by_user.pop(user_id, []):
            self.events.pop(event_id, None)
        for session_id in [s["id"] for s in self.content_sessions.values() if s["user_id"] == user_id]:
            del self.content_sessions[session_id]
        return True

    def delete_group(self, group_id: str) -> bool:
        """Remove the group and its memberships; its members stay."""
        if self.groups.pop(group_id, None) is None:
            return False
        for user_id in list(self.memberships_by_group.get(group_id, {})):
            self.remove_membership(user_id, group_id)
        self.memberships_by_group.pop(group_id, None)
        return True

    # -- events ----------------------------------------------------------------------

    def record_event(
        self,
        name: str,
        user_id: str | None,
        group_id: str | None,
        changes: dict[str, Change],
        time: str | None,
    ) -> Event:
        """Record one event. An unknown user or group is created empty, as tracking an
        event for an ID Userflow has not seen yet makes that ID exist."""
        attributes = self._merged({}, changes)
        if user_id is not None and user_id not in self.users:
            self._store_record(self.users, user_id, {})
        if group_id is not None and group_id not in self.groups:
            self._store_record(self.groups, group_id, {})
        created_at = self.now()
        event = Event(
            id=f"evt_{next(self._event_ids)}",
            name=name,
            user_id=user_id,
            group_id=group_id,
            attributes=attributes,
            time=time or created_at,
            created_at=created_at,
            seq=self.next_seq(),
        )
        self.events[event.id] = event
        if user_id is not None:
            self.events_by_user.setdefault(user_id, []).append(event.id)
        if name not in self.event_definitions:
            self.event_definitions[name] = EventDefinition(name, created_at, self.next_seq())
        return event


def check_scope(scope: str) -> None:
    if scope not in ATTRIBUTE_SCOPES:
        raise invalid(f"scope must be one of {', '.join(ATTRIBUTE_SCOPES)}")


def attribute_definition_json(definition: AttributeDefinition) -> dict[str, Any]:
    return {
        "object": "attribute_definition",
        "name": definition.name,
        "display_name": humanize(definition.name),
        "data_type": definition.data_type,
        "scope": definition.scope,
    }


def event_definition_json(definition: EventDefinition) -> dict[str, Any]:
    return {
        "object": "event_definition",
        "name": definition.name,
        "display_name": humanize(definition.name),
        "created_at": definition.created_at,
    }
