"""Start `storykeep serve` as a real process and drive it over 127.0.0.1."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import PASSWORD, run_sql
from tests.grants.test_lifecycle import _seed, _vault_id
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


def _states(services: Services) -> dict[str, dict[str, int]]:
    requests = run_sql(services, "SELECT status, count(*) FROM access_request GROUP BY status")
    messages = run_sql(services, "SELECT status, count(*) FROM notification GROUP BY status")
    return {
        "requests": {status: int(n) for status, n in requests},
        "messages": {status: int(n) for status, n in messages},
    }


def _serve_until(
    env: dict[str, str], log: Path, interval: str, until: Callable[[], bool], seconds: float
) -> bool:
    """Serve with STORYKEEP_JOBS_INTERVAL_SECONDS=interval until ``until()`` is true or
    the time is up; returns whether it came true."""
    process, _base = start_server({**env, "STORYKEEP_JOBS_INTERVAL_SECONDS": interval}, log)
    try:
        deadline = time.monotonic() + seconds
        while not until():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_runs_the_scheduled_jobs_in_process(
    env: dict[str, str], services: Services, client: TestClient, tmp_path: Path
) -> None:
    """A request nobody answered lapses, and the messages about it are sent, with only
    ``storykeep serve`` running: no ``storykeep jobs run``, no cron."""
    _seed(services, _vault_id(services, client))  # tests/grants/test_lifecycle.py
    before = _states(services)
    assert before == {"requests": {"pending": 3, "approved": 3}, "messages": {}}
    log = tmp_path / "serve.log"

    # With the in-process jobs off (0), serving for a few seconds changes nothing, so
    # what follows is the runner's doing and not a side effect of starting up.
    assert not _serve_until(env, log, "0", lambda: _states(services) != before, seconds=3)

    def done() -> bool:
        now = _states(services)
        lapsed = now["requests"] == {"pending": 2, "lapsed": 1, "approved": 3}
        return lapsed and bool(now["messages"].get("sent")) and "pending" not in now["messages"]

    assert _serve_until(env, log, "1", done, seconds=30), _states(services)
    # The lapse, the reminders and the ending were told, and every message went out.
    sent = _states(services)["messages"]
    assert set(sent) == {"sent"} and sent["sent"] >= 4, sent
    assert "scheduled jobs failed" not in log.read_text()
