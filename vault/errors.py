"""Errors raised by the vault and, through the shared base, by every Storykeep domain.

StorykeepError            one base, mapped to HTTP responses in app/exception_handlers.py
├── NotFound              unknown id, or an id that is not yours (never tells which)
├── InvalidInput          malformed or out-of-range input; nothing was changed
├── PayloadTooLarge       a body or upload over its bound (checked while streaming)
├── UnsupportedMediaType  an upload whose bytes are not the type it claims
├── PermissionDenied      known, but this actor may not do this (e.g. write without a grant)
├── AuthenticationFailed  wrong username or password (never says which)
├── StepUpRequired        a sensitive action needs a fresh sign-in
├── RateLimited           too many attempts; carries retry_after seconds
├── Conflict              e.g. a username already taken
├── IntegrityFailure      a ciphertext or audit entry failed its check: fail closed
└── KeyUnavailable        the key provider cannot be reached: fail with 503
"""

from __future__ import annotations


class StorykeepError(Exception):
    """Base of every domain error. ``message`` is safe to show to the person."""

    message = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message


class NotFound(StorykeepError):
    message = "We could not find that."


class InvalidInput(StorykeepError):
    message = "That input is not valid."


class PayloadTooLarge(StorykeepError):
    message = "That is too big."


class UnsupportedMediaType(StorykeepError):
    message = "That type of file is not allowed."


class PermissionDenied(StorykeepError):
    message = "You are not allowed to do that."


class AuthenticationFailed(StorykeepError):
    message = "That username or password is not right."


class StepUpRequired(StorykeepError):
    message = "Please sign in again to do this."


class RateLimited(StorykeepError):
    message = "Too many tries. Please wait a while and try again."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(StorykeepError):
    message = "That clashes with something that already exists."


class IntegrityFailure(StorykeepError):
    message = "This item failed its safety check, so it cannot be shown. Nothing was changed."


class KeyUnavailable(StorykeepError):
    message = "The service cannot reach its keys right now. Nothing was changed. Try again soon."
