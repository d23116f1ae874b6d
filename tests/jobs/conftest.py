"""Fixtures for notification tests end to end: a real SMTP server (aiosmtpd) and a webhook
receiver, both on 127.0.0.1 and started per test; the app and the CLI both configured to
send email over SMTP to that server."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from app.settings import Settings
from tests.notify.test_outbox import FlakySmtp, _free_port


def readable(message: Message) -> str:
    """A mail as its reader sees it: its headers, and its body decoded from the transfer
    encoding. Quoted-printable folds long lines with a trailing "=" and escapes some
    characters, so a search of the raw mail can miss words that are there (a wrapped
    line fell inside "Example" on one date), and a check that something is *not* there
    could pass while it is."""
    headers = [f"{name}: {make_header(decode_header(value))}" for name, value in message.items()]
    bodies = []
    for part in message.walk():
        if part.is_multipart():
            continue
        raw = part.get_payload(decode=True)
        assert isinstance(raw, bytes)
        bodies.append(raw.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(headers) + "\n\n" + "\n".join(bodies)


@dataclass
class Smtp:
    handler: FlakySmtp
    port: int

    def fail_next(self, count: int) -> None:
        self.handler.failures = count

    @property
    def mails(self) -> list[Message]:
        return [message_from_bytes(e.content) for e in self.handler.received]

    def to(self, address: str) -> list[Message]:
        return [
            message_from_bytes(e.content) for e in self.handler.received if address in e.rcpt_tos
        ]


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    handler = FlakySmtp(failures=0)
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(handler, port)
    finally:
        controller.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Smtp) -> Settings:
    """As tests/conftest.py, but email goes over SMTP to the test's own server."""
    return Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-000",
        notify_email_channel="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
    )


@pytest.fixture
def cli_env(env: dict[str, str], smtp: Smtp) -> dict[str, str]:
    return {
        **env,
        "STORYKEEP_NOTIFY_EMAIL_CHANNEL": "smtp",
        "STORYKEEP_SMTP_HOST": "127.0.0.1",
        "STORYKEEP_SMTP_PORT": str(smtp.port),
    }


def storykeep(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env, input=stdin, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An agency's webhook endpoint: answers the queued statuses first, then 204."""
    box = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box.received.append((dict(self.headers), body))
            self.send_response(box.statuses.pop(0) if box.statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/storykeep-events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
