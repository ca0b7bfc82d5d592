"""The async Userflow client: every API action through one shared rate budget, with retries.

Use it as an async context manager::

    async with UserflowClient(api_key, base_url=...) as client:
        await client.upsert_user("u1", {"name": "Jane"})

Every request goes through the process-wide limiter of its key, is retried with exponential
backoff and jitter on 429, 5xx (500/502/503/504), connection errors and timeouts, and ends either
in a result or in a typed `UserflowError`. `POST /events` is not idempotent: an outcome that may
have been applied is raised as `UserflowAmbiguousError` unless the caller asks for
at-least-once delivery.
"""

from __future__ import annotations

import email.utils
import enum
import json
import logging
import random
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, aclosing
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar, cast
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from userflow_assets.client.bulk import BulkResult, run_bulk
from userflow_assets.client.errors import (
    UserflowAmbiguousError,
    UserflowAPIError,
    UserflowBadRequestError,
    UserflowError,
    UserflowPaginationError,
    UserflowRateLimitError,
    UserflowServerError,
    UserflowTransportError,
    error_class_for_status,
)
from userflow_assets.client.ratelimit import AdaptiveRateLimiter, Ticket, shared_limiter
from userflow_assets.client.stats import ClientStats
from userflow_assets.client.types import (
    AttributeDefinition,
    Attributes,
    AttributeScope,
    ContentObject,
    ContentSessionObject,
    ContentVersionObject,
    EventDefinition,
    EventObject,
    GroupObject,
    GroupRef,
    MembershipRef,
    UserObject,
)
from userflow_assets.redaction import (
    fingerprint,
    install_redacting_filter,
    redact,
    register_secret,
)

DEFAULT_BASE_URL = "https://api.userflow.com"
EU_BASE_URL = "https://api.eu.userflow.com"
USERFLOW_VERSION = "2020-01-03"
PAGE_SIZE = 100
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A gateway answering for Userflow may have passed the request on before giving up.
AMBIGUOUS_EVENT_STATUSES = frozenset({502, 504})
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Errors raised before any request byte can have reached the server: always safe to repeat.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_CONFIG_ERRORS = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)

logger = logging.getLogger("userflow_assets.client")

T = TypeVar("T")
R = TypeVar("R")


class EventDelivery(enum.StrEnum):
    """What to do when an event's outcome is unknown (sent, but no answer came back)."""

    AT_MOST_ONCE = "at_most_once"  # raise UserflowAmbiguousError; never risk a duplicate
    AT_LEAST_ONCE = "at_least_once"  # retry; risk a duplicate, never a loss


class _Secret:
    """Holds the key; shows only a fingerprint."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<secret {fingerprint(self._value)}>"

    __str__ = __repr__


def encode_id(value: str) -> str:
    """One path segment naming exactly `value`: `/`, `?`, `#`, `%`, spaces and dots included."""
    if not isinstance(value, str) or value == "":
        raise ValueError("IDs must be non-empty strings")
    encoded = quote(value, safe="")
    if encoded in (".", ".."):  # dot segments would be resolved away by URL normalisation
        encoded = encoded.replace(".", "%2E")
    return encoded


def check_base_url(base_url: str, *, allow_insecure_http: bool = False) -> str:
    """The base URL without a trailing slash; plain http only for loopback or when allowed."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not allow_insecure_http and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError("base_url must use https (plain http is allowed only for loopback)")
    return base_url.rstrip("/")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    """Userflow's error code and message from a response, tolerating any body."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code is not None else None), redact(str(message or response.reason_phrase))
    text = response.text[:300].strip() if response.content else ""
    return None, redact(text or response.reason_phrase or f"HTTP {response.status_code}")


class UserflowClient:
    """Async client for the Userflow REST API (see the module docstring)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        requests_per_minute: float | None = None,
        max_concurrency: int = 16,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 6,
        max_retry_time_s: float = 120.0,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 20.0,
        allow_insecure_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: AdaptiveRateLimiter | None = None,
        stats: ClientStats | None = None,
        lease: Callable[[], AbstractAsyncContextManager[None] | None] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("a Userflow API key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        register_secret(api_key)
        install_redacting_filter()
        self._key = _Secret(api_key)
        self.base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self.max_concurrency = max_concurrency
        self.limiter = limiter or shared_limiter(
            self.base_url,
            fingerprint(api_key),
            requests_per_minute=requests_per_minute,
            max_concurrency=max_concurrency,
        )
        self.stats = stats or ClientStats()
        self._timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=connect_timeout_s
        )
        self._max_attempts = max_attempts
        self._max_retry_time_s = max_retry_time_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._lease_of = lease  # the key's pool lease (client/lease.py), held while open
        self._lease: AbstractAsyncContextManager[None] | None = None

    def __repr__(self) -> str:
        return f"UserflowClient(base_url={self.base_url!r}, key={fingerprint(self._key.reveal())})"

    @property
    def key_fingerprint(self) -> str:
        """A short, non-reversible name of the key, safe to show."""
        return fingerprint(self._key.reveal())

    @property
    def limits_target(self) -> str:
        """What the learned rate limits belong to: the base URL and the key's fingerprint."""
        return f"{self.base_url} {self.key_fingerprint}"

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._lease_of is not None and (held := self._lease_of()) is not None:
            await held.__aenter__()
            self._lease = held
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self._key.reveal()}",
                "Userflow-Version": USERFLOW_VERSION,
                "Accept": "application/json",
            },
            timeout=self._timeout,
            transport=self._transport,
            verify=True,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
            ),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._lease is not None:
            held, self._lease = self._lease, None
            await held.__aexit__(None, None, None)

    def metadata(self) -> dict[str, int | float]:
        """Counters of this client's run and the adapted rate, for asset metadata."""
        return self.stats.metadata(self.limiter)

    # -- users ---------------------------------------------------------------------------

    async def upsert_user(
        self,
        user_id: str,
        attributes: Attributes | None = None,
        *,
        groups: Sequence[GroupRef] | None = None,
        memberships: Sequence[MembershipRef] | None = None,
        prune_memberships: bool | None = None,
    ) -> UserObject:
        """Create or merge a user (attributes left out are kept; `None` removes one)."""
        if groups is not None and memberships is not None:
            raise ValueError("pass groups or memberships, not both")
        body: dict[str, Any] = {"id": _require_id(user_id)}
        if attributes is not None:
            body["attributes"] = attributes
        if groups is not None:
            body["groups"] = list(groups)
        if memberships is not None:
            body["memberships"] = list(memberships)
        if prune_memberships is not None:
            body["prune_memberships"] = prune_memberships
        return cast(UserObject, await self._json("POST", "/users", body=body, record_id=user_id))

    async def get_user(self, user_id: str, *, expand: Iterable[str] = ()) -> UserObject:
        path = f"/users/{encode_id(user_id)}"
        return cast(UserObject, await self._json("GET", path, params=_expand(expand), record_id=user_id))

    async def list_users(
        self, *, email: str | None = None, expand: Iterable[str] = (), order_by: str | None = None
    ) -> AsyncIterator[UserObject]:
        params = {**_expand(expand), **_optional(email=email, order_by=order_by)}
        async for item in self.paginate("/users", params):
            yield cast(UserObject, item)

    async def find_users_by_email(self, email: str) -> list[UserObject]:
        """Every user whose `email` attribute is exactly `email` (IDs, not emails, are unique)."""
        return [user async for user in self.list_users(email=email)]

    async def find_user_by_email(self, email: str) -> UserObject | None:
        """The first user with this email, or None."""
        async with aclosing(self.list_users(email=email)) as users:
            async for user in users:
                return user
        return None

    async def delete_user(self, user_id: str) -> bool:
        """Delete a user. False if there was no such user (already deleted counts as done)."""
        return await self._delete(f"/users/{encode_id(user_id)}", record_id=user_id)

    # -- groups --------------------------------------------------------------------------

    async def upsert_group(self, group_id: str, attributes: Attributes | None = None) -> GroupObject:
        body: dict[str, Any] = {"id": _require_id(group_id)}
        if attributes is not None:
            body["attributes"] = attributes
        return cast(GroupObject, await self._json("POST", "/groups", body=body, record_id=group_id))

    async def get_group(self, group_id: str, *, expand: Iterable[str] = ()) -> GroupObject:
        path = f"/groups/{encode_id(group_id)}"
        return cast(GroupObject, await self._json("GET", path, params=_expand(expand), record_id=group_id))

    async def list_groups(
        self, *, expand: Iterable[str] = (), order_by: str | None = None
    ) -> AsyncIterator[GroupObject]:
        params = {**_expand(expand), **_optional(order_by=order_by)}
        async for item in self.paginate("/groups", params):
            yield cast(GroupObject, item)

    async def delete_group(self, group_id: str) -> bool:
        """Delete a group (its members stay). False if there was no such group."""
        return await self._delete(f"/groups/{encode_id(group_id)}", record_id=group_id)

    async def remove_membership(self, user_id: str, group_id: str) -> bool:
        """Remove one user from one group. False if the user was not a member."""
        params = {"user_id": _require_id(user_id), "group_id": _require_id(group_id)}
        return await self._delete("/group_memberships", params=params, record_id=f"{user_id}:{group_id}")

    async def list_memberships(
        self,
        *,
        user_id: str | None = None,
        group_id: str | None = None,
        expand: Iterable[str] = (),
    ) -> AsyncIterator[dict[str, Any]]:
        params = {**_expand(expand), **_optional(user_id=user_id, group_id=group_id)}
        async for item in self.paginate("/group_memberships", params):
            yield item

    # -- events --------------------------------------------------------------------------

    async def track_event(
        self,
        name: str,
        *,
        user_id: str | None = None,
        group_id: str | None = None,
        attributes: Attributes | None = None,
        time: str | datetime | None = None,
        delivery: EventDelivery = EventDelivery.AT_MOST_ONCE,
    ) -> EventObject:
        """Record an event. Not idempotent: see `EventDelivery` for the unknown-outcome policy."""
        if not name:
            raise ValueError("an event needs a name")
        if user_id is None and group_id is None:
            raise ValueError("an event needs a user_id or a group_id")
        body: dict[str, Any] = {"name": name}
        body.update(_optional(user_id=user_id, group_id=group_id, attributes=attributes))
        if time is not None:
            body["time"] = time.isoformat() if isinstance(time, datetime) else time
        record_id = user_id if user_id is not None else group_id
        return cast(
            EventObject,
            await self._json("POST", "/events", body=body, record_id=record_id, delivery=delivery),
        )

    async def list_events(
        self, *, user_id: str | None = None, group_id: str | None = None, name: str | None = None
    ) -> AsyncIterator[EventObject]:
        params = _optional(user_id=user_id, group_id=group_id, name=name)
        async for item in self.paginate("/events", params):
            yield cast(EventObject, item)

    # -- definitions ---------------------------------------------------------------------

    async def list_attribute_definitions(
        self, *, scope: AttributeScope | None = None
    ) -> AsyncIterator[AttributeDefinition]:
        async for item in self.paginate("/attribute_definitions", _optional(scope=scope)):
            yield cast(AttributeDefinition, item)

    async def list_event_definitions(self) -> AsyncIterator[EventDefinition]:
        async for item in self.paginate("/event_definitions", {}):
            yield cast(EventDefinition, item)

    # -- content -------------------------------------------------------------------------

    async def list_content(
        self, *, type: str | None = None, expand: Iterable[str] = ()
    ) -> AsyncIterator[ContentObject]:
        async for item in self.paginate("/content", {**_expand(expand), **_optional(type=type)}):
            yield item

    async def get_content(self, content_id: str, *, expand: Iterable[str] = ()) -> ContentObject:
        path = f"/content/{encode_id(content_id)}"
        return await self._json("GET", path, params=_expand(expand), record_id=content_id)

    async def list_content_versions(
        self, *, content_id: str | None = None
    ) -> AsyncIterator[ContentVersionObject]:
        async for item in self.paginate("/content_versions", _optional(content_id=content_id)):
            yield item

    async def get_content_version(self, version_id: str) -> ContentVersionObject:
        path = f"/content_versions/{encode_id(version_id)}"
        return await self._json("GET", path, record_id=version_id)

    async def list_content_sessions(
        self,
        *,
        content_id: str | None = None,
        user_id: str | None = None,
        version_id: str | None = None,
        expand: Iterable[str] = (),
    ) -> AsyncIterator[ContentSessionObject]:
        params = {
            **_expand(expand),
            **_optional(content_id=content_id, user_id=user_id, version_id=version_id),
        }
        async for item in self.paginate("/content_sessions", params):
            yield item

    async def get_content_session(
        self, session_id: str, *, expand: Iterable[str] = ()
    ) -> ContentSessionObject:
        path = f"/content_sessions/{encode_id(session_id)}"
        return await self._json("GET", path, params=_expand(expand), record_id=session_id)

    async def delete_content_session(self, session_id: str) -> bool:
        return await self._delete(f"/content_sessions/{encode_id(session_id)}", record_id=session_id)

    # -- bulk ----------------------------------------------------------------------------

    def bulk(
        self,
        items: Iterable[T] | AsyncIterator[T],
        func: Callable[[T], Awaitable[R]],
        *,
        total: int | None = None,
        label: str = "records",
        concurrency: int | None = None,
        progress_interval_s: float = 5.0,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> AsyncIterator[BulkResult[T, R]]:
        """Run `func` over `items` with bounded concurrency; yields one result per item.

        See `run_bulk`; `concurrency` defaults to the client's `max_concurrency`.
        """
        return run_bulk(
            items,
            func,
            concurrency=concurrency or self.max_concurrency,
            total=total,
            label=label,
            progress_interval_s=progress_interval_s,
            limiter=self.limiter,
            log=log,
        )

    # -- lists ---------------------------------------------------------------------------

    async def paginate(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list endpoint, following `starting_after` 100 at a time.

        A `starting_after` naming an object deleted mid-walk answers 400; the walk then goes
        back to the last cursor that still works and skips items it already yielded.
        """
        seen: set[str] = set()
        good: list[str | None] = [None]  # cursors that returned a page, oldest first
        failed: set[str] = set()
        cursor: str | None = None
        while True:
            query = {**params, "limit": PAGE_SIZE}
            if cursor is not None:
                query["starting_after"] = cursor
            try:
                page = await self._json("GET", path, params=query)
            except UserflowBadRequestError:
                if cursor is None or cursor in failed:
                    raise
                failed.add(cursor)
                if cursor == good[-1]:
                    good.pop()  # a cursor that once worked is gone too: go back further
                cursor = good[-1]
                logger.info("list %s: cursor gone, resuming from an earlier page", path)
                continue
            if cursor != good[-1]:
                good.append(cursor)
            items = page.get("data") or []
            for item in items:
                key = _item_key(item)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                yield item
            cursor = _next_cursor(page, items)
            if cursor is None:
                return

    # -- requests ------------------------------------------------------------------------

    async def _delete(
        self, path: str, *, params: Mapping[str, Any] | None = None, record_id: str | None = None
    ) -> bool:
        # 404 means already gone: done, not a failure. 200 and 204 both mean deleted.
        response = await self._send(
            "DELETE", path, params=params, record_id=record_id, accept=frozenset({404})
        )
        return response.status_code != 404

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        record_id: str | None = None,
        delivery: EventDelivery | None = None,
    ) -> dict[str, Any]:
        response = await self._send(
            method, path, params=params, body=body, record_id=record_id, delivery=delivery
        )
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            raise UserflowAPIError(
                "response is not valid JSON",
                status=response.status_code,
                record_id=record_id,
                method=method,
                path=path,
            ) from None
        if not isinstance(data, dict):
            raise UserflowAPIError(
                "response is not a JSON object", status=response.status_code, record_id=record_id
            )
        return data

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        record_id: str | None = None,
        delivery: EventDelivery | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """One logical request: attempts through the limiter, retried per the rules above.

        `delivery` is set only for non-idempotent requests; `accept` lists error statuses that
        are answers, not failures.
        """
        content = _encode_body(body, method=method, path=path, record_id=record_id)
        unanswered = 0  # attempts that may have been applied without an answer
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts) | stop_before_delay(self._max_retry_time_s),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _should_retry(exc, delivery)),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        response = await self._attempt(
                            method, path, params, content, record_id, delivery is not None, accept
                        )
                    except UserflowAmbiguousError as exc:
                        unanswered += 1
                        exc.unanswered = unanswered
                        raise
                    if unanswered:
                        # Each unanswered attempt may have been applied: that many copies at most.
                        self.stats.count("possible_duplicates", unanswered)
                    return response
        except UserflowError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            self.stats.count("failures")
            if unanswered and not isinstance(exc, UserflowAmbiguousError):
                # An earlier attempt may have been applied: the whole outcome is unknown.
                self.stats.count("ambiguous")
                ambiguous = UserflowAmbiguousError(
                    f"an earlier attempt may have been applied; last error: {exc.message}",
                    status=exc.status,
                    code=exc.code,
                    record_id=record_id,
                    method=method,
                    path=path,
                    attempts=exc.attempts,
                )
                ambiguous.unanswered = unanswered
                raise ambiguous from exc
            if isinstance(exc, UserflowAmbiguousError):
                self.stats.count("ambiguous")
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        record_id: str | None,
        non_idempotent: bool,
        accept: frozenset[int],
    ) -> httpx.Response:
        http = self._require_open()
        headers = {"Content-Type": "application/json"} if content is not None else None
        ticket = await self.limiter.acquire()
        try:
            self.stats.count("requests")
            response = await http.request(method, path, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:
            self.stats.count("transport_errors")
            self.stats.count_outcome("transport_error")
            raise _transport_error(exc, method, path, record_id, non_idempotent) from exc
        finally:
            self.limiter.release()
        if response.status_code in accept:
            self.stats.count_outcome(str(response.status_code))
            self.limiter.on_success(ticket)
            return response
        return self._check(response, ticket, method, path, record_id, non_idempotent)

    def _check(
        self,
        response: httpx.Response,
        ticket: Ticket,
        method: str,
        path: str,
        record_id: str | None,
        non_idempotent: bool,
    ) -> httpx.Response:
        status = response.status_code
        self.stats.count_outcome(str(status))
        if status == 429:
            self.stats.count("rate_limited")
            code, message = _error_fields(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            concurrency = "concurren" in f"{code} {message}".lower() or None
            self.limiter.on_rate_limited(ticket, retry_after=retry_after, concurrency=concurrency)
            error = UserflowRateLimitError(
                message, status=status, code=code, record_id=record_id, method=method, path=path
            )
            error.retry_after = retry_after
            raise error
        self.limiter.on_success(ticket)
        if 200 <= status < 300:
            return response
        code, message = _error_fields(response)
        fields: dict[str, Any] = {
            "status": status,
            "code": code,
            "record_id": record_id,
            "method": method,
            "path": path,
        }
        if non_idempotent and status in AMBIGUOUS_EVENT_STATUSES:
            raise UserflowAmbiguousError(f"gateway error, the request may have been applied: {message}", **fields)
        raise error_class_for_status(status)(message, **fields)

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter; at least what a Retry-After asked for."""
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (state.attempt_number - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.count("retries")
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.debug("retrying after %s (attempt %d, in %.2fs)", exc, state.attempt_number, delay)

    def _require_open(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("use the client as `async with UserflowClient(...) as client:`")
        return self._http


# -- helpers -------------------------------------------------------------------------------


def _require_id(value: str) -> str:
    if not isinstance(value, str) or value == "":
        raise ValueError("IDs must be non-empty strings")
    return value


def _expand(expand: Iterable[str]) -> dict[str, Any]:
    if isinstance(expand, str):
        expand = [expand]
    values = list(expand)
    return {"expand[]": values} if values else {}


def _optional(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _encode_body(body: Any, *, method: str, path: str, record_id: str | None) -> bytes | None:
    if body is None:
        return None
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise UserflowError(
            f"payload is not valid JSON: {exc}", record_id=record_id, method=method, path=path
        ) from None


def _should_retry(exc: BaseException, delivery: EventDelivery | None) -> bool:
    if isinstance(exc, UserflowAmbiguousError):
        return delivery is EventDelivery.AT_LEAST_ONCE
    if isinstance(exc, (UserflowRateLimitError, UserflowServerError)):
        return exc.status in RETRY_STATUSES
    return isinstance(exc, UserflowTransportError) and exc.retryable


def _transport_error(
    exc: httpx.TransportError, method: str, path: str, record_id: str | None, non_idempotent: bool
) -> UserflowError:
    kind = type(exc).__name__
    message = redact(f"{kind}: {exc}" if str(exc) else kind)
    fields: dict[str, Any] = {"record_id": record_id, "method": method, "path": path}
    if isinstance(exc, _CONFIG_ERRORS):
        return UserflowError(message, **fields)
    if non_idempotent and not isinstance(exc, _NOT_SENT):
        return UserflowAmbiguousError(f"no answer after sending, may have been applied ({message})", **fields)
    return UserflowTransportError(message, **fields)


def _item_key(item: Any) -> str | None:
    """An identity for de-duplicating a list walk."""
    if not isinstance(item, dict):
        return None
    if item.get("id") is not None:
        return str(item["id"])
    if item.get("object") == "group_membership":
        return f"{item.get('user_id')}\x00{item.get('group_id')}"
    if item.get("name") is not None:
        return f"{item.get('scope', '')}\x00{item['name']}"
    return None


def _next_cursor(page: Mapping[str, Any], items: list[Any]) -> str | None:
    """The `starting_after` for the next page, or None at the end.

    The server's own `next_page_url` names the cursor when it gives one (some lists key on
    something other than `id`); otherwise the last item's `id`.
    """
    if not page.get("has_more") or not items:
        return None
    next_url = page.get("next_page_url")
    if isinstance(next_url, str):
        values = parse_qs(urlsplit(next_url).query).get("starting_after")
        if values:
            return values[-1]
    last = items[-1]
    if isinstance(last, dict) and last.get("id") is not None:
        return str(last["id"])
    raise UserflowPaginationError("list says has_more but gives no cursor to continue from")


__all__ = [
    "DEFAULT_BASE_URL",
    "EU_BASE_URL",
    "EventDelivery",
    "UserflowClient",
    "check_base_url",
    "encode_id",
    "parse_retry_after",
]
