"""The Starlette app: the emulated API plus the inspection API under `/__emulator/`.

Every API request goes through, in order: auth (401) and `Userflow-Version` (400), the
rate safeguards (429), the hold gate, latency, routing (404/405), an injected fault, then the handler.
Requests rejected before admission (401, 400 version, 429) get no latency.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from userflow_assets.emulator.api import (
    ApiRequest,
    ApiResponse,
    resolve,
    split_raw_path,
)
from userflow_assets.emulator.config import EmulatorConfig
from userflow_assets.emulator.errors import ApiError, error_body, invalid
from userflow_assets.emulator.inspection import inspection_routes
from userflow_assets.emulator.runtime import Emulator, retry_after_header

API_VERSION = "2020-01-03"
RAW_SEND_KEY = "userflow_emulator.raw_send"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class EmulatorApp(Starlette):
    """Starlette app that also hands the server's own `send` to the API, which needs it
    to drop a connection (Starlette's middleware wraps `send`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


class _DropConnection(Exception):
    """Raised inside the pipeline to end the request with no response at all."""


async def drop_connection(raw_send: Send) -> None:
    """Close the connection without a response.

    Under uvicorn the server's `send` is a bound method of its RequestResponseCycle, whose
    transport is aborted. In-process (httpx's ASGI transport) there is no socket, so the
    error a client would get from a socket is raised instead.
    """
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        await asyncio.sleep(0)  # let the server see the connection lost before we return
        return
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


class ApiEndpoint:
    """Raw ASGI app serving the emulated Userflow API."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        segments = split_raw_path(scope.get("raw_path") or scope["path"].encode())
        resolved = resolve(segments)
        template = resolved[0].template if resolved else "<unknown>"
        path_id = resolved[1] if resolved else None
        outcome: dict[str, Any] = {"status": None, "fault": None, "id": path_id}
        try:
            response = await self._respond(request, segments, outcome)
        except _DropConnection:
            self.emulator.log.record(request.method, template, outcome["id"], outcome["status"], outcome["fault"])
            await drop_connection(scope.get(RAW_SEND_KEY, send))
            return
        self.emulator.log.record(request.method, template, outcome["id"], response.status_code, outcome["fault"])
        await response(scope, receive, send)

    async def _respond(self, request: Request, segments: tuple[str, ...], outcome: dict[str, Any]) -> Response:
        try:
            self._check_headers(request)
            self._admit()
        except ApiError as error:
            return _json_response(error.status, error.body(), error.headers)
        try:
            return await self._admitted(request, segments, outcome)
        finally:
            self.emulator.safeguards.release()

    def _check_headers(self, request: Request) -> None:
        expected = f"Bearer {self.emulator.config.api_key}"
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "missing or invalid API key")
        version = request.headers.get("userflow-version")
        if version is not None and version != API_VERSION:
            raise invalid(f"unsupported Userflow-Version {version!r}; the only version is {API_VERSION}")

    def _admit(self) -> None:
        emulator = self.emulator
        wait = emulator.safeguards.admit(emulator.config, emulator.monotonic())
        if wait is not None:
            raise self._rate_limited(wait)

    def _rate_limited(self, wait: float) -> ApiError:
        headers = {"Retry-After": retry_after_header(wait)} if self.emulator.config.retry_after else {}
        return ApiError(429, "too many requests; back off and retry", headers=headers)

    async def _admitted(self, request: Request, segments: tuple[str, ...], outcome: dict[str, Any]) -> Response:
        await self.emulator.gate.wait()
        delay = self.emulator.latency_s()
        if delay:
            await asyncio.sleep(delay)
        try:
            response = await self._dispatch(request, segments, outcome)
        except ApiError as error:
            response = ApiResponse(error.status, error.body(), error.headers)
        outcome["status"] = response.status
        if outcome["fault"] == "lost_response":
            raise _DropConnection
        return _json_response(response.status, response.body, response.headers)

    async def _dispatch(self, request: Request, segments: tuple[str, ...], outcome: dict[str, Any]) -> ApiResponse:
        resolved = resolve(segments)
        if resolved is None:
            raise ApiError(404, f"no such endpoint: {request.method} /{'/'.join(segments)}")
        route, path_id = resolved
        handler = route.handlers.get(request.method)
        if handler is None:
            allow = ", ".join(route.handlers)
            raise ApiError(405, f"{request.method} is not allowed on {route.template}", headers={"Allow": allow})
        try:
            raw_body = await request.body() if request.method in _BODY_METHODS else None
        except ClientDisconnect:
            raise _DropConnection from None  # the client gave up (e.g. timed out) mid-request: nothing written
        body = _parse_json(raw_body) if raw_body is not None else None
        if path_id is None and isinstance(body, dict) and isinstance(body.get("id"), str):
            outcome["id"] = body["id"]  # upserts carry the ID in the body
        fault = self.emulator.next_fault(request.method, segments)
        outcome["fault"] = fault
        self._raise_fault(fault)
        if isinstance(body, ApiError):
            raise body
        api_request = ApiRequest(request.method, segments, path_id, request.query_params, body)
        return handler(self.emulator, api_request)

    def _raise_fault(self, fault: str | None) -> None:
        if fault == "500":
            raise ApiError(500, "internal error (injected by the emulator)")
        if fault == "503":
            raise ApiError(503, "service unavailable (injected by the emulator)")
        if fault == "403":
            raise ApiError(403, "this API key may not do that (injected by the emulator)")
        if fault == "502":
            raise ApiError(502, "bad gateway (injected by the emulator)", code="bad_gateway")
        if fault == "504":
            raise ApiError(504, "gateway timeout (injected by the emulator)", code="gateway_timeout")
        if fault == "429":
            raise self._rate_limited(1.0)
        if fault == "drop_before":
            raise _DropConnection


def _parse_json(raw: bytes) -> Any:
    """The parsed body, or the 400 to answer (raised only after any injected fault)."""
    if not raw:
        return invalid("request body must be a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return invalid("request body is not valid JSON")


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown /__emulator/ routes and wrong methods there: still Userflow's error body.
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app; its state is `app.state.emulator` (an `Emulator`)."""
    emulator = Emulator(config or EmulatorConfig())
    app = EmulatorApp(
        routes=[
            Mount("/__emulator", routes=inspection_routes(emulator)),
            Mount("", app=ApiEndpoint(emulator)),
        ],
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.emulator = emulator
    return app
