"""SECURITY.md, "Durability": kill -9 the server mid-write; nothing acknowledged is lost,
and the integrity check and `audit verify` pass afterwards."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from app.container import Services
from tests.conftest import PASSWORD
from tests.live import signed_in_headers, start_server


def test_kill_9_mid_write_loses_nothing_acknowledged(
    env: dict[str, str], services: Services, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    process, base = start_server(env, log)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with httpx.Client(base_url=base, timeout=10) as http:
        http.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
        headers = signed_in_headers(http, "robin", PASSWORD)

    def writer(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in range(10_000):  # bounded; the kill ends it long before
                if stop.is_set():
                    return
                try:
                    response = client.post(
                        "/api/v1/me/entries",
                        json={"title": f"w{worker}-{n}", "body": "durable?"},
                        headers=headers,
                    )
                except httpx.TransportError:
                    return  # the server died under us, as intended
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(response.json()["id"])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL: no shutdown handlers, no flush, mid-request
    process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(acknowledged) >= 40, log.read_text()

    process, base = start_server(env, log)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            headers = signed_in_headers(http, "robin", PASSWORD)
            stored = {e["id"] for e in http.get("/api/v1/me/entries", headers=headers).json()}
            assert set(acknowledged) <= stored
            events: list[dict[str, object]] = []
            params: dict[str, int] = {"limit": 200}
            while True:
                page = http.get("/api/v1/me/audit", params=params, headers=headers).json()
                events += page["events"]
                if page["next_before"] is None:
                    break
                params["before"] = page["next_before"]
    finally:
        process.terminate()
        process.wait(timeout=15)
    created = [e for e in events if e["action"] == "entry:created"]
    assert len(created) == len(stored)  # every stored entry has its audit event, and vice versa

    verify = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    if services.settings.is_sqlite:
        with services.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
