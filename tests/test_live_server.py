"""Start `storykeep serve` as a real process and drive it over 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.container import Services
from tests.conftest import PASSWORD
from tests.live import free_port, signed_in_headers, start_server, storykeep_command


@pytest.fixture
def live_server(env: dict[str, str], services: Services, tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "serve.log"
    process, base = start_server(env, log)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
    # Nothing the young person wrote ever reaches the server's log.
    assert "Over TCP" not in log.read_text()


def test_a_young_persons_day_over_real_http(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        made = http.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
        assert made.status_code == 201
        headers = signed_in_headers(http, "robin", PASSWORD)
        created = http.post(
            "/api/v1/me/entries", json={"title": "Real", "body": "Over TCP"}, headers=headers
        )
        assert created.status_code == 201
        listed = http.get("/api/v1/me/entries", headers=headers).json()
        assert [(e["title"], e["body"]) for e in listed] == [("Real", "Over TCP")]
        assert http.get("/api/v1/me/entries").status_code == 401
        page = http.get("/story", headers=headers)
        assert "Real" in page.text and page.headers["content-security-policy"]


def test_serve_refuses_key_file_readable_by_others(env: dict[str, str], services: Services) -> None:
    services.settings.resolved_key_file.chmod(0o644)
    result = subprocess.run(
        [*storykeep_command(), "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "chmod 600" in result.stderr
    services.settings.resolved_key_file.chmod(0o600)
