"""The issue's quality bars as small measuring functions, shared by the tests and by
``python -m tests.browser.report``.

- axe-core for WCAG 2.2 AA (https://github.com/dequelabs/axe-core, rule tags);
- page weight: gzip-compressed HTML, CSS and JS, at most 30 KB;
- reading grade: Flesch-Kincaid over ``<main>``, 5 or below for young people;
- fits 360 px and 1280 px without sideways scrolling (WCAG 2.2 SC 1.4.10 Reflow);
- security headers (OWASP ASVS 5.0 V3.4) and a CSRF token on every posted form.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import textstat  # type: ignore[import-untyped]
from playwright.sync_api import Page

from tests.browser.harness import AXE_JS, PROJECT_ROOT

# The issue names these four; wcag21a is added because WCAG 2.2 AA includes 2.1 level A.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
MAX_WEIGHT_BYTES = 30 * 1024
MAX_GRADE = 5.0
GZIP_LEVEL = 6
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"


# -- accessibility ---------------------------------------------------------------------
_RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {
    runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Inject axe-core from the npm package and run the WCAG 2.2 AA rules.

    The page's context must have JavaScript on and ``bypass_csp=True``: the app's CSP
    (rightly) refuses any script it did not serve, and it serves none. The test is what
    injects the tool, so only the axe context bypasses the policy; every other check
    runs with JavaScript off and the policy in force.
    """
    page.add_script_tag(path=str(AXE_JS))
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE, AXE_TAGS)
    return violations


def describe_violations(violations: Iterable[Mapping[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        lines.extend(f"    at {n['target']}: {n['summary']}" for n in v["nodes"])
    return "\n".join(lines)


def assert_no_axe_violations(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core on {page.url}:\n{describe_violations(violations)}"


# -- page weight -----------------------------------------------------------------------
@dataclass
class Weight:
    """gzip sizes in bytes. HTML, CSS and JS count towards the 30 KB; images are
    reported beside them. ``html_raw`` and ``raw`` are the uncompressed bytes of the HTML
    and of HTML+CSS+JS, for comparison (a proxy that does not compress sends those)."""

    html: int = 0
    css: int = 0
    js: int = 0
    images: int = 0
    html_raw: int = 0
    raw: int = 0
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return self.html + self.css + self.js


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (kind, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        rel = set(a.get("rel", "").lower().split())
        if tag == "link" and "stylesheet" in rel and a.get("href"):
            self.found.append(("css", a["href"]))
        elif tag == "link" and rel & {"icon", "apple-touch-icon", "preload"} and a.get("href"):
            self.found.append(("images", a["href"]))
        elif tag == "script" and a.get("src"):
            self.found.append(("js", a["src"]))
        elif tag in {"img", "source", "input"} and a.get("src"):
            self.found.append(("images", a["src"]))


_CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*["']?([^"')\s;]+)""")


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))


def page_weight(url: str, cookies: Mapping[str, str] | None = None) -> Weight:
    """Fetch the page and everything its HTML links (and CSS ``@import``s), as the
    browser would, and add up each file's gzip size (level 6)."""
    # Cookies by hand: the session cookie is Secure and this is plain http to 127.0.0.1.
    headers = {"cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())}
    weight = Weight()
    with httpx.Client(headers=headers, timeout=10) as http:
        page = http.get(url)
        page.raise_for_status()
        weight.html = gzip_size(page.content)
        weight.html_raw = weight.raw = len(page.content)
        weight.files.append((url, weight.html))
        parser = _Links()
        parser.feed(page.text)
        todo = [(kind, urljoin(url, href)) for kind, href in parser.found]
        seen: set[str] = set()
        while todo:
            kind, link = todo.pop(0)
            if link in seen or link.startswith("data:"):
                continue
            seen.add(link)
            got = http.get(link)
            got.raise_for_status()
            size = gzip_size(got.content)
            setattr(weight, kind, getattr(weight, kind) + size)
            if kind != "images":
                weight.raw += len(got.content)
            weight.files.append((link, size))
            if kind == "css":
                todo += [("css", urljoin(link, m)) for m in _CSS_IMPORT.findall(got.text)]
    return weight


def session_cookies(page: Page) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies() if "name" in c and "value" in c}


# -- plain words -----------------------------------------------------------------------
def as_sentences(text: str) -> str:
    """Each rendered line (heading, label, button, paragraph) read as its own sentence:
    a heading run into the next line would otherwise make one long "sentence"."""
    lines = (line.strip() for line in text.splitlines())
    return " ".join(line if line[-1] in ".!?" else f"{line}." for line in lines if line)


def reading_grade(text: str) -> float:
    return float(textstat.flesch_kincaid_grade(as_sentences(text)))


def main_text(page: Page) -> str:
    return page.locator("main").inner_text()


# -- layout, markup and headers --------------------------------------------------------
def overflow_px(page: Page) -> int:
    """How far the page scrolls sideways past the viewport (0 when it fits)."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    scroll = int(page.evaluate("document.documentElement.scrollWidth"))
    return max(0, scroll - width)


def fits_width(page: Page, width: int, height: int) -> int:
    page.set_viewport_size({"width": width, "height": height})
    return overflow_px(page)


def scripts(page: Page) -> list[str]:
    """Every <script> in the page as served (check before injecting axe)."""
    return [el.evaluate("e => e.outerHTML")[:120] for el in page.query_selector_all("script")]


def forms_without_csrf(page: Page) -> list[str]:
    """Posted forms that carry no non-empty hidden csrf_token."""
    bad = []
    for form in page.query_selector_all("form"):
        if (form.get_attribute("method") or "get").lower() != "post":
            continue
        token = form.query_selector('input[type="hidden"][name="csrf_token"]')
        if token is None or not (token.get_attribute("value") or "").strip():
            bad.append(form.get_attribute("action") or "(no action)")
    return bad


def csp_directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return out


def header_problems(headers: Mapping[str, str]) -> list[str]:
    """What is missing from SECURITY.md's "strict CSP with no inline script, nosniff,
    a referrer policy, and not framable" (header names in lower case)."""
    problems = []
    csp = csp_directives(headers.get("content-security-policy", ""))
    script = csp.get("script-src-elem") or csp.get("script-src") or csp.get("default-src")
    if script is None:
        problems.append("Content-Security-Policy does not limit scripts")
    elif {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(script):
        problems.append(f"Content-Security-Policy lets scripts in: {' '.join(script)}")
    if headers.get("x-content-type-options", "").lower() != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if not headers.get("referrer-policy"):
        problems.append("no Referrer-Policy")
    framable = csp.get("frame-ancestors") not in (["'none'"], ["'self'"]) and headers.get(
        "x-frame-options", ""
    ).upper() not in {"DENY", "SAMEORIGIN"}
    if framable:
        problems.append("the page can be framed (no frame-ancestors or X-Frame-Options)")
    return problems


def screenshot(page: Page, name: str, directory: Path = SCREENSHOTS) -> Path:
    """A full-page PNG, at the page's current width, for the README."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- everything but axe, from one page load --------------------------------------------
@dataclass
class Measurement:
    url: str
    headers: dict[str, str]
    scripts: list[str]
    forms_without_csrf: list[str]
    text: str
    grade: float
    overflow_narrow: int
    overflow_wide: int
    weight: Weight

    def problems(self, plain_words: bool) -> list[str]:
        """Every bar this page misses (axe apart), in words, for the report."""
        found = []
        if self.weight.counted > MAX_WEIGHT_BYTES:
            found.append(f"weighs {self.weight.counted / 1024:.1f} KB")
        if plain_words and self.grade > MAX_GRADE:
            found.append(f"grade {self.grade:.1f}")
        if self.overflow_narrow:
            found.append(f"scrolls sideways at 360 px ({self.overflow_narrow} px)")
        if self.overflow_wide:
            found.append(f"scrolls sideways at 1280 px ({self.overflow_wide} px)")
        found += header_problems(self.headers)
        if self.scripts:
            found.append("has <script>")
        if self.forms_without_csrf:
            found.append(f"form without CSRF token: {', '.join(self.forms_without_csrf)}")
        return found


def measure(
    page: Page, headers: Mapping[str, str], screenshot_as: str | None = None,
    directory: Path = SCREENSHOTS,
) -> Measurement:  # fmt: skip
    """Measure an opened page (JavaScript off, 360x780): markup and text first, then the
    screenshot at 360, then the width checks, which resize the viewport."""
    text = main_text(page)
    found = Measurement(
        url=page.url,
        headers=dict(headers),
        scripts=scripts(page),
        forms_without_csrf=forms_without_csrf(page),
        text=text,
        grade=reading_grade(text),
        overflow_narrow=fits_width(page, 360, 780),
        overflow_wide=0,
        weight=page_weight(page.url, session_cookies(page)),
    )
    if screenshot_as:
        screenshot(page, screenshot_as, directory)
    found.overflow_wide = fits_width(page, 1280, 800)
    return found
