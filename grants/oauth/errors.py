"""OAuth error classes beyond authlib's: each names its spec. Bodies are RFC-shaped."""

from __future__ import annotations

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc8628.errors import (
    AuthorizationPendingError,
    ExpiredTokenError,
    SlowDownError,
)

__all__ = [
    "AccessDeniedError",
    "AuthorizationPendingError",
    "EmergencyDeniedError",
    "ExpiredTokenError",
    "InvalidAuthorizationDetailsError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidTokenError",
    "OAuth2Error",
    "PollingError",
    "SlowDownError",
    "TooManyFailuresError",
    "UnauthorizedClientError",
    "UnknownUserIdError",
    "UnsupportedGrantTypeError",
]


class UnknownUserIdError(OAuth2Error):
    """CIBA Core 1.0, section 13: the login_hint names nobody we can ask. Used for a
    wrong, expired, cancelled or reused connection code alike, so it reveals nothing."""

    error = "unknown_user_id"
    status_code = 400


class InvalidAuthorizationDetailsError(OAuth2Error):
    """RFC 9396, section 5: authorization_details malformed or not allowed."""

    error = "invalid_authorization_details"
    status_code = 400


class EmergencyDeniedError(AccessDeniedError):
    """CIBA Core 1.0, section 13: ``access_denied`` (HTTP 403) for an emergency request
    that is not allowed. The refused attempt is logged on the operator's chain, and that
    entry must commit although the request fails (SECURITY.md: "the attempt is logged")."""

    status_code = 403
    keeps_changes = True


class PollingError:
    """Mixin: the poll itself must still be recorded (for slow_down) although the token
    request fails, so the request's transaction commits."""

    keeps_changes = True


class PendingPoll(PollingError, AuthorizationPendingError):
    """authorization_pending (CIBA 11), committing the poll time."""


class TooFastPoll(PollingError, SlowDownError):
    """slow_down (CIBA 11), committing the longer interval."""


class TooManyFailuresError(OAuth2Error):
    """HTTP 429 (RFC 6585 section 4) with ``Retry-After``: this client_id, or this address,
    failed client authentication too often in the current window (SECURITY.md: rate
    limited per account and per address), so nothing is checked until it ends.

    RFC 6749 section 5.2 has no code for this, and ``invalid_client`` would tell a client
    whose credentials are good that they are bad. ``rate_limited`` is the code the rest of
    Storykeep's API answers 429 with; section 8.5 allows a code of one's own for an
    unregistered extension, and the body keeps section 5.2's shape."""

    error = "rate_limited"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="too many failed client authentications; see Retry-After")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


def invalid_client(description: str) -> InvalidClientError:
    # RFC 6749 section 5.2 allows 401 for invalid_client; we always use it.
    return InvalidClientError(description=description, status_code=401)
