"""The mirror's tables: their columns, and how one API object becomes rows of them.

Every table lives in the mirror schema of the warehouse (`userflow` by default). Values are
turned into text in Python and cast to the column's type inside DuckDB, so a chunk of rows
is one pandas frame of strings, whatever the JSON held.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Row = tuple[str | None, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, DuckDB type)
    description: str

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _table(name: str, description: str, *columns: str) -> Table:
    pairs = tuple((part.split(" ", 1)[0], part.split(" ", 1)[1]) for part in columns)
    return Table(name, pairs, description)


USERS = _table(
    "users",
    "Users as Userflow holds them; email and name are copied out of attributes.",
    "id VARCHAR", "email VARCHAR", "name VARCHAR", "attributes JSON", "created_at TIMESTAMPTZ",
)
GROUPS = _table(
    "groups",
    "Groups (companies) as Userflow holds them; name is copied out of attributes.",
    "id VARCHAR", "name VARCHAR", "attributes JSON", "created_at TIMESTAMPTZ",
)
MEMBERSHIPS = _table(
    "memberships",
    "Which user is in which group, with the membership's own attributes.",
    "user_id VARCHAR", "group_id VARCHAR", "attributes JSON", "created_at TIMESTAMPTZ",
)
ATTRIBUTE_DEFINITIONS = _table(
    "attribute_definitions",
    "Attribute definitions of every scope (user, group, group_membership).",
    "scope VARCHAR", "name VARCHAR", "display_name VARCHAR", "data_type VARCHAR",
)
EVENT_DEFINITIONS = _table(
    "event_definitions",
    "Event names Userflow has seen.",
    "name VARCHAR", "display_name VARCHAR", "created_at TIMESTAMPTZ",
)
CONTENT = _table(
    "content",
    "Flows, checklists and launchers.",
    "id VARCHAR", "type VARCHAR", "name VARCHAR", "created_at TIMESTAMPTZ",
    "draft_version_id VARCHAR", "published_version_id VARCHAR",
)
CONTENT_VERSIONS = _table(
    "content_versions",
    "Every version (draft and published) of every piece of content.",
    "id VARCHAR", "content_id VARCHAR", "number INTEGER", "state VARCHAR",
    "created_at TIMESTAMPTZ", "published_at TIMESTAMPTZ",
)
CONTENT_QUESTIONS = _table(
    "content_questions",
    "Survey questions of each flow version, in their order (position from 0).",
    "version_id VARCHAR", "content_id VARCHAR", "question_id VARCHAR", "position INTEGER",
    "name VARCHAR", "type VARCHAR", "required BOOLEAN", "choices JSON",
)
CONTENT_TASKS = _table(
    "content_tasks",
    "Tasks of each checklist version, with their position.",
    "version_id VARCHAR", "content_id VARCHAR", "task_id VARCHAR", "position INTEGER", "name VARCHAR",
)
CONTENT_SESSIONS = _table(
    "content_sessions",
    "Content sessions: who saw which content version, how far they got.",
    "id VARCHAR", "content_id VARCHAR", "version_id VARCHAR", "user_id VARCHAR", "group_id VARCHAR",
    "is_preview BOOLEAN", "completed BOOLEAN", "completed_at TIMESTAMPTZ", "progress DOUBLE",
    "created_at TIMESTAMPTZ", "last_activity_at TIMESTAMPTZ",
)
CONTENT_SESSION_ANSWERS = _table(
    "content_session_answers",
    "Survey answers given in content sessions.",
    "session_id VARCHAR", "id VARCHAR", "question_id VARCHAR", "question_name VARCHAR",
    "answer_type VARCHAR", "number_value DOUBLE", "string_value VARCHAR", "list_value JSON",
    "created_at TIMESTAMPTZ",
)
CONTENT_SESSION_TASK_COMPLETIONS = _table(
    "content_session_task_completions",
    "Checklist tasks completed in content sessions.",
    "session_id VARCHAR", "task_id VARCHAR", "completed_at TIMESTAMPTZ",
)
CHECKLIST_DROPOFF = _table(
    "checklist_dropoff",
    "Per checklist and task (published version, in order): users who reached it, completed it, stopped there.",
    "content_id VARCHAR", "checklist VARCHAR", "position INTEGER", "task_id VARCHAR", "task VARCHAR",
    "reached BIGINT", "completed BIGINT", "stopped_here BIGINT",
)
DRIFT = _table(
    "drift",
    "Differences between Userflow and the sync state, one row per finding.",
    "object_type VARCHAR", "id VARCHAR", "kind VARCHAR", "attribute VARCHAR",
    "userflow_value JSON", "synced_value JSON", "synced_at TIMESTAMP",
)


def text(value: Any) -> str | None:
    """A value as the text DuckDB casts to the column type; lists and objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _attributes(obj: Mapping[str, Any]) -> dict[str, Any]:
    attributes = obj.get("attributes")
    return attributes if isinstance(attributes, dict) else {}


def _row(*values: Any) -> Row:
    return tuple(text(v) for v in values)


def user_row(user: Mapping[str, Any]) -> Row:
    attributes = _attributes(user)
    return _row(user["id"], attributes.get("email"), attributes.get("name"), attributes, user.get("created_at"))


def group_row(group: Mapping[str, Any]) -> Row:
    attributes = _attributes(group)
    return _row(group["id"], attributes.get("name"), attributes, group.get("created_at"))


def membership_row(membership: Mapping[str, Any], user_id: str) -> Row:
    group_id = membership.get("group_id") or (membership.get("group") or {}).get("id")
    return _row(membership.get("user_id") or user_id, group_id, _attributes(membership), membership.get("created_at"))


def attribute_definition_row(definition: Mapping[str, Any]) -> Row:
    return _row(definition.get("scope"), definition["name"], definition.get("display_name"), definition.get("data_type"))


def event_definition_row(definition: Mapping[str, Any]) -> Row:
    return _row(definition["name"], definition.get("display_name"), definition.get("created_at"))


def content_row(content: Mapping[str, Any]) -> Row:
    return _row(
        content["id"], content.get("type"), content.get("name"), content.get("created_at"),
        content.get("draft_version_id"), content.get("published_version_id"),
    )


def version_row(version: Mapping[str, Any]) -> Row:
    return _row(
        version["id"], version.get("content_id"), version.get("number"), version.get("state"),
        version.get("created_at"), version.get("published_at"),
    )


def question_rows(version: Mapping[str, Any]) -> Iterator[Row]:
    for position, question in enumerate(version.get("questions") or []):
        yield _row(
            version["id"], version.get("content_id"), question["id"], position,
            question.get("name"), question.get("type"), question.get("required"), question.get("choices"),
        )


def task_rows(version: Mapping[str, Any]) -> Iterator[Row]:
    for index, task in enumerate(version.get("tasks") or []):
        position = task.get("position", index)
        yield _row(version["id"], version.get("content_id"), task["id"], position, task.get("name"))


def session_row(session: Mapping[str, Any]) -> Row:
    return _row(
        session["id"], session.get("content_id"), session.get("version_id"), session.get("user_id"),
        session.get("group_id"), session.get("is_preview"), session.get("completed"),
        session.get("completed_at"), session.get("progress"), session.get("created_at"),
        session.get("last_activity_at"),
    )


def answer_rows(session: Mapping[str, Any]) -> Iterator[Row]:
    for answer in session.get("answers") or []:
        yield _row(
            session["id"], answer.get("id"), answer.get("question_id"), answer.get("question_name"),
            answer.get("answer_type"), answer.get("number_value"), answer.get("string_value"),
            answer.get("list_value"), answer.get("created_at"),
        )


def task_completion_rows(session: Mapping[str, Any]) -> Iterator[Row]:
    for completion in session.get("task_completions") or []:
        yield _row(session["id"], completion.get("task_id"), completion.get("completed_at"))
