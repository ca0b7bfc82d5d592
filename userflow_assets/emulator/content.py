"""Seeded content: flows (with survey questions), checklists (with tasks), a launcher,
their versions, and content sessions. Deterministic: the same seed every time.

Shapes (read-only through the API; Userflow content cannot be written through its API):

- content: `{"object": "content", "id", "type": "flow"|"checklist"|"launcher", "name",
  "created_at", "draft_version_id", "draft_version", "published_version_id",
  "published_version"}`; the version objects are filled on `GET /content/{id}` and with
  `expand[]=draft_version` / `expand[]=published_version` on the list, else null.
- content_version: `{"object": "content_version", "id", "content_id", "number", "state":
  "draft"|"published", "created_at", "published_at", "questions": [...], "tasks": [...]}`.
  question: `{"object": "question", "id", "name", "type": "nps"|"scale"|"multiple_choice"|"text",
  "required", "choices"}`; task: `{"object": "checklist_task", "id", "name", "position"}`.
- content_session: `{"object": "content_session", "id", "content_id", "version_id", "user_id",
  "group_id", "is_preview", "completed", "completed_at", "progress" (0..1), "created_at",
  "last_activity_at", "task_completions": [{"task_id", "completed_at"}], "answers",
  "content", "user", "version"}`; the last four are null unless expanded (`user` also
  when no user with that ID exists).
  answer: `{"object": "content_session_answer", "id", "question_id", "question_name",
  "answer_type": "number"|"string"|"list", "number_value", "string_value", "list_value",
  "created_at"}`.

Sessions belong to users `demo-user-1` .. `demo-user-8`, which are not seeded as users:
syncing users with those IDs links them; deleting such a user deletes its sessions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from userflow_assets.emulator.store import Store, format_time

_BASE = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DEMO_USERS = tuple(f"demo-user-{n}" for n in range(1, 9))


def _at(minutes: int) -> str:
    return format_time(_BASE + timedelta(minutes=minutes))


def _question(qid: str, name: str, qtype: str, choices: list[str] | None = None) -> dict[str, Any]:
    return {
        "object": "question",
        "id": qid,
        "name": name,
        "type": qtype,
        "required": qtype != "text",
        "choices": choices,
    }


def _task(tid: str, name: str, position: int) -> dict[str, Any]:
    return {"object": "checklist_task", "id": tid, "name": name, "position": position}


_ROLE_CHOICES = ["Engineer", "Product manager", "Designer", "Other"]

# (id, type, name, published questions/tasks, extra item only in the draft)
_CONTENT: list[tuple[str, str, str, list[dict[str, Any]], dict[str, Any] | None]] = [
    (
        "flow-welcome-survey",
        "flow",
        "Welcome survey",
        [
            _question("q-role", "What is your role?", "multiple_choice", _ROLE_CHOICES),
            _question("q-goal", "What do you want to achieve first?", "text"),
        ],
        _question("q-team-size", "How big is your team?", "scale"),
    ),
    (
        "flow-nps",
        "flow",
        "NPS survey",
        [
            _question("q-nps", "How likely are you to recommend us to a friend?", "nps"),
            _question("q-nps-why", "What is the main reason for your score?", "text"),
        ],
        None,
    ),
    (
        "checklist-getting-started",
        "checklist",
        "Getting started",
        [
            _task("task-connect-data", "Connect a data source", 0),
            _task("task-invite-teammate", "Invite a teammate", 1),
            _task("task-first-report", "Create your first report", 2),
            _task("task-share-dashboard", "Share a dashboard", 3),
        ],
        _task("task-schedule-digest", "Schedule a weekly digest", 4),
    ),
    (
        "checklist-admin-setup",
        "checklist",
        "Admin setup",
        [_task("task-configure-sso", "Configure SSO", 0), _task("task-add-billing", "Add billing details", 1)],
        None,
    ),
    ("launcher-help", "launcher", "Help launcher", [], None),
]


def _version(
    content_id: str, ctype: str, number: int, items: list[dict[str, Any]], published: bool, minutes: int
) -> dict[str, Any]:
    return {
        "object": "content_version",
        "id": f"{content_id}-v{number}",
        "content_id": content_id,
        "number": number,
        "state": "published" if published else "draft",
        "created_at": _at(minutes),
        "published_at": _at(minutes + 30) if published else None,
        "questions": items if ctype == "flow" else [],
        "tasks": items if ctype == "checklist" else [],
    }


def _seed_definitions(store: Store) -> None:
    for index, (content_id, ctype, name, items, draft_extra) in enumerate(_CONTENT):
        start = index * 60
        published = _version(content_id, ctype, 1, items, True, start)
        draft_items = items + ([draft_extra] if draft_extra else [])
        draft = _version(content_id, ctype, 2, draft_items, False, start + 24 * 60)
        store.content_versions[published["id"]] = published
        store.content_versions[draft["id"]] = draft
        store.content[content_id] = {
            "object": "content",
            "id": content_id,
            "type": ctype,
            "name": name,
            "created_at": _at(start),
            "draft_version_id": draft["id"],
            "published_version_id": published["id"],
        }


def _session(store: Store, content_id: str, user_index: int, day: int) -> dict[str, Any]:
    session_id = f"cs-{len(store.content_sessions) + 1:04d}"
    created = 7 * 24 * 60 + day * 24 * 60 + user_index * 7
    session = {
        "object": "content_session",
        "id": session_id,
        "content_id": content_id,
        "version_id": f"{content_id}-v1",
        "user_id": DEMO_USERS[user_index],
        "group_id": None,
        "is_preview": False,
        "completed": False,
        "completed_at": None,
        "progress": 0,
        "created_at": _at(created),
        "last_activity_at": _at(created),
        "task_completions": [],
        "_answers": [],
        "_minutes": created,
    }
    store.content_sessions[session_id] = session
    return session


def _answer(session: dict[str, Any], question: dict[str, Any], value: Any, minutes: int) -> dict[str, Any]:
    kind = "number" if isinstance(value, int) else "list" if isinstance(value, list) else "string"
    return {
        "object": "content_session_answer",
        "id": f"{session['id']}-{question['id']}",
        "question_id": question["id"],
        "question_name": question["name"],
        "answer_type": kind,
        "number_value": value if kind == "number" else None,
        "string_value": value if kind == "string" else None,
        "list_value": value if kind == "list" else None,
        "created_at": _at(minutes),
    }


def _finish(session: dict[str, Any], done: int, total: int, last_minutes: int) -> None:
    session["progress"] = round(done / total, 4) if total else 0
    session["last_activity_at"] = _at(last_minutes)
    if total and done == total:
        session["completed"] = True
        session["completed_at"] = _at(last_minutes)


def _seed_checklist_sessions(store: Store) -> None:
    # User i stopped after (i mod 5) tasks of "Getting started": 0..4 done, so every
    # "where did users stop" bucket is populated; users 0 and 1 also ran "Admin setup".
    tasks = store.content_versions["checklist-getting-started-v1"]["tasks"]
    for user_index in range(len(DEMO_USERS)):
        session = _session(store, "checklist-getting-started", user_index, 0)
        done = user_index % (len(tasks) + 1)
        minutes = session["_minutes"]
        for task in tasks[:done]:
            minutes += 5
            session["task_completions"].append({"task_id": task["id"], "completed_at": _at(minutes)})
        _finish(session, done, len(tasks), minutes)
    admin_tasks = store.content_versions["checklist-admin-setup-v1"]["tasks"]
    for user_index, done in ((0, 2), (1, 1)):
        session = _session(store, "checklist-admin-setup", user_index, 1)
        minutes = session["_minutes"]
        for task in admin_tasks[:done]:
            minutes += 3
            session["task_completions"].append({"task_id": task["id"], "completed_at": _at(minutes)})
        _finish(session, done, len(admin_tasks), minutes)


def _seed_flow_sessions(store: Store) -> None:
    welcome = store.content_versions["flow-welcome-survey-v1"]["questions"]
    for user_index in range(len(DEMO_USERS)):
        session = _session(store, "flow-welcome-survey", user_index, 2)
        minutes = session["_minutes"]
        answered = 0 if user_index == 7 else 1 if user_index % 3 == 0 else 2
        values = [_ROLE_CHOICES[user_index % len(_ROLE_CHOICES)], f"Goal number {user_index + 1}"]
        for question, value in list(zip(welcome, values))[:answered]:
            minutes += 1
            session["_answers"].append(_answer(session, question, value, minutes))
        _finish(session, answered, len(welcome), minutes)
    nps = store.content_versions["flow-nps-v1"]["questions"]
    for user_index in range(0, len(DEMO_USERS), 2):
        session = _session(store, "flow-nps", user_index, 3)
        minutes = session["_minutes"] + 1
        session["_answers"].append(_answer(session, nps[0], (user_index * 3 + 4) % 11, minutes))
        if user_index < 4:
            minutes += 1
            reason = "Fast setup" if user_index else "Missing exports"
            session["_answers"].append(_answer(session, nps[1], reason, minutes))
        _finish(session, len(session["_answers"]), len(nps), minutes)


def _seed_launcher_sessions(store: Store) -> None:
    for user_index in (2, 5):
        session = _session(store, "launcher-help", user_index, 4)
        _finish(session, 0, 0, session["_minutes"] + 2)


def seed_content(store: Store) -> None:
    """Fill `store` with the deterministic demo content and sessions."""
    _seed_definitions(store)
    _seed_checklist_sessions(store)
    _seed_flow_sessions(store)
    _seed_launcher_sessions(store)
    for session in store.content_sessions.values():
        session.pop("_minutes")
