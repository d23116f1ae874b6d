"""The pieces the browser tests and ``tests.browser.report`` share: a real server with
demo data, Debian's Chromium, and browser contexts signed in as each role.

The server runs on SQLite only. These tests check what the pages show and how they
behave in a browser; the database layer is tested on both backends elsewhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Playwright, ViewportSize

from tests.live import free_port, start_server, storykeep_command

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"

# A phone (the 360x780) and a council laptop.
NARROW: ViewportSize = {"width": 360, "height": 780}
WIDE: ViewportSize = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class LiveApp:
    base_url: str
    env: dict[str, str]

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``storykeep ARGS`` against this server's database and keys."""
        return subprocess.run(
            [*storykeep_command(), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "STORYKEEP_ENVIRONMENT": "test",
        "STORYKEEP_DATA_DIR": str(data_dir),
        "STORYKEEP_DATABASE_URL": f"sqlite:///{data_dir / 'storykeep.db'}",
        "STORYKEEP_SECRET_KEY": "browser-test-secret-key-that-is-long-enough",
        "STORYKEEP_ISSUER": f"http://127.0.0.1:{port}",
        # Agency systems in the journeys poll for their token; one second keeps them quick.
        "STORYKEEP_CIBA_POLL_INTERVAL_SECONDS": "1",
    }


@contextmanager
def demo_server(workdir: Path) -> Iterator[LiveApp]:
    """``storykeep db upgrade``, ``storykeep demo`` and ``storykeep serve`` on a fresh
    data directory, exactly as ``make run`` does; stopped on exit."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = server_env(data_dir, port)
    for step in (["db", "upgrade"], ["demo"]):
        done = subprocess.run(
            [*storykeep_command(), *step],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"storykeep {' '.join(step)} failed:\n{done.stderr}")
    process, base = start_server(env, workdir / "serve.log", port)
    try:
        yield LiveApp(base, env)
    finally:
        process.terminate()
        process.wait(timeout=15)


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium. Never a browser that Playwright downloads."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


def new_context(
    browser: Browser,
    base_url: str,
    *,
    wide: bool = False,
    javascript: bool = False,
    bypass_csp: bool = False,
    storage_state: Any = None,
) -> BrowserContext:
    """A fresh context. JavaScript is off unless asked for: the pages must work without
    it, and only the axe-core check needs it (and ``bypass_csp``, see quality.axe)."""
    context = browser.new_context(
        base_url=base_url,
        viewport=WIDE if wide else NARROW,
        java_script_enabled=javascript,
        bypass_csp=bypass_csp,
        storage_state=storage_state,
        locale="en-GB",
        timezone_id="Europe/London",
    )
    context.set_default_timeout(10_000)
    return context
