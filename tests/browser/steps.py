"""What people do in the browser, one function per step, found the way a person (or a
screen reader) finds things: by role, label and visible words. The journeys and the
role sign-ins in pages.py use them; if a page's words change, change them here."""

from __future__ import annotations

import itertools
import json
import re

import pyotp
from playwright.sync_api import Page, expect

from tests.browser.agency import AGENCY, PURPOSES, REVIEW_SERVICE
from tests.browser.harness import LiveApp
from tests.browser.not_built_yet import check_built, not_built_yet

PASSWORD = "a long journey password"
# Connection and invite codes: four groups of four from Crockford-like base 32.
CODE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){3}\b")


_NUMBERS = itertools.count(1)


def new_username(name: str = "robin") -> str:
    """Readable in screenshots, and new on the session's fresh server."""
    return f"{name}{next(_NUMBERS)}"


# -- young people --------------------------------------------------------------------
def sign_up(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/signup")
    page.get_by_label("Pick a username").fill(username)
    page.get_by_label("Pick a password").fill(password)
    page.get_by_role("button", name="Make my account").click()
    expect(page).to_have_url(re.compile(r"/story$"))


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/signin")
    page.get_by_label("Your username").fill(username)
    page.get_by_label("Your password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def write_entry(page: Page, title: str, body: str, *, shareable: bool) -> None:
    page.goto("/story")
    page.get_by_label("Title").fill(title)
    page.get_by_label("What do you want to say?").fill(body)
    page.get_by_label("People I say yes to" if shareable else "Only me (private)").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()


def code_on_page(page: Page) -> str:
    found = CODE.search(page.locator("main").inner_text())
    assert found, f"no code shown on {page.url}"
    return found.group(0)


def make_connection_code(page: Page) -> str:
    check_built(page.goto("/connect"), "/connect")
    page.get_by_role("button", name="Make a new code").click()
    qr = page.get_by_role("img", name=re.compile("QR code", re.IGNORECASE))
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 0, "the QR code did not load"
    return code_on_page(page)


def invite_advocate(page: Page, *, can_stop_sharing: bool) -> str:
    check_built(page.goto("/my-advocate"), "/my-advocate")
    box = page.get_by_label("Let my advocate stop sharing for me")
    box.set_checked(can_stop_sharing)
    page.get_by_role("button", name="Make an invite code").click()
    return code_on_page(page)


# -- advocates -----------------------------------------------------------------------
def advocate_sign_up(page: Page, code: str, name: str, email: str, password: str) -> None:
    check_built(page.goto("/advocate/signup"), "/advocate/signup")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Invite code").fill(code)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/advocate(\?.*)?$"))


# -- keyboard only -------------------------------------------------------------------
_ACTIVE = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return {name: '', visible: false};
  const label = e.labels && e.labels.length ? e.labels[0].innerText : '';
  const name = (label || e.getAttribute('aria-label') || e.innerText || e.value || '').trim();
  const s = getComputedStyle(e);
  const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
    || s.boxShadow !== 'none';
  return {name: name.replace(/\\s+/g, ' '), visible: ring};
}"""


def tab_to(page: Page, name: str | re.Pattern[str], limit: int = 80) -> None:
    """Press Tab until the focused control's name matches, as a keyboard user would, and
    check the focus can be seen (WCAG 2.2 SC 2.4.7)."""
    pattern = name if isinstance(name, re.Pattern) else re.compile(re.escape(name))
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        active = page.evaluate(_ACTIVE)
        seen.append(active["name"])
        if pattern.search(active["name"]):
            assert active["visible"], f"focus on {active['name']!r} cannot be seen"
            return
    raise AssertionError(f"Tab never reached {pattern.pattern!r}; it went {seen}")


# -- practitioners -------------------------------------------------------------------
# The request form's checkboxes are labelled with the category's name.
CATEGORY_WORDS = {"education": "Education", "health": "Health", "housing": "Housing"}


def add_practitioner(app: LiveApp, email: str, name: str, role: str) -> pyotp.TOTP:
    """The operator's command; it prints the authenticator app's secret once."""
    made = app.cli("practitioner", "add", email, "--agency", AGENCY, "--name", name,
                   "--role", role, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    if made.returncode != 0 and "No such command" in made.stderr:
        not_built_yet("storykeep practitioner add")
    assert made.returncode == 0, made.stderr
    return pyotp.TOTP(json.loads(made.stdout)["totp_secret"])


def add_reviewer(app: LiveApp, email: str, name: str) -> pyotp.TOTP:
    """The operator registers the review service (once) and an independent reviewer of
    emergency access; the new account's authenticator secret is printed once."""
    agency = app.cli("agency", "add", REVIEW_SERVICE, "--purpose", "oversight")
    assert agency.returncode == 0 or "already exists" in agency.stderr, agency.stderr
    made = app.cli("reviewer", "add", email, "--agency", REVIEW_SERVICE, "--name", name,
                   "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    added = json.loads(made.stdout)
    assert added["reviewer"] is True and added["account"] == "created", added
    return pyotp.TOTP(added["totp_secret"])


def practitioner_sign_in(page: Page, email: str, totp: pyotp.TOTP) -> None:
    shown = check_built(page.goto("/practitioner/signin"), "/practitioner/signin")
    assert shown.ok, f"/practitioner/signin answered {shown.status}"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/practitioner$"))


def practitioner_ask(page: Page, code: str, categories: list[str], days: int = 30) -> str:
    """Send a request with the young person's code; returns the status page's URL."""
    check_built(page.goto("/practitioner/request"), "/practitioner/request")
    page.get_by_label("Connection code").fill(code)
    for category in categories:
        page.get_by_label(CATEGORY_WORDS[category], exact=True).check()
    page.get_by_label("Purpose").select_option(PURPOSES[0])
    page.get_by_label("How many days").fill(str(days))
    page.get_by_role("button", name="Send request").click()
    expect(page).to_have_url(re.compile(r"/practitioner/requests/[0-9a-f-]+$"))
    return page.url
