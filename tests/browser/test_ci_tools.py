"""In CI a missing Chromium or axe-core fails the browser tests; on a laptop it skips them
and says why. A skipped accessibility check must never pass a build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import conftest

NOWHERE = Path("/nonexistent/storykeep-test/tool")


@pytest.fixture
def no_axe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "AXE_JS", NOWHERE)


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "CHROMIUM", NOWHERE)


def _axe_page() -> Any:
    """Ask for the axe context exactly as the quality tests do (the check comes before
    any browser is touched, so none is needed here)."""
    return conftest.Pages(None, None, None)(axe=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_in_ci_missing_axe_fails(monkeypatch: pytest.MonkeyPatch, no_axe: None, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"npm ci.*CI is set"):
        _axe_page()


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_locally_missing_axe_skips_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, no_axe: None, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="tool is missing: run `npm ci`"):
        _axe_page()


def test_in_ci_missing_chromium_fails(monkeypatch: pytest.MonkeyPatch, no_chromium: None) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install chromium.*CI is set"):
        conftest.need_chromium()


def test_locally_missing_chromium_skips(monkeypatch: pytest.MonkeyPatch, no_chromium: None) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="is missing: install Debian's chromium"):
        conftest.need_chromium()


def test_present_tools_pass_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here both are installed, so nothing is skipped or failed."""
    monkeypatch.setenv("CI", "1")
    conftest.need_chromium()
    conftest.need_axe()


def test_ci_script_installs_npm_and_sets_ci() -> None:
    script = (conftest.Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "apt-get install -y npm" in script
    assert 'export CI="${CI:-1}"' in script
    # Before the tests run (make lint installs, make test runs them).
    assert script.index('export CI="${CI:-1}"') < script.index("make lint")
