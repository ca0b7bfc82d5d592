"""The Userflow API client: one rate budget per key, typed errors, safe retries."""

from userflow_assets.client.bulk import BulkResult, Outcome, run_bulk
from userflow_assets.client.client import (
    DEFAULT_BASE_URL,
    EU_BASE_URL,
    EventDelivery,
    UserflowClient,
    encode_id,
    parse_retry_after,
)
from userflow_assets.client.errors import (
    UserflowAmbiguousError,
    UserflowAPIError,
    UserflowAuthError,
    UserflowBadRequestError,
    UserflowError,
    UserflowForbiddenError,
    UserflowNotFoundError,
    UserflowPaginationError,
    UserflowRateLimitError,
    UserflowServerError,
    UserflowTransportError,
)
from userflow_assets.client.ratelimit import (
    AdaptiveRateLimiter,
    LearnedLimits,
    LimiterSnapshot,
    forget_shared_limiters,
    shared_limiter,
)
from userflow_assets.client.resource import UserflowResource
from userflow_assets.client.stats import ClientStats, ProgressLog
from userflow_assets.redaction import (
    RedactingFilter,
    install_redacting_filter,
    redact,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "EU_BASE_URL",
    "AdaptiveRateLimiter",
    "BulkResult",
    "ClientStats",
    "EventDelivery",
    "LearnedLimits",
    "LimiterSnapshot",
    "Outcome",
    "ProgressLog",
    "RedactingFilter",
    "UserflowAPIError",
    "UserflowAmbiguousError",
    "UserflowAuthError",
    "UserflowBadRequestError",
    "UserflowClient",
    "UserflowError",
    "UserflowForbiddenError",
    "UserflowNotFoundError",
    "UserflowPaginationError",
    "UserflowRateLimitError",
    "UserflowResource",
    "UserflowServerError",
    "UserflowTransportError",
    "encode_id",
    "forget_shared_limiters",
    "install_redacting_filter",
    "parse_retry_after",
    "redact",
    "run_bulk",
    "shared_limiter",
]
