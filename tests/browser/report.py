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
        f"{weight.images / 1024:.1f} | {axe} | {grade} | {'; '.join(problems) or 'ok'} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server with the demo data")
    parser.add_argument("--screenshots", action="store_true", help="refresh docs/screenshots")
    args = parser.parse_args(argv)
    print("| who | page | gzip KB (HTML+CSS+JS) | images KB | axe violations | FK grade | other |")
    print("|---|---|---:|---:|---|---:|---|")
    with _server(args.base_url) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        signed_in = SignedIn(browser, app)
        for spec in PAGES:
            try:
                print(_row(browser, app, spec, signed_in, args.screenshots), flush=True)
            except pytest.skip.Exception as skipped:
                print(f"| {spec.role} | `{spec.path}` | | | | | {skipped.msg} |", flush=True)
            except AssertionError as exc:
                first = str(exc).splitlines()[0] if str(exc) else "assertion failed"
                print(f"| {spec.role} | `{spec.path}` | | | | | FAILED: {first} |", flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
