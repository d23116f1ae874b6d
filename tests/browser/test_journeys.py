"""Issue 4's journeys in Chromium at 360x780 with JavaScript off, through the pages a
person uses. Each journey has its own new young person.

The full journey and the declined request run twice: with a practitioner using the
practitioner pages, and with the agency's system (OAuth, CIBA) asking and reading.
Both go through the same grant engine and audit log ("one policy path, not two").
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.sync_api import Page, expect

from tests.browser import quality, steps
from tests.browser.agency import (
    COUNCIL,
    EMERGENCY_REASON,
    SOCIAL_WORKER,
    TEACHER,
    Agency,
    Council,
    cli_json,
)
from tests.browser.conftest import NewPage
from tests.browser.harness import NARROW, LiveApp

pytestmark = pytest.mark.live

SCHOOL_REPORT = ("School report, June", "Doing well in art and music.")
HEALTH_CHECK = ("Health check", "All well at the health check.")


def add_records(app: LiveApp, username: str, tmp: Any) -> None:
    """Records come from agencies, so the operator's CLI adds them."""
    for (title, body), category in ((SCHOOL_REPORT, "education"), (HEALTH_CHECK, "health")):
        path = tmp / f"{category}.txt"
        path.write_text(body, encoding="utf-8")
        cli_json(app, "record", "add", "--young-person", username, "--agency",
                 "Example High School", "--category", category, "--title", title,
                 "--body-file", str(path), "--author-name", TEACHER["name"])  # fmt: skip


def assert_bars(new_page: NewPage, on: Page, *, plain_words: bool = True, shot: str = "") -> None:
    """Every quality bar, on the page a journey has reached (a GET page), opened again
    in fresh contexts with the same cookies: pages that only exist mid-journey."""
    url, state = on.url, on.context.storage_state()
    page = new_page(state=state)
    response = page.goto(url)
    assert response is not None and response.ok
    found = quality.measure(page, response.headers, shot or None)
    assert found.problems(plain_words) == [], url
    checked = new_page(state=state, axe=True)
    checked.goto(url)
    quality.assert_no_axe_violations(checked)


# -- who asks: the agency's system now, the practitioner pages when they exist ----------
class Asker(Protocol):
    def ask(self, code: str, categories: list[str]) -> None: ...
    def read_titles(self) -> list[str]: ...
    def refused(self) -> bool: ...
    def declined(self) -> bool: ...


class AgencySystem:
    """The agency's system: CIBA request with the connection code as login_hint."""

    def __init__(self, agency: Agency) -> None:
        self.agency = agency
        self.auth_req_id = ""
        self.tokens: dict[str, Any] = {}

    def ask(self, code: str, categories: list[str]) -> None:
        asked = self.agency.ask(code, categories)
        assert asked.status_code == 200, asked.text
        self.auth_req_id = asked.json()["auth_req_id"]

    def read_titles(self) -> list[str]:
        if not self.tokens:
            self.tokens = self.agency.poll(self.auth_req_id)
        read = self.agency.records(self.tokens["vault_handle"], self.tokens["access_token"])
        assert read.status_code == 200, read.text
        return [r["title"] for r in read.json()]

    def refused(self) -> bool:
        read = self.agency.records(self.tokens["vault_handle"], self.tokens["access_token"])
        return bool(read.status_code == 401)

    def declined(self) -> bool:
        return self.agency.poll_error(self.auth_req_id) == "access_denied"


class PractitionerPages:
    """A practitioner, added by the operator, using the practitioner pages (360 px)."""

    def __init__(self, new_page: NewPage, app: LiveApp) -> None:
        self.new_page = new_page
        self.email = f"{steps.new_username('worker')}@school.example.org"
        self.totp = steps.add_practitioner(app, self.email, TEACHER["name"], TEACHER["role"])
        self.page = new_page()
        self.status_url = ""
        self.record_url = ""

    def ask(self, code: str, categories: list[str]) -> None:
        steps.practitioner_sign_in(self.page, self.email, self.totp)
        self.status_url = steps.practitioner_ask(self.page, code, categories)
        assert_bars(self.new_page, self.page, plain_words=False)

    def read_titles(self) -> list[str]:
        page = self.page
        page.goto(self.status_url)
        page.get_by_role("link", name="See what was shared").click()
        assert_bars(self.new_page, page, plain_words=False)
        titles = [a.inner_text() for a in page.locator("main table a").all()]
        page.get_by_role("link", name=SCHOOL_REPORT[0]).click()
        expect(page.locator("main")).to_contain_text(SCHOOL_REPORT[1])
        assert_bars(self.new_page, page, plain_words=False, shot="practitioner-record")
        self.record_url = page.url
        return titles

    def refused(self) -> bool:
        response = self.page.goto(self.record_url)
        assert response is not None
        refused = response.status == 403
        expect(self.page.locator("main")).not_to_contain_text(SCHOOL_REPORT[1])
        expect(self.page.get_by_role("heading", level=1)).to_have_text(re.compile("stopped"))
        return refused

    def declined(self) -> bool:
        self.page.goto(self.status_url)
        return "said no" in self.page.locator("main").inner_text()


@pytest.fixture(params=["practitioner pages", "agency system"])
def asker(
    request: pytest.FixtureRequest, agency: Agency, new_page: NewPage, live_app: LiveApp
) -> Iterator[Asker]:
    if request.param == "agency system":
        yield AgencySystem(agency)
    else:
        yield PractitionerPages(new_page, live_app)


@pytest.fixture
def young_person(new_page: NewPage, live_app: LiveApp, tmp_path: Any) -> tuple[Page, str]:
    """A new young person, signed up through the pages, with two agency records."""
    page = new_page()
    username = steps.new_username()
    steps.sign_up(page, username)
    add_records(live_app, username, tmp_path)
    return page, username


# -- the journeys ------------------------------------------------------------------------
def test_full_journey(
    young_person: tuple[Page, str], asker: Asker, new_page: NewPage, screenshots_dir: Path
) -> None:
    page, _ = young_person
    # 1. The young person writes an entry they are happy to share.
    steps.write_entry(page, "My first week", "I joined the art club.", shareable=True)
    expect(page.locator("main")).to_contain_text("say yes")
    # 2. They make a connection code, shown large with a QR code.
    code = steps.make_connection_code(page)
    quality.screenshot(page, "connect-code", screenshots_dir)
    # 3. A practitioner (or the agency's system) asks, with the code.
    asker.ask(code, ["education", "health"])
    # 4. The young person narrows it (education only, one week) and says yes, using
    #    only the keyboard.
    page.goto("/requests")
    expect(page.locator("main")).to_contain_text(TEACHER["name"])
    assert_bars(new_page, page, shot="request-card")
    steps.tab_to(page, "Change")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/requests/[0-9a-f-]+/change$"))
    assert_bars(new_page, page)
    steps.tab_to(page, re.compile(r"^Health$"))
    page.keyboard.press("Space")
    expect(page.get_by_label("Health", exact=True)).not_to_be_checked()
    steps.tab_to(page, "For how long?")
    page.keyboard.press("ArrowDown")  # from "as they asked" to the next, shorter choice
    assert page.get_by_label("For how long?").input_value() != "asked"
    steps.tab_to(page, "Say yes to this")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/sharing"))
    expect(page.locator("main")).to_contain_text(TEACHER["name"])
    assert_bars(new_page, page)
    # 5. The practitioner reads the record: education only.
    assert asker.read_titles() == [SCHOOL_REPORT[0]]
    # 6. The young person sees that under "Who has looked".
    page.get_by_role("navigation").get_by_role("link", name=re.compile("looked")).click()
    expect(page.locator("main")).to_contain_text(SCHOOL_REPORT[0])
    expect(page.locator("main")).to_contain_text(TEACHER["name"])
    # 7. They stop sharing, keyboard only, after a page that says what happens next.
    page.goto("/sharing")
    steps.tab_to(page, "Stop sharing")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="What happens next")).to_be_visible()
    assert_bars(new_page, page)
    steps.tab_to(page, "Stop sharing now")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/sharing\?done="))
    expect(page.get_by_role("link", name=re.compile("^Stop sharing"))).to_have_count(0)
    # 8. The practitioner is refused.
    assert asker.refused()


def test_declined_request(young_person: tuple[Page, str], asker: Asker, new_page: NewPage) -> None:
    page, _ = young_person
    asker.ask(steps.make_connection_code(page), ["education"])
    page.goto("/requests")
    page.get_by_role("link", name=re.compile("^No")).click()
    assert_bars(new_page, page)
    page.get_by_label(re.compile("^Why not")).fill("Not right now.")
    page.get_by_role("button", name="Say no").click()
    expect(page.locator("main")).to_contain_text("You said no")
    assert asker.declined()
    page.goto("/sharing")
    expect(page.locator("main")).not_to_contain_text(TEACHER["name"])


def test_advocate_journey(
    young_person: tuple[Page, str], agency: Agency, new_page: NewPage
) -> None:
    page, username = young_person
    steps.write_entry(page, "Secret diary", "Only for me.", shareable=False)
    system = AgencySystem(agency)
    system.ask(steps.make_connection_code(page), ["education"])
    page.goto("/requests")
    page.get_by_role("button", name=re.compile("^Yes")).click()
    expect(page).to_have_url(re.compile(r"/sharing"))
    assert system.read_titles() == [SCHOOL_REPORT[0]]
    # The young person invites an advocate, who may stop sharing for them.
    code = steps.invite_advocate(page, can_stop_sharing=True)
    advocate = new_page(wide=True)
    name = "Ash Advocate"
    steps.advocate_sign_up(advocate, code, name, f"{uuid.uuid4().hex[:8]}@adv.example.org",
                           steps.PASSWORD)  # fmt: skip
    advocate.get_by_role("link", name=username).click()
    main = advocate.locator("main")
    expect(main).to_contain_text(TEACHER["name"])  # the grant, and who has looked
    assert_bars(new_page, advocate, plain_words=False)
    # Grant and audit metadata only: never record or story content.
    text = main.inner_text()
    for content in (SCHOOL_REPORT[1], HEALTH_CHECK[1], "Secret diary", "Only for me."):
        assert content not in text
    # The advocate stops the grant on the young person's behalf.
    advocate.get_by_role("button", name="Stop sharing").click()
    assert_bars(new_page, advocate, plain_words=False)
    advocate.get_by_role("button", name="Stop sharing").click()
    expect(advocate.locator("main")).to_contain_text("Stopped")
    assert system.refused()
    # The young person sees it, and it is in their log.
    page.goto("/sharing")
    expect(page.get_by_role("link", name=re.compile("^Stop sharing"))).to_have_count(0)
    page.goto("/audit")
    expect(page.locator("main")).to_contain_text(name)
    # They remove the advocate, who then sees nothing of them.
    page.goto("/my-advocate")
    page.get_by_role("button", name="Remove").click()
    page.get_by_role("button", name=re.compile("remove", re.IGNORECASE)).click()
    advocate.goto("/advocate")
    expect(advocate.locator("main")).not_to_contain_text(username)


def test_deleting_an_account(young_person: tuple[Page, str]) -> None:
    page, username = young_person
    steps.write_entry(page, "Goodbye", "Last words.", shareable=False)
    page.goto("/account")
    assert_delete = page.get_by_role("button", name="Delete my account for good")
    # A wrong password deletes nothing.
    page.get_by_label(re.compile("^Type your password")).fill("not my password")
    assert_delete.click()
    expect(page.locator("main")).to_contain_text("Nothing was deleted")
    page.get_by_label(re.compile("^Type your password")).fill(steps.PASSWORD)
    page.get_by_role("button", name="Delete my account for good").click()
    expect(page).to_have_url(re.compile(r"/signin"))
    # The account is gone: signing in again fails, and /story sends them to sign in.
    steps.sign_in(page, username)
    expect(page.get_by_role("alert")).to_be_visible()
    page.goto("/story")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_emergency_access_opened_used_seen_and_reviewed(
    young_person: tuple[Page, str], council: Council, new_page: NewPage, live_app: LiveApp
) -> None:
    """Issue 5's "done means": an emergency access opened, used, seen by the young person
    and reviewed, all through real interfaces."""
    page, _ = young_person
    # The council already knows the young person by a pairwise handle: they connected
    # once, with a code and a yes, for care planning.
    asked = council.ask_consent(steps.make_connection_code(page), ["education"])
    assert asked.status_code == 200, asked.text
    page.goto("/requests")
    expect(page.locator("main")).to_contain_text(COUNCIL)
    page.get_by_role("button", name=re.compile("^Yes")).click()
    expect(page).to_have_url(re.compile(r"/sharing"))
    time.sleep(1.1)  # the CIBA poll interval (harness.server_env)
    handle = council.poll(asked.json()["auth_req_id"])["vault_handle"]

    # 1. A child protection social worker opens emergency access over the backchannel,
    #    with the handle, and the first token poll returns the token: nobody is asked.
    opened = council.ask_emergency(handle, ["health"], EMERGENCY_REASON, hours=24)
    assert opened.status_code == 200, opened.text
    tokens = council.poll(opened.json()["auth_req_id"])
    assert tokens["vault_handle"] == handle
    [granted] = tokens["authorization_details"]
    assert granted["type"] == "storykeep_emergency" and granted["categories"] == ["health"]
    # 2. The council reads a record: health only, as asked.
    read = council.records(handle, tokens["access_token"])
    assert read.status_code == 200, read.text
    assert [r["title"] for r in read.json()] == [HEALTH_CHECK[0]]

    # 3. The young person sees it, on a phone, labelled "Emergency access", with no
    #    stop button for it and never the worker's reason.
    assert page.viewport_size == NARROW
    page.goto("/sharing")
    main = page.locator("main")
    expect(main).to_contain_text(f"Emergency access: {SOCIAL_WORKER['name']} from {COUNCIL}")
    expect(main).to_contain_text("Someone else will check it was right.")
    expect(page.get_by_role("link", name=re.compile("^Stop sharing"))).to_have_count(1)
    assert EMERGENCY_REASON not in main.inner_text()
    assert_bars(new_page, page)
    page.get_by_role("navigation").get_by_role("link", name=re.compile("looked")).click()
    expect(main).to_contain_text("used Emergency access and did not ask you")
    expect(main).to_contain_text(f"read your '{HEALTH_CHECK[0]}'")
    expect(main).to_contain_text("in an emergency, to keep you safe")
    assert EMERGENCY_REASON not in main.inner_text()
    assert_bars(new_page, page)

    # 4. An independent reviewer, registered by the operator, signs in and reviews it.
    reviewer = new_page()
    email = f"{steps.new_username('reviewer')}@review.example.org"
    steps.practitioner_sign_in(reviewer, email, steps.add_reviewer(live_app, email, "Kim Park"))
    # The practitioner home has no link to the reviews for a reviewer (the "Reviews"
    # link shows only on the review pages), so the reviewer goes there by its address.
    reviewer.goto("/practitioner/reviews")
    expect(reviewer.get_by_role("heading", level=1)).to_have_text("Emergency access reviews")
    cases = [a.get_attribute("href") or "" for a in reviewer.locator("main table a").all()]
    for case in cases:  # open each case until this one, as a reviewer would
        reviewer.goto(case)
        if EMERGENCY_REASON in reviewer.locator("main").inner_text():
            break
    else:
        raise AssertionError(f"no case with the reason among {cases}")
    expect(reviewer.locator("main")).to_contain_text(SOCIAL_WORKER["name"])
    assert_bars(new_page, reviewer, plain_words=False)
    reviewer.get_by_label("Justified", exact=True).check()
    reviewer.get_by_label("Notes").fill("Proportionate: two reports from a neighbour met the bar.")
    reviewer.get_by_role("button", name="Save review").click()
    expect(reviewer).to_have_url(re.compile(r"/practitioner/reviews\?done=1$"))
    expect(reviewer.locator("main")).to_contain_text("Your review was saved")
    reviewer.goto(case)
    expect(reviewer.locator("main")).to_contain_text("Reviewed")
    expect(reviewer.get_by_role("button", name="Save review")).to_have_count(0)
    # The young person's "who has looked" says the case was read and checked.
    page.goto("/audit")
    expect(main).to_contain_text("checked if it was right")


def _age_sessions(app: LiveApp, minutes: int) -> None:
    """Make every young person's session look idle for ``minutes`` (the server's
    SQLite database; the same as walking away from the phone)."""
    path = app.env["STORYKEEP_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        [(sample,)] = db.execute("SELECT last_seen_at FROM web_session LIMIT 1").fetchall()
        then = (datetime.now(UTC) - timedelta(minutes=minutes)).replace(tzinfo=None)
        shaped = then.isoformat(sep=" " if " " in str(sample) else "T")
        db.execute("UPDATE web_session SET last_seen_at = ? WHERE revoked_at IS NULL", (shaped,))


def test_a_session_that_times_out_says_why_and_comes_back(
    new_page: NewPage, live_app: LiveApp
) -> None:
    page = new_page()
    username = steps.new_username("sleepy")
    steps.sign_up(page, username)
    _age_sessions(live_app, minutes=31)  # STORYKEEP_SESSION_IDLE_MINUTES is 30
    page.goto("/my-advocate")
    expect(page).to_have_url(re.compile(r"/signin\?timeout=1&next=/my-advocate$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Please sign in again")
    expect(page.get_by_role("status")).to_contain_text("because you were away for a while")
    assert_bars(new_page, page)
    page.get_by_label("Your username").fill(username)
    page.get_by_label("Your password").fill(steps.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/my-advocate$"))
