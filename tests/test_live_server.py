"""Start `storykeep serve` as a real process and drive it over 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.container import Services
from tests.conftest import PASSWORD


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def storykeep_command() -> list[str]:
    script = Path(sys.executable).parent / "storykeep"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


@pytest.fixture
def live_server(env: dict[str, str], services: Services, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*storykeep_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"storykeep serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
    # Nothing the young person wrote ever reaches the server's log.
    assert "Over TCP" not in log.read_text()


def test_a_young_persons_day_over_real_http(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        assert (
            http.post(
                "/api/v1/accounts", json={"username": "robin", "password": PASSWORD}
            ).status_code
            == 201
        )
        signed = http.post("/api/v1/me/session", json={"username": "robin", "password": PASSWORD})
        assert signed.status_code == 200
        # The cookie is Secure, so an http client will not send it back by itself; a
        # browser treats 127.0.0.1 as a secure context and does.
        token = signed.cookies["storykeep_session"]
        headers = {
            "cookie": f"storykeep_session={token}",
            "X-CSRF-Token": signed.json()["csrf_token"],
        }
        created = http.post(
            "/api/v1/me/entries", json={"title": "Real", "body": "Over TCP"}, headers=headers
        )
        assert created.status_code == 201
        listed = http.get("/api/v1/me/entries", headers=headers).json()
        assert [(e["title"], e["body"]) for e in listed] == [("Real", "Over TCP")]
        assert http.get("/api/v1/me/entries", headers={}).status_code == 401
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
