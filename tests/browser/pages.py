"""Every page the quality bars are checked on, in one table, and how each role signs in.

Add a page here and test_quality.py checks it (axe-core, weight, width, headers, CSRF,
no script, and the reading grade when ``plain_words``); ``tests.browser.report`` lists
it. A path with ``{id}`` is opened by following the first link of that shape on
``source`` (by default the path before ``{id}``), as a person would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, Page, Response

from app.demo import DEMO_PASSWORD
from tests.browser.harness import LiveApp, new_context
from tests.browser.not_built_yet import check_built, not_built_yet

Role = Literal["visitor", "young_person", "practitioner", "advocate"]


@dataclass(frozen=True)
class PageSpec:
    role: Role
    path: str
    # Young people's pages: Flesch-Kincaid grade 5 or below.
    plain_words: bool = True
    # Saved as docs/screenshots/<name>.png (the main pages only).
    screenshot: str | None = None
    # Where the link to a "{id}" page is found; default: the path before "{id}".
    source: str | None = None

    @property
    def label(self) -> str:
        return f"{self.role}:{self.path}"

    def link_source(self) -> str:
        return self.source or self.path.split("{id}")[0].rstrip("/") or "/"

    def link_pattern(self) -> re.Pattern[str]:
        parts = [re.escape(p) for p in self.path.split("{id}")]
        return re.compile("^" + "[0-9a-fA-F-]{32,36}".join(parts) + "$")


PAGES: list[PageSpec] = [
    # Anyone: signing up and in. Young people read these, so plain words.
    PageSpec("visitor", "/signin", screenshot="signin"),
    PageSpec("visitor", "/signup", screenshot="signup"),
    # The young person (demo account "sky").
    PageSpec("young_person", "/story", screenshot="story"),
    PageSpec("young_person", "/story/{id}", screenshot="entry"),
    PageSpec("young_person", "/records", screenshot="records"),
    PageSpec("young_person", "/records/{id}", screenshot="record"),
    PageSpec("young_person", "/requests", screenshot="requests"),
    PageSpec("young_person", "/requests/{id}/change", screenshot="request-change"),
    PageSpec("young_person", "/requests/{id}/no", screenshot="request-no"),
    PageSpec("young_person", "/sharing", screenshot="sharing"),
    PageSpec("young_person", "/sharing/{id}/stop", screenshot="sharing-stop"),
    PageSpec("young_person", "/audit", screenshot="audit"),
    PageSpec("young_person", "/connect", screenshot="connect"),
    PageSpec("young_person", "/my-advocate", screenshot="my-advocate"),
    PageSpec("young_person", "/account", screenshot="account"),
    PageSpec("young_person", "/account/notifications", screenshot="notifications"),
    # Advocates (adults: no reading-grade bar). Their account is made in sign_in_advocate.
    PageSpec("visitor", "/advocate/signin", plain_words=False, screenshot="advocate-signin"),
    PageSpec("visitor", "/advocate/signup", plain_words=False),
    PageSpec("advocate", "/advocate", plain_words=False, screenshot="advocate-home"),
    PageSpec(
        "advocate",
        "/advocate/people/{id}",
        plain_words=False,
        screenshot="advocate-person",
        source="/advocate",
    ),
    PageSpec("advocate", "/advocate/accept", plain_words=False),
    # Practitioners (adults). Demo young person "river" shares with them (sign-in below).
    PageSpec(
        "visitor", "/practitioner/signin", plain_words=False, screenshot="practitioner-signin"
    ),
    PageSpec("practitioner", "/practitioner", plain_words=False, screenshot="practitioner-home"),
    PageSpec(
        "practitioner", "/practitioner/request", plain_words=False, screenshot="practitioner-ask"
    ),
    PageSpec(
        "practitioner", "/practitioner/requests/{id}", plain_words=False, source="/practitioner"
    ),
    PageSpec(
        "practitioner",
        "/practitioner/grants/{id}",
        plain_words=False,
        screenshot="practitioner-grant",
        source="/practitioner",
    ),
    PageSpec("practitioner", "/practitioner/corrections", plain_words=False),
]


def open_page(page: Page, spec: PageSpec) -> Response:
    """Go to the page (following a link for "{id}" paths) and return its response."""
    path = spec.path
    if "{id}" in path:
        source = spec.link_source()
        check_built(page.goto(source), source)
        pattern = spec.link_pattern()
        hrefs = [a.get_attribute("href") or "" for a in page.locator("main a[href]").all()]
        found = [h for h in hrefs if pattern.match(h)]
        if not found:
            not_built_yet(f"no link like {spec.path} on {source} in the demo data")
        path = found[0]
    response = check_built(page.goto(path), spec.path)
    assert response.ok, f"{path} answered {response.status}"
    assert page.url.endswith(path), f"{path} ended up at {page.url} (signed out?)"
    return response


# -- signing in, by role --------------------------------------------------------------
DEMO_YOUNG_PERSON = "sky"


def sign_in_young_person(page: Page, app: LiveApp) -> None:
    """The demo young person, through the sign-in form (no JavaScript)."""
    check_built(page.goto("/signin"), "/signin")
    page.get_by_label("Your username").fill(DEMO_YOUNG_PERSON)
    page.get_by_label("Your password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/story")


DEMO_PRACTITIONER = {
    "email": "morgan.lee@school.example.org",
    "name": "Morgan Lee",
    "role": "pastoral care teacher",
}


def sign_in_practitioner(page: Page, app: LiveApp) -> None:
    """The demo has no practitioner: the operator adds one to the browser tests'
    agency, who signs in with password and TOTP, and asks demo young person "river",
    who says yes. Then their pages have a request and a grant to show."""
    from tests.browser import steps
    from tests.browser.agency import young_person_api

    if not app.env:
        pytest.skip("practitioner pages need the server's CLI: run without --base-url")
    totp = steps.add_practitioner(app, **DEMO_PRACTITIONER)
    steps.practitioner_sign_in(page, DEMO_PRACTITIONER["email"], totp)
    with young_person_api(app, "river") as river:
        steps.practitioner_ask(page, river.code(), ["housing"])  # river has a housing record
        river.approve_the_pending_request()


DEMO_ADVOCATE = {"name": "Dee Advocate", "email": "dee@advocacy.example.org"}


def sign_in_advocate(page: Page, app: LiveApp) -> None:
    """The demo has no advocate, so demo young person "river" invites one (who may stop
    sharing), and the advocate makes an account with the code, through the pages."""
    from tests.browser import steps

    browser = page.context.browser
    assert browser is not None
    river = new_context(browser, app.base_url)
    try:
        inviter = river.new_page()
        steps.sign_in(inviter, "river", DEMO_PASSWORD)
        code = steps.invite_advocate(inviter, can_stop_sharing=True)
    finally:
        river.close()
    steps.advocate_sign_up(page, code, password=steps.PASSWORD, **DEMO_ADVOCATE)


SIGN_IN: dict[Role, Callable[[Page, LiveApp], None] | None] = {
    "visitor": None,
    "young_person": sign_in_young_person,
    "practitioner": sign_in_practitioner,
    "advocate": sign_in_advocate,
}


class SignedIn:
    """Each role signs in once, through its pages; later contexts start from a copy of
    that cookie jar (a Playwright storage state). A visitor has none."""

    def __init__(self, browser: Browser, app: LiveApp) -> None:
        self.browser, self.app = browser, app
        self.states: dict[Role, Any] = {}

    def __call__(self, role: Role) -> Any:
        sign_in = SIGN_IN[role]
        if sign_in is None:
            return None
        if role not in self.states:
            context = new_context(self.browser, self.app.base_url)
            try:
                sign_in(context.new_page(), self.app)
                self.states[role] = context.storage_state()
            finally:
                context.close()
        return self.states[role]
