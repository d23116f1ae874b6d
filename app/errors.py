"""Errors that belong to the web layer only, and which paths answer them as pages."""

from __future__ import annotations

from vault.errors import StorykeepError


class CsrfFailed(StorykeepError):
    message = "This form has expired or did not come from Storykeep. Please try again."


class NotSignedIn(StorykeepError):
    message = "Please sign in first."


def is_page_path(path: str) -> bool:
    """Whether errors on ``path`` are answered as a page (for people, in a browser)
    rather than as JSON (for programs: the API, OAuth, metadata and health checks)."""
    return not (
        path.startswith(("/api/", "/oauth/", "/.well-known/"))
        or path in {"/healthz", "/openapi.json"}
    )
