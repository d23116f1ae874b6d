"""The issue's quality bars, checked on every page in tests/browser/pages.py:PAGES, in
Chromium at 360x780 with JavaScript off. Each page is loaded and measured once
(``measured``); each bar is its own test, so a failure names the bar and the page.
Screenshots of the main pages are saved to docs/screenshots/ on the way.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from tests.browser import quality
from tests.browser.conftest import NewPage
from tests.browser.pages import PAGES, PageSpec, open_page
from tests.browser.quality import Measurement

pytestmark = pytest.mark.live

Measured = Callable[[PageSpec], Measurement]
ALL = pytest.mark.parametrize("spec", PAGES, ids=lambda s: s.label)
PLAIN = pytest.mark.parametrize("spec", [s for s in PAGES if s.plain_words], ids=lambda s: s.label)


@ALL
def test_no_axe_violations(new_page: NewPage, spec: PageSpec) -> None:
    page = new_page(spec.role, axe=True)
    open_page(page, spec)
    quality.assert_no_axe_violations(page)


@ALL
def test_weighs_at_most_30_kb(measured: Measured, spec: PageSpec) -> None:
    weight = measured(spec).weight
    assert weight.counted <= quality.MAX_WEIGHT_BYTES, weight.files


@ALL
def test_fits_360_and_1280_without_sideways_scrolling(measured: Measured, spec: PageSpec) -> None:
    found = measured(spec)
    assert found.overflow_narrow == 0, f"scrolls {found.overflow_narrow} px sideways at 360 px"
    assert found.overflow_wide == 0, f"scrolls {found.overflow_wide} px sideways at 1280 px"


@PLAIN
def test_young_peoples_words_are_plain(measured: Measured, spec: PageSpec) -> None:
    found = measured(spec)
    assert found.grade <= quality.MAX_GRADE, (
        f"Flesch-Kincaid grade {found.grade:.1f} for:\n{found.text}"
    )


@ALL
def test_security_headers(measured: Measured, spec: PageSpec) -> None:
    assert quality.header_problems(measured(spec).headers) == []


@ALL
def test_serves_no_script(measured: Measured, spec: PageSpec) -> None:
    assert measured(spec).scripts == []


@ALL
def test_every_posted_form_has_a_csrf_token(measured: Measured, spec: PageSpec) -> None:
    assert measured(spec).forms_without_csrf == []


# -- the browser enforces what the headers say, and the checks themselves can fail -----
def test_session_cookie_is_secure_httponly_and_samesite(new_page: NewPage) -> None:
    page = new_page("young_person")
    cookies = {c.get("name"): c for c in page.context.cookies()}
    session = cookies["storykeep_session"]
    assert session.get("secure") is True
    assert session.get("httpOnly") is True
    assert session.get("sameSite") in {"Lax", "Strict"}


def test_the_browser_refuses_injected_inline_script(new_page: NewPage) -> None:
    """With JavaScript on and the CSP in force, Chromium will not run a script that
    someone slipped into the page."""
    page = new_page(javascript=True)
    page.goto("/signin")
    with pytest.raises(PlaywrightError, match="Content Security Policy"):
        page.add_script_tag(content="document.title = 'owned'")
    assert page.title() != "owned"


def test_axe_finds_a_missing_label(new_page: NewPage) -> None:
    page = new_page(axe=True)
    page.set_content('<!doctype html><html lang="en"><title>t</title><main><input></main></html>')
    assert "label" in {v["id"] for v in quality.axe_violations(page)}


def test_long_words_fail_the_reading_grade() -> None:
    hard = (
        "Notwithstanding the aforementioned considerations, practitioners' "
        "documentation necessitates comprehensive interdisciplinary verification."
    )
    assert quality.reading_grade(hard) > quality.MAX_GRADE
    assert quality.reading_grade("I like my new flat.\nIt is small.") <= quality.MAX_GRADE


def test_header_check_spots_inline_script_and_framing() -> None:
    problems = quality.header_problems({"content-security-policy": "script-src 'unsafe-inline'"})
    assert len(problems) == 4


def test_csrf_check_spots_a_bare_form(page: Page) -> None:
    page.set_content(
        '<form method="post" action="/a"><button>Go</button></form>'
        '<form method="POST" action="/b"><input type="hidden" name="csrf_token" value="x">'
        "</form><form action=/search></form>"
    )
    assert quality.forms_without_csrf(page) == ["/a"]


def test_overflow_check_spots_a_wide_page(page: Page) -> None:
    page.set_content('<div style="width:500px">wide</div>')
    assert quality.overflow_px(page) == 500 - 360 + 8  # plus the body's default margin


def test_weight_counts_gzip_of_html_and_linked_css(
    measured: Measured,
) -> None:
    found = measured(PAGES[0])
    assert found.weight.html > 0 and found.weight.css > 0
    assert found.weight.counted == found.weight.html + found.weight.css + found.weight.js
    # The uncompressed figures the report shows beside it: the HTML as served, and
    # HTML+CSS+JS, each bigger than its gzip.
    served = httpx.get(found.url).content
    assert found.weight.html_raw == len(served) > found.weight.html
    assert found.weight.raw > found.weight.html_raw and found.weight.raw > found.weight.counted
