"""Fixtures for the browser tests: one real server and one Chromium per test session.

The server is ``storykeep serve`` on 127.0.0.1 and a free port, on a fresh SQLite data
directory with ``storykeep db upgrade`` and ``storykeep demo`` run first (as ``make
run`` does). Browser tests run on SQLite only: they test the pages, not the database,
which the rest of the suite tests on both backends.

The session cookie is ``Secure``. Chromium treats http://127.0.0.1 as a secure context
and stores and sends Secure cookies there, so no test weakens the app to sign in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.agency import (
    CARE_PLAN_FIXED,
    EMERGENCY_REASON,
    SKY_EMERGENCY_REASON,
    Agency,
    Council,
    World,
    demo_world,
)
from tests.browser.harness import AXE_JS, CHROMIUM, LiveApp, new_context
from tests.browser.harness import launch_chromium as _launch
from tests.browser.pages import PageSpec, Role, SignedIn, open_page
from tests.browser.quality import SCREENSHOTS, Measurement, measure

NewPage = Callable[..., Page]


def in_ci() -> bool:
    """CI sets ``CI`` (``.ci/run`` does, as most CI services do). Empty, 0 or false: not CI."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def missing_tool(reason: str) -> None:
    """Skip, with the reason, on a developer's machine; fail in CI, where a skipped
    browser or accessibility check would pass the build without checking anything."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def need_chromium() -> None:
    if not CHROMIUM.exists():
        missing_tool(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")


def need_axe() -> None:
    if not AXE_JS.exists():
        missing_tool(f"{AXE_JS} is missing: run `npm ci` (or `make install`)")


@pytest.fixture(autouse=True, scope="session")
def _need_chromium() -> None:
    need_chromium()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, _need_chromium: None) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("browser")
    with demo_world(workdir) as found:
        yield found
    # No server error all session, and no record or story text (nor any emergency
    # reason) in the server's log.
    log = (workdir / "serve.log").read_text()
    for unwanted in ("Traceback", "Doing well in art", "I joined the art club",
                     SKY_EMERGENCY_REASON, CARE_PLAN_FIXED, EMERGENCY_REASON):  # fmt: skip
        assert unwanted not in log, log[-4000:]


@pytest.fixture(scope="session")
def live_app(world: World) -> LiveApp:
    """The demo server; sky also has a waiting request, a used grant, an emergency
    access waiting for review and two correction requests (see agency.py)."""
    return world.app


@pytest.fixture(scope="session")
def agency(world: World) -> Agency:
    """An agency's system (OAuth client) registered on the server (see agency.py)."""
    return world.agency


@pytest.fixture(scope="session")
def council(world: World) -> Council:
    """The demo council's system: statutory, so it may open emergency access."""
    return world.council


@pytest.fixture(scope="session")
def browser(_need_chromium: None) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = _launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def signed_in_state(browser: Browser, live_app: LiveApp) -> Callable[[Role], Any]:
    """Each role signs in once per session, through its sign-in pages."""
    return SignedIn(browser, live_app)


class Pages:
    """Opens pages in fresh contexts and closes them all at once."""

    def __init__(self, browser: Browser, app: LiveApp, state: Callable[[Role], Any]) -> None:
        self.browser, self.app, self.state = browser, app, state
        self.contexts: list[BrowserContext] = []

    def __call__(
        self, role: Role = "visitor", *, wide: bool = False, javascript: bool = False,
        axe: bool = False, state: Any = None,
    ) -> Page:  # fmt: skip
        if axe:
            need_axe()
        context = new_context(
            self.browser,
            self.app.base_url,
            wide=wide,
            javascript=javascript or axe,
            bypass_csp=axe,
            storage_state=state if state is not None else self.state(role),
        )
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def new_page(
    browser: Browser, live_app: LiveApp, signed_in_state: Callable[[Role], Any]
) -> Iterator[NewPage]:
    """``new_page(role="visitor", wide=False, javascript=False, axe=False, state=None)``:
    a page in a fresh context, 360x780 (or 1280x800 with ``wide``), JavaScript off,
    signed in as ``role`` (or with the cookies in ``state``, a Playwright storage
    state). ``axe=True`` gives the one kind of context with JavaScript on and the CSP
    bypassed, for injecting axe-core (see quality.axe_violations)."""
    pages = Pages(browser, live_app, signed_in_state)
    yield pages
    pages.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A visitor's page at 360x780 with JavaScript off."""
    return new_page()


@pytest.fixture(scope="session")
def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots go to a temporary folder, so a test run leaves the checkout clean.
    Set STORYKEEP_SCREENSHOTS=1 to refresh the README's pictures in docs/screenshots/."""
    if os.environ.get("STORYKEEP_SCREENSHOTS") == "1":
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def measured(
    browser: Browser, live_app: LiveApp, signed_in_state: Callable[[Role], Any],
    screenshots_dir: Path,
) -> Iterator[Callable[[PageSpec], Measurement]]:  # fmt: skip
    """Each page in PAGES is loaded once (JavaScript off) and measured for every bar
    but axe; the quality tests then each assert one bar on the cached measurement."""
    pages = Pages(browser, live_app, signed_in_state)
    cache: dict[str, Measurement | BaseException] = {}

    def get(spec: PageSpec) -> Measurement:
        if spec.label not in cache:
            try:
                page = pages(spec.role)
                response = open_page(page, spec)
                cache[spec.label] = measure(
                    page, response.headers, spec.screenshot, screenshots_dir
                )
            except (pytest.skip.Exception, AssertionError) as exc:
                cache[spec.label] = exc
            finally:
                pages.close()
        found = cache[spec.label]
        if isinstance(found, BaseException):
            raise found
        return found

    yield get
    pages.close()
