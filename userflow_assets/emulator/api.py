"""The emulated Userflow endpoints: routing on the raw path, request parsing, handlers.

Handlers are synchronous: each runs to completion on the event loop, so a request is
applied atomically, and they validate everything before they write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

from starlette.datastructures import QueryParams

from userflow_assets.emulator.attributes import Change, parse_change, parse_datetime
from userflow_assets.emulator.errors import ApiError, invalid, not_found
from userflow_assets.emulator.runtime import Emulator
from userflow_assets.emulator.store import (
    ATTRIBUTE_SCOPES,
    MembershipWrite,
    Store,
    attribute_definition_json,
    check_scope,
    event_definition_json,
    format_time,
)
from userflow_assets.emulator.views import (
    CONTENT_EXPANDS,
    GROUP_EXPANDS,
    MEMBERSHIP_EXPANDS,
    SESSION_EXPANDS,
    USER_EXPANDS,
    content_json,
    event_json,
    group_json,
    membership_json,
    session_json,
    user_json,
    version_json,
)

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_\-. ]+$")
_LIST_PARAMS = frozenset({"limit", "starting_after", "order_by", "order_by[]", "expand", "expand[]"})
_EXPAND_PARAMS = frozenset({"expand", "expand[]"})


@dataclass(frozen=True)
class ApiRequest:
    method: str
    segments: tuple[str, ...]
    path_id: str | None
    query: QueryParams
    body: Any = None


@dataclass
class ApiResponse:
    status: int
    body: Any  # None: no body (204)
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Emulator, ApiRequest], ApiResponse]


@dataclass(frozen=True)
class Route:
    template: str
    pattern: tuple[str | None, ...]  # None marks the `{id}` segment
    handlers: dict[str, Handler]

    def match(self, segments: tuple[str, ...]) -> str | None | bool:
        """False if no match; else the `{id}` value (or None for routes without one)."""
        if len(segments) != len(self.pattern):
            return False
        path_id: str | None = None
        for part, expected in zip(segments, self.pattern):
            if expected is None:
                if part == "":
                    return False
                path_id = part
            elif part != expected:
                return False
        return path_id


def split_raw_path(raw_path: bytes) -> tuple[str, ...]:
    """Path segments, each percent-decoded on its own, so `a%2Fb` stays one segment."""
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    return tuple(unquote(part, errors="replace") for part in path.strip("/").split("/"))


# -- request parsing -------------------------------------------------------------------


def check_params(query: QueryParams, allowed: Iterable[str]) -> None:
    unknown = sorted(set(query.keys()) - set(allowed))
    if unknown:
        raise invalid(f"unknown query parameter: {unknown[0]}")


def parse_expand(query: QueryParams, allowed: frozenset[str]) -> frozenset[str]:
    values = [v for key in ("expand", "expand[]") for raw in query.getlist(key) for v in raw.split(",") if v]
    for value in values:
        if value not in allowed:
            raise invalid(f"expand: cannot expand {value!r}; allowed: {', '.join(sorted(allowed))}")
    return frozenset(values)


def require_object(body: Any, where: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(f"{where} must be a JSON object")
    return body


def check_keys(obj: dict[str, Any], allowed: Iterable[str], where: str = "") -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise invalid(f"unknown parameter: {where}{unknown[0]}")


def require_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"{where} must be a non-empty string")
    return value


def parse_attributes(raw: Any, where: str, operations: tuple[str, ...] | None = None) -> dict[str, Change]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid(f"{where}attributes must be an object")
    changes: dict[str, Change] = {}
    for name, value in raw.items():
        if not name:
            raise invalid(f"{where}attributes: attribute names must be non-empty")
        try:
            changes[name] = parse_change(name, value, **({"operations": operations} if operations else {}))
        except ApiError as error:
            raise invalid(f"{where}{error.message}") from None
    return changes


def _group_ref(raw: Any, where: str) -> tuple[str, dict[str, Change]]:
    obj = require_object(raw, where)
    check_keys(obj, ("id", "attributes"), f"{where}.")
    return require_id(obj.get("id"), f"{where}.id"), parse_attributes(obj.get("attributes"), f"{where}.")


def parse_membership_writes(body: dict[str, Any]) -> list[MembershipWrite] | None:
    groups, memberships = body.get("groups"), body.get("memberships")
    if groups is not None and memberships is not None:
        raise invalid("groups and memberships cannot both be given in one request")
    if groups is not None:
        if not isinstance(groups, list):
            raise invalid("groups must be a list")
        refs = [_group_ref(item, f"groups[{i}]") for i, item in enumerate(groups)]
        return [MembershipWrite(gid, changes, {}) for gid, changes in refs]
    if memberships is not None:
        if not isinstance(memberships, list):
            raise invalid("memberships must be a list")
        return [_membership_write(item, f"memberships[{i}]") for i, item in enumerate(memberships)]
    return None


def _membership_write(raw: Any, where: str) -> MembershipWrite:
    obj = require_object(raw, where)
    check_keys(obj, ("group", "attributes"), f"{where}.")
    group_id, group_changes = _group_ref(obj.get("group"), f"{where}.group")
    return MembershipWrite(group_id, group_changes, parse_attributes(obj.get("attributes"), f"{where}."))


# -- lists -----------------------------------------------------------------------------


def parse_limit(query: QueryParams) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def parse_descending(query: QueryParams) -> bool:
    values = query.getlist("order_by") + query.getlist("order_by[]")
    for value in values:
        if value not in ("created_at", "-created_at"):
            raise invalid("order_by must be created_at or -created_at")
    return bool(values) and values[-1] == "-created_at"


def paginate(
    request: ApiRequest,
    items: list[T],
    key: Callable[[T], str],
    render: Callable[[T], dict[str, Any]],
) -> ApiResponse:
    """The list envelope over `items` (given oldest first, insertion order on ties).

    `-created_at` reverses the whole order (newest first, later insertions first).
    A `starting_after` that is not in the (filtered) list is a 400, as for a deleted cursor.
    """
    query = request.query
    limit = parse_limit(query)
    if parse_descending(query):
        items = items[::-1]
    start = 0
    cursor = query.get("starting_after")
    if cursor is not None:
        keys = [key(item) for item in items]
        try:
            start = keys.index(cursor) + 1
        except ValueError:
            raise invalid(f"starting_after: no object with id {cursor!r} in this list") from None
    page = items[start : start + limit]
    has_more = start + limit < len(items)
    url = "/" + "/".join(request.segments)
    next_url = None
    if has_more:
        rest = [(k, v) for k, v in query.multi_items() if k not in ("limit", "starting_after")]
        params = [("limit", str(limit)), ("starting_after", key(page[-1])), *rest]
        next_url = f"{url}?{urlencode(params, quote_via=quote)}"
    return ApiResponse(
        200,
        {
            "object": "list",
            "data": [render(item) for item in page],
            "has_more": has_more,
            "url": url,
            "next_page_url": next_url,
        },
    )


def delete_response(emulator: Emulator, body: dict[str, Any]) -> ApiResponse:
    if emulator.config.delete_status == 204:
        return ApiResponse(204, None)
    return ApiResponse(200, {"object": "deleted", **body})


# -- users and groups ------------------------------------------------------------------


def list_users(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS | {"email"})
    expand = parse_expand(request.query, USER_EXPANDS)
    store = emulator.store
    users = list(store.users.values())
    email = request.query.get("email")
    if email is not None:
        users = [u for u in users if u.attributes.get("email") == email]
    return paginate(request, users, lambda u: u.id, lambda u: user_json(store, u, expand))


def upsert_user(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _EXPAND_PARAMS)
    expand = parse_expand(request.query, USER_EXPANDS)
    body = require_object(request.body)
    check_keys(body, ("id", "attributes", "groups", "memberships", "prune_memberships"))
    user_id = require_id(body.get("id"), "id")
    changes = parse_attributes(body.get("attributes"), "")
    writes = parse_membership_writes(body)
    prune = body.get("prune_memberships", False)
    if not isinstance(prune, bool):
        raise invalid("prune_memberships must be a boolean")
    store = emulator.store
    user = store.upsert_user(user_id, changes, writes, prune)
    return ApiResponse(200, user_json(store, user, expand))


def get_user(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _EXPAND_PARAMS)
    expand = parse_expand(request.query, USER_EXPANDS)
    user = emulator.store.users.get(request.path_id or "")
    if user is None:
        raise not_found(f"no user with id {request.path_id!r}")
    return ApiResponse(200, user_json(emulator.store, user, expand))


def delete_user(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ())
    if not emulator.store.delete_user(request.path_id or ""):
        raise not_found(f"no user with id {request.path_id!r}")
    return delete_response(emulator, {"id": request.path_id})


def list_groups(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS)
    expand = parse_expand(request.query, GROUP_EXPANDS)
    store = emulator.store
    return paginate(request, list(store.groups.values()), lambda g: g.id, lambda g: group_json(store, g, expand))


def upsert_group(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _EXPAND_PARAMS)
    expand = parse_expand(request.query, GROUP_EXPANDS)
    body = require_object(request.body)
    check_keys(body, ("id", "attributes"))
    group_id = require_id(body.get("id"), "id")
    changes = parse_attributes(body.get("attributes"), "")
    group = emulator.store.upsert_group(group_id, changes)
    return ApiResponse(200, group_json(emulator.store, group, expand))


def get_group(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _EXPAND_PARAMS)
    expand = parse_expand(request.query, GROUP_EXPANDS)
    group = emulator.store.groups.get(request.path_id or "")
    if group is None:
        raise not_found(f"no group with id {request.path_id!r}")
    return ApiResponse(200, group_json(emulator.store, group, expand))


def delete_group(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ())
    if not emulator.store.delete_group(request.path_id or ""):
        raise not_found(f"no group with id {request.path_id!r}")
    return delete_response(emulator, {"id": request.path_id})


def _membership_key(user_id: str, group_id: str) -> str:
    # Memberships have no ID of their own: the cursor is both IDs, each percent-encoded.
    return f"{quote(user_id, safe='')}:{quote(group_id, safe='')}"


def list_memberships(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS | {"user_id", "group_id"})
    expand = parse_expand(request.query, MEMBERSHIP_EXPANDS)
    store = emulator.store
    memberships = store.all_memberships()
    for name in ("user_id", "group_id"):
        wanted = request.query.get(name)
        if wanted is not None:
            memberships = [m for m in memberships if getattr(m, name) == wanted]
    return paginate(
        request,
        memberships,
        lambda m: _membership_key(m.user_id, m.group_id),
        lambda m: membership_json(store, m, with_group="group" in expand, with_user="user" in expand),
    )


def delete_membership(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ("user_id", "group_id"))
    user_id = require_id(request.query.get("user_id"), "user_id")
    group_id = require_id(request.query.get("group_id"), "group_id")
    if not emulator.store.remove_membership(user_id, group_id):
        raise not_found(f"user {user_id!r} is not a member of group {group_id!r}")
    return delete_response(emulator, {"user_id": user_id, "group_id": group_id})


# -- events ----------------------------------------------------------------------------


def create_event(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ())
    body = require_object(request.body)
    check_keys(body, ("name", "user_id", "group_id", "attributes", "time"))
    name = body.get("name")
    if not isinstance(name, str) or not EVENT_NAME_RE.match(name):
        raise invalid("name must be a non-empty string of letters, digits, _, -, . and spaces")
    user_id = body.get("user_id")
    group_id = body.get("group_id")
    if user_id is None and group_id is None:
        raise invalid("at least one of user_id and group_id is required")
    if user_id is not None:
        require_id(user_id, "user_id")
    if group_id is not None:
        require_id(group_id, "group_id")
    changes = parse_attributes(body.get("attributes"), "", operations=("set",))
    time = body.get("time")
    parsed = parse_datetime(time) if isinstance(time, str) else None
    if time is not None and parsed is None:
        raise invalid("time must be an ISO 8601 date-time")
    event = emulator.store.record_event(name, user_id, group_id, changes, format_time(parsed) if parsed else None)
    return ApiResponse(200, event_json(event))


def list_events(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS | {"user_id", "group_id", "name"})
    parse_expand(request.query, frozenset())
    events = list(emulator.store.events.values())
    for name in ("user_id", "group_id", "name"):
        wanted = request.query.get(name)
        if wanted is not None:
            events = [e for e in events if getattr(e, name) == wanted]
    return paginate(request, events, lambda e: e.id, event_json)


def get_event(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ())
    event = emulator.store.events.get(request.path_id or "")
    if event is None:
        raise not_found(f"no event with id {request.path_id!r}")
    return ApiResponse(200, event_json(event))


# -- definitions -----------------------------------------------------------------------


def list_attribute_definitions(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    """Without `scope`, every scope is listed and the cursor is `scope:name`."""
    check_params(request.query, _LIST_PARAMS | {"scope"})
    parse_expand(request.query, frozenset())
    scope = request.query.get("scope")
    if scope is not None:
        check_scope(scope)
    definitions = sorted(emulator.store.attribute_definitions.values(), key=lambda d: d.seq)
    if scope is not None:
        definitions = [d for d in definitions if d.scope == scope]
    else:
        definitions.sort(key=lambda d: ATTRIBUTE_SCOPES.index(d.scope))
    key = (lambda d: d.name) if scope is not None else (lambda d: f"{d.scope}:{d.name}")
    return paginate(request, definitions, key, attribute_definition_json)


def list_event_definitions(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS)
    parse_expand(request.query, frozenset())
    definitions = list(emulator.store.event_definitions.values())
    return paginate(request, definitions, lambda d: d.name, event_definition_json)


# -- content ---------------------------------------------------------------------------


def _sorted_by_created(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item["created_at"])  # stable: insertion order on ties


def list_content(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS | {"type"})
    expand = parse_expand(request.query, CONTENT_EXPANDS)
    store = emulator.store
    items = _sorted_by_created(store.content.values())
    ctype = request.query.get("type")
    if ctype is not None:
        if ctype not in ("flow", "checklist", "launcher"):
            raise invalid("type must be flow, checklist or launcher")
        items = [c for c in items if c["type"] == ctype]
    return paginate(request, items, lambda c: c["id"], lambda c: content_json(store, c, expand))


def get_content(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    """A single content object always carries its draft and published version objects."""
    check_params(request.query, _EXPAND_PARAMS)
    parse_expand(request.query, CONTENT_EXPANDS)
    content = emulator.store.content.get(request.path_id or "")
    if content is None:
        raise not_found(f"no content with id {request.path_id!r}")
    return ApiResponse(200, content_json(emulator.store, content, CONTENT_EXPANDS))


def list_content_versions(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS | {"content_id"})
    parse_expand(request.query, frozenset())
    items = _sorted_by_created(emulator.store.content_versions.values())
    content_id = request.query.get("content_id")
    if content_id is not None:
        items = [v for v in items if v["content_id"] == content_id]
    return paginate(request, items, lambda v: v["id"], version_json)


def get_content_version(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ())
    version = emulator.store.content_versions.get(request.path_id or "")
    if version is None:
        raise not_found(f"no content version with id {request.path_id!r}")
    return ApiResponse(200, version_json(version))


def list_content_sessions(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _LIST_PARAMS | {"content_id", "user_id", "version_id"})
    expand = parse_expand(request.query, SESSION_EXPANDS)
    store = emulator.store
    items = _sorted_by_created(store.content_sessions.values())
    for name in ("content_id", "user_id", "version_id"):
        wanted = request.query.get(name)
        if wanted is not None:
            items = [s for s in items if s[name] == wanted]
    return paginate(request, items, lambda s: s["id"], lambda s: session_json(store, s, expand))


def _session_or_404(store: Store, session_id: str | None) -> dict[str, Any]:
    session = store.content_sessions.get(session_id or "")
    if session is None:
        raise not_found(f"no content session with id {session_id!r}")
    return session


def get_content_session(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, _EXPAND_PARAMS)
    expand = parse_expand(request.query, SESSION_EXPANDS)
    session = _session_or_404(emulator.store, request.path_id)
    return ApiResponse(200, session_json(emulator.store, session, expand))


def delete_content_session(emulator: Emulator, request: ApiRequest) -> ApiResponse:
    check_params(request.query, ())
    session = _session_or_404(emulator.store, request.path_id)
    del emulator.store.content_sessions[session["id"]]
    return delete_response(emulator, {"id": session["id"]})


def _route(template: str, **handlers: Handler) -> Route:
    pattern = tuple(None if part == "{id}" else part for part in template.strip("/").split("/"))
    return Route(template, pattern, handlers)


ROUTES: tuple[Route, ...] = (
    _route("/users", GET=list_users, POST=upsert_user),
    _route("/users/{id}", GET=get_user, DELETE=delete_user),
    _route("/groups", GET=list_groups, POST=upsert_group),
    _route("/groups/{id}", GET=get_group, DELETE=delete_group),
    _route("/group_memberships", GET=list_memberships, DELETE=delete_membership),
    _route("/events", GET=list_events, POST=create_event),
    _route("/events/{id}", GET=get_event),
    _route("/attribute_definitions", GET=list_attribute_definitions),
    _route("/event_definitions", GET=list_event_definitions),
    _route("/content", GET=list_content),
    _route("/content/{id}", GET=get_content),
    _route("/content_versions", GET=list_content_versions),
    _route("/content_versions/{id}", GET=get_content_version),
    _route("/content_sessions", GET=list_content_sessions),
    _route("/content_sessions/{id}", GET=get_content_session, DELETE=delete_content_session),
)


def resolve(segments: tuple[str, ...]) -> tuple[Route, str | None] | None:
    """The route and its `{id}` for these decoded segments, or None (404)."""
    for route in ROUTES:
        matched = route.match(segments)
        if matched is not False:
            return route, matched if isinstance(matched, str) else None
    return None
