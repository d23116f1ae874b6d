"""Print the quality bars for every page in PAGES as a Markdown table.

    .venv/bin/python -m tests.browser.report                 # starts its own demo server
    .venv/bin/python -m tests.browser.report --base-url http://127.0.0.1:8000
    .venv/bin/python -m tests.browser.report --screenshots   # also refresh docs/screenshots

With ``--base-url`` the server must have the demo data (``storykeep demo``). The same
helpers as the tests measure each page: gzip KB of HTML+CSS+JS (limit 30), images
beside it, axe-core WCAG 2.2 AA violations, and the Flesch-Kincaid grade of ``<main>``
(limit 5 on young people's pages).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser import quality
from tests.browser.agency import demo_world
from tests.browser.harness import AXE_JS, LiveApp, launch_chromium, new_context
from tests.browser.pages import PAGES, PageSpec, SignedIn, open_page


@contextmanager
def _server(base_url: str | None) -> Iterator[LiveApp]:
    if base_url:
        yield LiveApp(base_url.rstrip("/"), {})
        return
    with tempfile.TemporaryDirectory() as workdir, demo_world(Path(workdir)) as world:
        yield world.app


def _row(browser: Browser, app: LiveApp, spec: PageSpec, signed_in: SignedIn, shots: bool) -> str:
    state = signed_in(spec.role)
    context = new_context(browser, app.base_url, storage_state=state)
    try:
        page = context.new_page()
        response = open_page(page, spec)
        found = quality.measure(page, response.headers, spec.screenshot if shots else None)
    finally:
        context.close()
    axe = "not run (no axe-core)"
    if AXE_JS.exists():
        context = new_context(
            browser, app.base_url, javascript=True, bypass_csp=True, storage_state=state
        )
        try:
            page = context.new_page()
            open_page(page, spec)
            violations = quality.axe_violations(page)
        finally:
            context.close()
        axe = ", ".join(v["id"] for v in violations) or "0"
    weight = found.weight
    grade = f"{found.grade:.1f}" + ("" if spec.plain_words else " (adult page)")
    problems = found.problems(spec.plain_words)
    return (
        f"| {spec.role} | `{spec.path}` | {weight.counted / 1024:.1f} | "
        f"{weight.html_raw / 1024:.1f} | {weight.raw / 1024:.1f} | "
        f"{weight.images / 1024:.1f} | {axe} | {grade} | {'; '.join(problems) or 'ok'} |"
    )


def _axe_version() -> str:
    package = AXE_JS.parent / "package.json"
    if not package.exists():
        return "not installed"
    return str(json.loads(package.read_text(encoding="utf-8")).get("version", "?"))


INTRO = """# Quality bars, per page

Made by `.venv/bin/python -m tests.browser.report > docs/quality.md`: a fresh demo
server (`storykeep db upgrade`, `storykeep demo`, `storykeep serve` on SQLite) with the
browser tests' extra data (tests/browser/agency.py), every page in
`tests/browser/pages.py`, measured as `tests/browser/test_quality.py` measures it, in
Debian's Chromium at 360x780 with JavaScript off (axe-core alone runs with it on).

- **gzip KB**: HTML, CSS and JS, each gzip-compressed (level 6), added up. Limit 30.
- **raw HTML KB** and **raw KB**: the same page's HTML, and its HTML+CSS+JS, uncompressed.
- **images KB**: images the page links (gzip), beside the limit, not in it.
- **axe**: axe-core violations for WCAG 2.2 AA (tags {tags}). Limit 0.
- **FK grade**: Flesch-Kincaid grade of `<main>`, each line read as a sentence. Limit 5
  on young people's pages; shown, not limited, on adults' pages.
- **other**: any other bar missed (sideways scrolling at 360 or 1280 px, security
  headers, `<script>`, a posted form without a CSRF token), or `ok`.

Chromium {chromium}; axe-core {axe}.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server with the demo data")
    parser.add_argument("--screenshots", action="store_true", help="refresh docs/screenshots")
    args = parser.parse_args(argv)
    with _server(args.base_url) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        tags = ", ".join(f"`{t}`" for t in quality.AXE_TAGS)
        print(INTRO.format(tags=tags, chromium=browser.version, axe=_axe_version()))
        print(
            "| who | page | gzip KB (HTML+CSS+JS) | raw HTML KB | raw KB (HTML+CSS+JS) "
            "| images KB | axe violations | FK grade | other |"
        )
        print("|---|---|---:|---:|---:|---:|---|---:|---|", flush=True)
        signed_in = SignedIn(browser, app)
        for spec in PAGES:
            try:
                print(_row(browser, app, spec, signed_in, args.screenshots), flush=True)
            except pytest.skip.Exception as skipped:
                print(f"| {spec.role} | `{spec.path}` | | | | | | | {skipped.msg} |", flush=True)
            except AssertionError as exc:
                first = str(exc).splitlines()[0] if str(exc) else "assertion failed"
                print(f"| {spec.role} | `{spec.path}` | | | | | | | FAILED: {first} |", flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
