"""Errors that belong to the web layer only."""

from __future__ import annotations

from vault.errors import StorykeepError


class CsrfFailed(StorykeepError):
    message = "This form has expired or did not come from Storykeep. Please try again."


class NotSignedIn(StorykeepError):
    message = "Please sign in first."
