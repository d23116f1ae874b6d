"""Starting `storykeep serve` as a real process on 127.0.0.1 for tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def storykeep_command() -> list[str]:
    script = Path(sys.executable).parent / "storykeep"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def start_server(
    env: dict[str, str], log: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server and wait until /healthz answers. Output goes to ``log``."""
    port = port or free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*storykeep_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"storykeep serve did not start:\n{log.read_text()}")
        time.sleep(0.1)


def signed_in_headers(http: httpx.Client, username: str, password: str) -> dict[str, str]:
    """Sign in over plain http. The cookie is Secure, so an http client will not send it
    back by itself (a browser treats 127.0.0.1 as secure and does); pass it by hand."""
    signed = http.post("/api/v1/me/session", json={"username": username, "password": password})
    signed.raise_for_status()
    return {
        "cookie": f"storykeep_session={signed.cookies['storykeep_session']}",
        "X-CSRF-Token": signed.json()["csrf_token"],
    }
