"""Typed failures of the Userflow client.

Every error carries the HTTP status (when a response came back), Userflow's error code and
message, the ID of the record the request was about, and how many attempts were made. None of
them ever holds the API key: messages are redacted before they are stored.
"""

from __future__ import annotations


class UserflowError(Exception):
    """Base class: something about a Userflow request did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        record_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.record_id = record_id
        self.method = method
        self.path = path
        self.attempts = attempts

    def __str__(self) -> str:
        parts: list[str] = []
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.record_id is not None:
            text += f" (record {self.record_id!r})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @property
    def retryable(self) -> bool:
        """Whether another attempt later (e.g. in the next run) may succeed."""
        return False


class UserflowAPIError(UserflowError):
    """Userflow answered with an error status."""


class UserflowBadRequestError(UserflowAPIError):
    """400: the request was invalid (``invalid_params``)."""


class UserflowAuthError(UserflowAPIError):
    """401: the API key is missing or wrong."""


class UserflowForbiddenError(UserflowAPIError):
    """403: the key may not do this (e.g. a feature not in the plan)."""


class UserflowNotFoundError(UserflowAPIError):
    """404: no such object."""


class UserflowRateLimitError(UserflowAPIError):
    """429 that outlasted every retry."""

    retry_after: float | None = None  # seconds, when the answer carried Retry-After

    @property
    def retryable(self) -> bool:
        return True


class UserflowServerError(UserflowAPIError):
    """5xx that outlasted every retry."""

    @property
    def retryable(self) -> bool:
        return True


class UserflowTransportError(UserflowError):
    """No usable response: connection refused, timeout or dropped connection, after retries.

    For idempotent requests this is a clean failure: repeating the request is safe.
    """

    @property
    def retryable(self) -> bool:
        return True


class UserflowAmbiguousError(UserflowError):
    """A non-idempotent request (``POST /events``) may or may not have been applied.

    Raised when the request may have reached Userflow but no answer came back (read timeout,
    dropped connection). Repeating it may record the event twice; not repeating it may lose it.
    `unanswered` counts the attempts of the call that may each have been applied.
    """

    unanswered: int = 1


class UserflowPaginationError(UserflowError):
    """A list walk could not continue without risking repeated items."""


_BY_STATUS: dict[int, type[UserflowAPIError]] = {
    400: UserflowBadRequestError,
    401: UserflowAuthError,
    403: UserflowForbiddenError,
    404: UserflowNotFoundError,
    429: UserflowRateLimitError,
}


def error_class_for_status(status: int) -> type[UserflowAPIError]:
    """The typed exception for an HTTP error status."""
    if status >= 500:
        return UserflowServerError
    return _BY_STATUS.get(status, UserflowAPIError)
