"""The inspection API under `/__emulator/` (no auth, never rate-limited or faulted).

- `GET /__emulator/state[?counts_only=true]`: `{"users", "groups", "memberships", "events",
  "attribute_definitions", "event_definitions", "counts"}`; the objects in their API shapes
  (users and groups unexpanded), oldest first; `counts` also covers content and sessions.
- `GET /__emulator/requests[?limit=N][&in_flight_at_least=K]`: `{"total", "by_endpoint", "log",
  "in_flight", "peak_in_flight"}`; with `in_flight_at_least`, answered once K requests are in
  flight together (see hold, below), or after 20 s with the count as it is. `by_endpoint` maps `"METHOD /template"` (e.g. `GET /users/{id}`,
  `<unknown>` for unmatched paths) to counts per outcome: the status code as a string, or
  `drop_before` / `lost_response` for connections dropped by a fault. `log` holds the last
  N (default 100, at most 1000 kept) entries `{"method", "path", "id", "status", "fault",
  "time"}`; `status` is null for `drop_before`, and for `lost_response` the status of the
  write that was applied but never delivered.
- `POST /__emulator/reset`: clear users, groups, memberships, events, definitions, the
  request log, queued faults and the rate window; reseed content. Config is kept.
- `POST /__emulator/hold`: admitted API requests wait, in flight, before answering;
  `POST /__emulator/release` lets them go. Both answer `{"held": bool, "in_flight": N}`.
  A reset releases. For arranging overlap exactly (a stalled API, a concurrency test).
- `GET /__emulator/config`: the config (api_key shown as `"***"`).
- `POST /__emulator/config`: partial update, e.g. `{"rate_limit_requests": 50}`; answers
  the new config; 400 `invalid_params` on an unknown field or bad value (nothing changes).
- `POST /__emulator/faults`: `{"next": ["500", "503", "429", "403", "502", "504", "drop_before",
  "lost_response"], "path_prefix": "/users"?, "method": "POST"?}` queues outcomes, in
  order, for the next API requests that match (prefix by whole path segments, so `/users`
  matches `/users/x` but not `/users_x`). Queued faults apply after auth and the rate
  safeguards, before random faults. `GET` lists pending faults, `DELETE` clears them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from userflow_assets.emulator.errors import error_body
from userflow_assets.emulator.runtime import FAULT_KINDS, REQUEST_LOG_SIZE, Emulator
from userflow_assets.emulator.store import (
    attribute_definition_json,
    event_definition_json,
)
from userflow_assets.emulator.views import (
    event_json,
    group_json,
    membership_json,
    user_json,
)

IN_FLIGHT_WAIT_S = 20.0  # the longest `in_flight_at_least` waits (shorter than the tests' HTTP timeout)


def _bad_request(message: str) -> Response:
    return JSONResponse(error_body("invalid_params", message), status_code=400)


async def _json_object(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _counts(emulator: Emulator) -> dict[str, int]:
    store = emulator.store
    return {
        "users": len(store.users),
        "groups": len(store.groups),
        "memberships": len(store.all_memberships()),
        "events": len(store.events),
        "attribute_definitions": len(store.attribute_definitions),
        "event_definitions": len(store.event_definitions),
        "content": len(store.content),
        "content_versions": len(store.content_versions),
        "content_sessions": len(store.content_sessions),
    }


def state_json(emulator: Emulator, counts_only: bool = False) -> dict[str, Any]:
    """Everything written through the API, in API shapes."""
    if counts_only:
        return {"counts": _counts(emulator)}
    store = emulator.store
    definitions = sorted(store.attribute_definitions.values(), key=lambda d: d.seq)
    return {
        "users": [user_json(store, u) for u in store.users.values()],
        "groups": [group_json(store, g) for g in store.groups.values()],
        "memberships": [membership_json(store, m) for m in store.all_memberships()],
        "events": [event_json(e) for e in store.events.values()],
        "attribute_definitions": [attribute_definition_json(d) for d in definitions],
        "event_definitions": [event_definition_json(d) for d in store.event_definitions.values()],
        "counts": _counts(emulator),
    }


def inspection_routes(emulator: Emulator) -> list[Route]:
    """Routes mounted under `/__emulator`."""

    async def state(request: Request) -> Response:
        counts_only = request.query_params.get("counts_only", "").lower() in ("1", "true")
        return JSONResponse(state_json(emulator, counts_only))

    async def requests(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return _bad_request("limit must be an integer")
        if not 0 <= limit <= REQUEST_LOG_SIZE:
            return _bad_request(f"limit must be between 0 and {REQUEST_LOG_SIZE}")
        at_least = request.query_params.get("in_flight_at_least")
        if at_least is not None:
            if not at_least.isdigit():
                return _bad_request("in_flight_at_least must be a whole number")
            # Answered once that many are in flight, or after IN_FLIGHT_WAIT_S with the count as it is.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(emulator.safeguards.until_in_flight(int(at_least)), IN_FLIGHT_WAIT_S)
        body = emulator.log.to_json(limit)
        body["in_flight"] = emulator.safeguards.in_flight
        body["peak_in_flight"] = emulator.safeguards.peak_in_flight
        return JSONResponse(body)

    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True, "counts": _counts(emulator)})

    async def config(request: Request) -> Response:
        if request.method == "POST":
            changes = await _json_object(request)
            if changes is None:
                return _bad_request("body must be a JSON object of config fields")
            try:
                emulator.update_config(changes)
            except (ValueError, TypeError) as error:
                return _bad_request(str(error))
        return JSONResponse(emulator.config.public_dict())

    async def hold(request: Request) -> Response:
        if request.url.path.endswith("/hold"):
            emulator.gate.clear()
        else:
            emulator.gate.set()
        return JSONResponse({"held": not emulator.gate.is_set(), "in_flight": emulator.safeguards.in_flight})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            error = await _queue_faults(emulator, request)
            if error is not None:
                return error
        elif request.method == "DELETE":
            emulator.faults.clear()
        return JSONResponse({"pending": [fault.to_json() for fault in emulator.faults]})

    return [
        Route("/state", state, methods=["GET"]),
        Route("/requests", requests, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/config", config, methods=["GET", "POST"]),
        Route("/hold", hold, methods=["POST"]),
        Route("/release", hold, methods=["POST"]),
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
    ]


async def _queue_faults(emulator: Emulator, request: Request) -> Response | None:
    body = await _json_object(request)
    if body is None:
        return _bad_request("body must be a JSON object")
    unknown = sorted(set(body) - {"next", "path_prefix", "method"})
    if unknown:
        return _bad_request(f"unknown parameter: {unknown[0]}")
    kinds = body.get("next")
    if not isinstance(kinds, list) or not kinds or any(kind not in FAULT_KINDS for kind in kinds):
        return _bad_request(f"next must be a non-empty list of: {', '.join(FAULT_KINDS)}")
    prefix = body.get("path_prefix")
    if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
        return _bad_request("path_prefix must be a path starting with /")
    method = body.get("method")
    if method is not None and method not in ("GET", "POST", "DELETE"):
        return _bad_request("method must be GET, POST or DELETE")
    # Same segment rules as requests: the prefix may be percent-encoded per segment.
    segments = tuple(unquote(part) for part in prefix.strip("/").split("/")) if prefix and prefix != "/" else None
    emulator.queue_faults(list(kinds), segments, method)
    return None
