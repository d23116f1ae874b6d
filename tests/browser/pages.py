"""Every page the quality bars are checked on, in one table, and how each role signs in.

Add a page here and test_quality.py checks it (axe-core, weight, width, headers, CSRF,
no script, and the reading grade when ``plain_words``); ``tests.browser.report`` lists
it. A path with ``{id}`` is opened by following the first link (or GET form) of that
shape on ``source`` (by default the path before ``{id}``), as a person would; a
``source`` with ``{id}`` is itself found that way, and each page like it is tried in turn.
``shows`` is text the page must show, so a page is measured with what it is there for.
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

Role = Literal["visitor", "young_person", "practitioner", "advocate", "reviewer"]
ID = "[0-9a-fA-F-]{32,36}"


def link_pattern(path: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in path.split("{id}")]
    return re.compile("^" + ID.join(parts) + "$")


def default_source(path: str) -> str:
    return path.split("{id}", maxsplit=1)[0].rstrip("/") or "/"


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
    # Text the page must show (in <main>) for the measurement to count.
    shows: str | None = None

    @property
    def label(self) -> str:
        return f"{self.role}:{self.path}"

    def link_source(self) -> str:
        return self.source or default_source(self.path)

    def link_pattern(self) -> re.Pattern[str]:
        return link_pattern(self.path)


PAGES: list[PageSpec] = [
    # Anyone: signing up and in. Young people read these, so plain words.
    PageSpec("visitor", "/signin", screenshot="signin"),
    PageSpec("visitor", "/signup", screenshot="signup"),
    # Where a young person lands when their session ran out (app/exception_handlers.py).
    PageSpec(
        "visitor",
        "/signin?timeout=1&next=/story",
        screenshot="signin-timeout",
        shows="You were signed out because you were away for a while.",
    ),
    # The young person (demo account "sky").
    PageSpec("young_person", "/story", screenshot="story"),
    PageSpec("young_person", "/story/{id}", screenshot="entry"),
    PageSpec("young_person", "/records", screenshot="records"),
    PageSpec("young_person", "/records/{id}", screenshot="record"),
    # A record the council changed after sky asked (see agency.safeguarding_for_demo).
    PageSpec(
        "young_person",
        "/records/{id}/history",
        screenshot="record-history",
        source="/records/{id}",
        shows="It was changed when you asked.",
    ),
    PageSpec("young_person", "/requests", screenshot="requests"),
    PageSpec("young_person", "/requests/{id}/change", screenshot="request-change"),
    PageSpec("young_person", "/requests/{id}/no", screenshot="request-no"),
    # Sky's sharing has a consented grant and the council's emergency access.
    PageSpec("young_person", "/sharing", screenshot="sharing", shows="Emergency access"),
    PageSpec("young_person", "/sharing/{id}/stop", screenshot="sharing-stop"),
    PageSpec("young_person", "/audit", screenshot="audit"),
    PageSpec("young_person", "/connect", screenshot="connect"),
    PageSpec("young_person", "/my-advocate", screenshot="my-advocate"),
    PageSpec(
        "young_person",
        "/my-advocate/{id}/remove",
        screenshot="my-advocate-remove",
        shows="Dee Advocate",
    ),
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
    # Sky asked the school to change a letter it wrote (see agency.safeguarding_for_demo).
    PageSpec(
        "practitioner",
        "/practitioner/corrections/{id}",
        plain_words=False,
        screenshot="practitioner-correction",
        shows="Attendance letter",
    ),
    # An independent reviewer (another agency), and the council's emergency access to sky.
    PageSpec(
        "reviewer",
        "/practitioner/reviews",
        plain_words=False,
        screenshot="reviews",
        shows="Example Council Social Work",
    ),
    PageSpec(
        "reviewer",
        "/practitioner/reviews/{id}",
        plain_words=False,
        screenshot="review",
        shows="Was the emergency access justified?",
    ),
]


def links_on(page: Page, source: str, pattern: re.Pattern[str]) -> list[str]:
    """Links, and GET forms' actions, in the source page's <main> that match."""
    check_built(page.goto(source), source)
    found = [a.get_attribute("href") or "" for a in page.locator("main a[href]").all()]
    for form in page.locator("main form[action]").all():
        if (form.get_attribute("method") or "get").lower() == "get":
            found.append(form.get_attribute("action") or "")
    return list(dict.fromkeys(h for h in found if pattern.match(h)))


def find_links(page: Page, path: str, source: str | None = None) -> list[str]:
    """Every link like ``path`` on the first page of its source that has any. A source
    with "{id}" is found the same way, trying each page like it in turn."""
    source = source or default_source(path)
    sources = find_links(page, source) if "{id}" in source else [source]
    for each in sources:
        found = links_on(page, each, link_pattern(path))
        if found:
            return found
    return []


def open_page(page: Page, spec: PageSpec) -> Response:
    """Go to the page (following a link for "{id}" paths) and return its response."""
    path = spec.path
    if "{id}" in path:
        found = find_links(page, path, spec.link_source())
        if not found:
            not_built_yet(f"no link like {spec.path} on {spec.link_source()} in the demo data")
        path = found[0]
    response = check_built(page.goto(path), spec.path)
    assert response.ok, f"{path} answered {response.status}"
    assert page.url.endswith(path), f"{path} ended up at {page.url} (signed out?)"
    if spec.shows:
        shown = page.locator("main").inner_text()
        assert spec.shows in shown, f"{path} does not show {spec.shows!r}:\n{shown}"
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


DEMO_REVIEWER = {"email": "robin.reid@review.example.org", "name": "Robin Reid"}


def sign_in_reviewer(page: Page, app: LiveApp) -> None:
    """An independent reviewer of emergency access: the operator registers an agency for
    the review service and the reviewer (``storykeep reviewer add``), who signs in with
    password and TOTP like any practitioner."""
    from tests.browser import steps

    if not app.env:
        pytest.skip("reviewer pages need the server's CLI: run without --base-url")
    totp = steps.add_reviewer(app, **DEMO_REVIEWER)
    steps.practitioner_sign_in(page, DEMO_REVIEWER["email"], totp)


SIGN_IN: dict[Role, Callable[[Page, LiveApp], None] | None] = {
    "visitor": None,
    "young_person": sign_in_young_person,
    "practitioner": sign_in_practitioner,
    "advocate": sign_in_advocate,
    "reviewer": sign_in_reviewer,
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
