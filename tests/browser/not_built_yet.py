"""WHILE ISSUE 4 IS BEING BUILT: a page, a role's sign-in or a command that is not
there yet (404, or no such command) is skipped as "page not built yet" instead of
failing. Set SKIP_PAGES_NOT_BUILT_YET to False once everything in pages.py exists, so
that anything missing fails the build."""

from __future__ import annotations

from typing import NoReturn

import pytest
from playwright.sync_api import Response

SKIP_PAGES_NOT_BUILT_YET = False


def not_built_yet(what: str) -> NoReturn:
    if SKIP_PAGES_NOT_BUILT_YET:
        pytest.skip(f"page not built yet: {what}")
    raise AssertionError(f"{what} is missing")


def check_built(response: Response | None, what: str) -> Response:
    """The page answered; a 404 is "not built yet" (see SKIP_PAGES_NOT_BUILT_YET)."""
    assert response is not None, f"no response for {what}"
    if response.status == 404:
        not_built_yet(what)
    return response
