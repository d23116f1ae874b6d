"""Many requests at once against a real server with few threads: none may stall or fail.

Regression test for a deadlock found by `make bench`: a request holding the database
lock waited for a thread while every thread waited for that lock (see
app.middleware.RequestSlotsMiddleware).
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from app.container import Services
from tests.conftest import PASSWORD
from tests.live import signed_in_headers, start_server


def test_concurrent_writes_with_few_threads_all_succeed(
    env: dict[str, str], services: Services, tmp_path: Path
) -> None:
    process, base = start_server({**env, "STORYKEEP_WORKER_THREADS": "2"}, tmp_path / "serve.log")
    statuses: list[int] = []
    lock = threading.Lock()
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            http.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
            headers = signed_in_headers(http, "robin", PASSWORD)

        def writer(n: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as client:
                for i in range(5):
                    response = client.post(
                        "/api/v1/me/entries", json={"title": f"{n}-{i}"}, headers=headers
                    )
                    with lock:
                        statuses.append(response.status_code)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert statuses == [201] * 120, sorted(set(statuses))
